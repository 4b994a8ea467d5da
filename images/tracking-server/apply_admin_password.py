"""Applies a rotated MLflow admin password through the server's update-password API.

Why an API call: ``MLFLOW_AUTH_ADMIN_PASSWORD`` (and the auth ini) only seed an *empty* user
store; once the admin exists, a new value there changes nothing. Idempotent: a no-op when the
new password already works; otherwise it logs in with the previous password and sets the new
one (``PATCH /api/2.0/mlflow/users/update-password``), then checks that the new one works.

    apply_admin_password.py URL USERNAME NEW_PASSWORD_FILE PREVIOUS_PASSWORD_FILE

Standalone (stdlib only): shipped in the tracking-server image for the rotation Job, run by the
local upgrade test too. TLS is verified with the default trust store (``SSL_CERT_FILE`` may name
another CA). Never prints a password.
"""

from __future__ import annotations

import base64
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

ATTEMPTS = 30


def _request(url: str, method: str, username: str, password: str, body: dict[str, str] | None = None) -> int:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - https URL from config
    request.add_header("Authorization", f"Basic {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _status(url: str, method: str, username: str, password: str, body: dict[str, str] | None = None) -> int:
    """The HTTP status, retrying while the server is unreachable or not ready (5xx)."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            status = _request(url, method, username, password, body)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            status, detail = 0, f"unreachable ({reason})"
        else:
            detail = f"HTTP {status}"
        if status and status < 500:
            return status
        if attempt == ATTEMPTS:
            raise SystemExit(f"admin password: {url.split('?')[0]} still {detail} after {ATTEMPTS} attempts")
        print(f"  waiting for the server ({detail})", flush=True)
        time.sleep(min(5.0, attempt))
    raise AssertionError("unreachable")


def works(base: str, username: str, password: str) -> bool:
    url = f"{base}/api/2.0/mlflow/users/get?{urllib.parse.urlencode({'username': username})}"
    status = _status(url, "GET", username, password)
    if status not in (200, 401):
        raise SystemExit(f"admin password: unexpected HTTP {status} when logging in as {username}")
    return status == 200


def apply(base: str, username: str, new_password: str, previous_password: str) -> str:
    """``unchanged`` or ``changed``; exits non-zero when neither password works."""
    if works(base, username, new_password):
        return "unchanged"
    if not works(base, username, previous_password):
        raise SystemExit(f"admin password: neither the new nor the previous password logs {username} in")
    url = f"{base}/api/2.0/mlflow/users/update-password"
    # Changing one's own password re-asserts the current one (MLflow >= 3.17).
    body = {"username": username, "password": new_password, "current_password": previous_password}
    status = _status(url, "PATCH", username, previous_password, body)
    if status != 200:
        raise SystemExit(f"admin password: update-password answered HTTP {status}")
    if not works(base, username, new_password):
        raise SystemExit("admin password: the new password does not work after the update")
    return "changed"


def main(argv: list[str]) -> int:
    if len(argv) != 5:
        print("usage: apply_admin_password.py URL USERNAME NEW_PASSWORD_FILE PREVIOUS_PASSWORD_FILE", file=sys.stderr)
        return 2
    base, username = argv[1].rstrip("/"), argv[2]
    with open(argv[3], encoding="utf-8") as new_file, open(argv[4], encoding="utf-8") as previous_file:
        new_password, previous_password = new_file.read().strip(), previous_file.read().strip()
    print(f"admin password for {username}: {apply(base, username, new_password, previous_password)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
