"""SCRAM-SHA-256 password verifiers, computed the way PostgreSQL stores them.

Why: the application role's password must exist in two places, PostgreSQL (``pg_authid``) and
PgBouncer's ``auth_file``. Rendering the *verifier* once from (password, salt) lets both hold the
identical secret, so PgBouncer can log in to the server with SCRAM pass-through, and neither
file nor any SQL statement (DDL is logged with ``log_statement = ddl``) ever contains the
plaintext password. Pure and deterministic for a given salt; the caller generates the salt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

DEFAULT_ITERATIONS = 4096
"""PostgreSQL's ``scram_iterations`` default (fixed in PostgreSQL 15/16, settable from 16)."""

VERIFIER_PATTERN = re.compile(r"^SCRAM-SHA-256\$\d+:[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]+=*:[A-Za-z0-9+/]+=*$")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def scram_sha256_verifier(password: str, salt: bytes, iterations: int = DEFAULT_ITERATIONS) -> str:
    """``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`` as in RFC 5803 / pg_authid.

    Only printable ASCII passwords are accepted: PostgreSQL applies SASLprep to non-ASCII
    passwords, which this function does not reimplement, so such a password would silently
    produce a verifier the server computes differently.
    """
    if not password or not all(32 < ord(ch) < 127 for ch in password):
        raise ValueError("SCRAM passwords must be non-empty printable ASCII without spaces")
    if len(salt) < 16:
        raise ValueError("SCRAM salt must be at least 16 bytes")
    if iterations < DEFAULT_ITERATIONS:
        raise ValueError(f"SCRAM iterations must be >= {DEFAULT_ITERATIONS}")
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("ascii"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return f"SCRAM-SHA-256${iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"


def is_scram_verifier(value: str) -> bool:
    """True for a well-formed verifier: what may be embedded in SQL literals and auth files."""
    return VERIFIER_PATTERN.fullmatch(value) is not None
