"""A private CA and server certificates made with the ``openssl`` CLI.

Why a CA instead of self-signed leaves: clients get *one* trust anchor (``ca.crt``) for the
HTTPS proxy, PostgreSQL (verify-full from PgBouncer and the migrations) and the S3 emulator.
The CA is name-constrained to localhost and loopback addresses, so trusting it cannot be abused
to impersonate any other host. Certificates are reused while valid, so the CA path in
``mlflow.env`` stays stable across restarts.
"""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import raise_if_failed
from .users import RunAs, chown, current_user, write_file

CA_DAYS = 825
LEAF_DAYS = 397
RENEW_BEFORE_S = 14 * 24 * 3600
CA_SUBJECT = "/O=mlflow-platform local target/CN=mlflow-platform local CA"
NAME_CONSTRAINTS = (
    "critical,permitted;DNS:localhost,permitted;IP:127.0.0.0/255.0.0.0,"
    "permitted;IP:::1/ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
)


@dataclass(frozen=True)
class LeafCert:
    cert: Path
    key: Path


def _openssl(openssl: Path, *args: str) -> None:
    result = subprocess.run([str(openssl), *args], capture_output=True, text=True, check=False)
    raise_if_failed(result, f"openssl {args[0]}")


def _valid_for(openssl: Path, cert: Path, seconds: int) -> bool:
    if not cert.exists():
        return False
    result = subprocess.run(
        [str(openssl), "x509", "-in", str(cert), "-noout", "-checkend", str(seconds)],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def ensure_ca(openssl: Path, cert: Path, key: Path) -> bool:
    """Create the CA unless a valid one exists. Returns True when a new CA was made."""
    if key.exists() and _valid_for(openssl, cert, RENEW_BEFORE_S):
        return False
    cert.parent.mkdir(parents=True, exist_ok=True)
    cert.parent.chmod(0o755)
    tmp_key = key.with_name(".ca.key.tmp")
    _openssl(openssl, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(tmp_key))
    tmp_key.chmod(0o600)
    _openssl(
        openssl,
        "req",
        "-x509",
        "-new",
        "-key",
        str(tmp_key),
        "-sha256",
        "-days",
        str(CA_DAYS),
        "-subj",
        CA_SUBJECT,
        "-addext",
        "basicConstraints=critical,CA:TRUE,pathlen:0",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-addext",
        "subjectKeyIdentifier=hash",
        "-addext",
        f"nameConstraints={NAME_CONSTRAINTS}",
        "-out",
        str(cert),
    )
    tmp_key.replace(key)
    cert.chmod(0o644)
    return True


def _san(names: tuple[str, ...]) -> str:
    entries = []
    for name in names:
        try:
            ipaddress.ip_address(name)
            entries.append(f"IP:{name}")
        except ValueError:
            entries.append(f"DNS:{name}")
    return ",".join(entries)


def ensure_leaf(
    openssl: Path,
    ca_cert: Path,
    ca_key: Path,
    out_dir: Path,
    name: str,
    hosts: tuple[str, ...],
    owner: RunAs,
    *,
    force: bool = False,
) -> LeafCert:
    """A server certificate for ``hosts`` signed by the CA; key mode 0600 owned by ``owner``
    (PostgreSQL refuses a key readable by others)."""
    cert, key = out_dir / f"{name}.crt", out_dir / f"{name}.key"
    if not force and key.exists() and _valid_for(openssl, cert, RENEW_BEFORE_S) and _issued_by(openssl, cert, ca_cert):
        return LeafCert(cert, key)
    out_dir.mkdir(parents=True, exist_ok=True)
    csr, ext = out_dir / f".{name}.csr", out_dir / f".{name}.ext"
    tmp_key = out_dir / f".{name}.key.tmp"
    _openssl(openssl, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(tmp_key))
    tmp_key.chmod(0o600)
    _openssl(openssl, "req", "-new", "-key", str(tmp_key), "-subj", f"/CN={hosts[0]}", "-out", str(csr))
    write_file(
        ext,
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        f"subjectAltName={_san(hosts)}\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n",
        current_user(),
        0o600,
    )
    _openssl(
        openssl,
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca_cert),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-CAserial",
        str(ca_cert.with_suffix(".srl")),
        "-sha256",
        "-days",
        str(LEAF_DAYS),
        "-extfile",
        str(ext),
        "-out",
        str(cert),
    )
    csr.unlink()
    ext.unlink()
    chown(tmp_key, owner)
    tmp_key.replace(key)
    cert.chmod(0o644)
    chown(cert, owner)
    return LeafCert(cert, key)


def _issued_by(openssl: Path, cert: Path, ca_cert: Path) -> bool:
    result = subprocess.run(
        [str(openssl), "verify", "-CAfile", str(ca_cert), str(cert)], capture_output=True, check=False
    )
    return result.returncode == 0


def write_client_bundle(ca_cert: Path, bundle: Path) -> None:
    """Local CA + public roots, so REQUESTS_CA_BUNDLE does not break other HTTPS in the shell."""
    parts = [ca_cert.read_text()]
    try:
        import certifi

        parts.append(Path(certifi.where()).read_text())
    except ImportError:  # pragma: no cover - certifi ships with requests
        pass
    bundle.write_text("\n".join(parts))
    bundle.chmod(0o644)
