"""What the pods reach on the node: a test CA, PostgreSQL playing RDS, and an ingress stand-in.

PostgreSQL listens on the node's service address with a certificate for the RDS endpoint name
the program rendered, signed by a test CA that stands in for the RDS CA bundle (a listed
deviation, ``tests/pod/images.py``). Its master user and password are the ones the program gave
the RDS instance; its parameters come from the same tuning function as the RDS parameter group
(``rendering.postgres``, mapped as the local target maps them).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import pwd
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from localplatform.binaries import find_pg_bin, find_program
from rendering.postgres import PostgresTuning, local_postgres_settings, render_postgres_parameters
from rendering.units import MIB

from .network import INGRESS_IP, NODE_SERVICE_IP, Network

POSTGRES_USER = "postgres"
"""Debian's PostgreSQL account (PostgreSQL refuses to run as root)."""


@dataclass(frozen=True)
class TestCa:
    cert: Path
    key: Path
    bundle: Path
    """This CA plus the machine's public roots (what a container trusts, see images.py)."""

    def leaf(self, directory: Path, names: list[str]) -> tuple[Path, Path]:
        ca_key = serialization.load_pem_private_key(self.key.read_bytes(), None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        ca_cert = x509.load_pem_x509_certificate(self.cert.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        san: list[x509.GeneralName] = []
        for name in names:
            try:
                san.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                san.append(x509.DNSName(name))
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        directory.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = directory / f"{names[0]}.crt", directory / f"{names[0]}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        key_path.chmod(0o600)
        cert_path.chmod(0o644)
        return cert_path, key_path


def make_ca(directory: Path) -> TestCa:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mlflow-platform pod-contract test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca = TestCa(directory / "ca.crt", directory / "ca.key", directory / "bundle.crt")
    ca.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    ca.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    ca.key.chmod(0o600)
    ca.cert.chmod(0o644)
    system = Path("/etc/ssl/certs/ca-certificates.crt")
    ca.bundle.write_text(ca.cert.read_text() + (system.read_text() if system.exists() else ""))
    ca.bundle.chmod(0o644)
    return ca


def _as_postgres(network: Network) -> list[str]:
    entry = pwd.getpwnam(POSTGRES_USER)
    return [
        *network.exec_argv(network.node),
        "setpriv",
        f"--reuid={entry.pw_uid}",
        f"--regid={entry.pw_gid}",
        "--clear-groups",
        "--",
    ]


@dataclass
class Database:
    """PostgreSQL in the node namespace, reachable from pods as the RDS endpoint."""

    process: subprocess.Popen[bytes]
    pg_bin: Path
    network: Network
    port: int

    def ready(self) -> bool:
        check = [*self.network.exec_argv(self.network.node), str(self.pg_bin / "pg_isready")]
        check += ["-q", "-h", NODE_SERVICE_IP, "-p", str(self.port), "-t", "2"]
        return subprocess.run(check, check=False).returncode == 0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(2)  # SIGINT: PostgreSQL's fast shutdown
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_database(
    network: Network, directory: Path, ca: TestCa, endpoint: str, port: int, user: str, password: str
) -> Database:
    pg_bin, _ = find_pg_bin()
    entry = pwd.getpwnam(POSTGRES_USER)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    data = directory / "data"
    pwfile = directory / "pw"
    pwfile.write_text(password + "\n")
    cert, key = ca.leaf(directory / "tls", [endpoint])
    for path in (directory, pwfile, cert, key, directory / "tls"):
        os.chown(path, entry.pw_uid, entry.pw_gid)
    initdb = [*_as_postgres(network), str(pg_bin / "initdb"), "-D", str(data), "-U", user]
    initdb += ["--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8"]
    result = subprocess.run(initdb, capture_output=True, text=True, check=False, cwd=directory)
    pwfile.unlink()
    assert result.returncode == 0, result.stderr
    rendered = local_postgres_settings(render_postgres_parameters(PostgresTuning(memory_bytes=1024 * MIB)))
    runtime = {
        "listen_addresses": NODE_SERVICE_IP,
        "port": str(port),
        "unix_socket_directories": "",
        "ssl_cert_file": str(cert),
        "ssl_key_file": str(key),
        "max_connections": "200",
    }
    conf = "\n".join(f"{k} = '{v}'" for k, v in {**rendered, **runtime}.items()) + "\n"
    (data / "postgresql.auto.conf").write_text(conf)
    (data / "pg_hba.conf").write_text("hostssl all all 0.0.0.0/0 scram-sha-256\n")
    log = (directory / "postgres.log").open("ab")
    process = subprocess.Popen(
        [*_as_postgres(network), str(pg_bin / "postgres"), "-D", str(data)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=directory,
        start_new_session=True,
    )
    database = Database(process, pg_bin, network, port)
    deadline = time.monotonic() + 60
    while not database.ready():
        assert process.poll() is None, (directory / "postgres.log").read_text()[-2000:]
        assert time.monotonic() < deadline, "PostgreSQL did not become ready"
        time.sleep(0.5)
    return database


INGRESS_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 64; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen {address}:443 ssl;
        server_name {host};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{
            proxy_pass http://{upstream};
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Forwarded-For $remote_addr;
        }}
    }}
}}
"""


def start_ingress(network: Network, directory: Path, ca: TestCa, host: str, upstream: str) -> subprocess.Popen[bytes]:
    """nginx terminating TLS for the public host name (test CA) and forwarding to ``upstream``
    (the pod IP and the Service's targetPort): what the ingress controller does."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = ca.leaf(directory / "tls", [host])
    conf = directory / "nginx.conf"
    conf.write_text(
        INGRESS_CONF.format(dir=directory, address=INGRESS_IP, host=host, cert=cert, key=key, upstream=upstream)
    )
    log = (directory / "nginx.log").open("ab")
    process = subprocess.Popen(
        [*network.exec_argv(network.node), str(find_program("nginx")), "-c", str(conf), "-e", "stderr"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    time.sleep(0.5)
    assert process.poll() is None, (directory / "nginx.log").read_text()
    return process
