"""Fail fast, with the fix, on the tracking-URI mistakes MLflow's client retries or misreports.

* **Certificate errors.** MLflow retries a TLS verification failure like any connection
  error: ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` (7) retries with backoff factor 2 and up to 1 s of
  jitter each, urllib3 capping one sleep at 120 s — 0 + 4 + 8 + 16 + 32 + 64 + 120 = 244 s of
  sleeping for an error that can never succeed (measured: 245.6 s with MLflow 3.17.2). See
  ``mlflow/utils/request_utils.py`` (``_get_request_session``) and urllib3's
  ``Retry.get_backoff_time``.
* **``http://`` to a server that redirects to HTTPS.** MLflow follows the redirect, but
  requests drops the ``Authorization`` header when the port changes (``should_strip_auth``), so
  the tool sees "401 not authenticated"; a POST also turns into a GET on a 301/302. Worse, the
  first request already carried the password in clear text.
* **``http://`` to the HTTPS port.** nginx answers 400 with an HTML page ("The plain HTTP
  request was sent to HTTPS port"), which reaches the user as an unparseable API error.

So before a tool sends anything with credentials, it makes one request of its own to
``<uri>/health``: no credentials, no retries, no redirects followed, TLS verified exactly as
MLflow will (``MLFLOW_TRACKING_SERVER_CERT_PATH``, ``MLFLOW_TRACKING_INSECURE_TLS``,
``REQUESTS_CA_BUNDLE``, client certificate). Any of the three mistakes ends the tool in one line
that names the fix. Anything else (refused, timed out, a 401 or 404 from ``/health`` behind a
path prefix) is left to the real call, whose retries are right for a server that is restarting.
"""

from __future__ import annotations

import re

from .cli import ConfigError, OpsError

HEALTH_PATH = "/health"
TIMEOUT_S = (5.0, 15.0)
"""Connect and read timeouts of the one preflight request."""
ENV_HINT = "the local platform's values are in .local/mlflow.env"
_PLAIN_HTTP_TO_TLS = re.compile(r"plain HTTP request was sent to HTTPS port", re.I)
_TLS_REASON = re.compile(r"certificate verify failed: ([^(\])'\"]+)|(wrong version number|unknown protocol)", re.I)


class TlsError(OpsError):
    """The server's certificate cannot be verified (exit 3: the call could not complete)."""


def check_tracking_server(uri: str) -> None:
    """Raise :class:`TlsError` or :class:`cli.ConfigError` for the mistakes above; return
    quietly otherwise (including when the server cannot be reached at all)."""
    import requests
    from mlflow.utils.credentials import get_default_host_creds

    creds = get_default_host_creds(uri)
    url = uri.rstrip("/") + HEALTH_PATH
    try:
        response = requests.get(
            url, verify=creds.verify, cert=creds.client_cert_path, allow_redirects=False, timeout=TIMEOUT_S
        )
    except requests.exceptions.SSLError as error:
        raise TlsError(_tls_message(uri, str(error))) from None
    except requests.RequestException:
        return
    if response.is_redirect:
        target = response.headers.get("Location", "?")
        raise ConfigError(
            f"the tracking server redirects {url} to {target}: MLflow's client would drop the credentials on the "
            f"redirect (401) after sending them unencrypted; set MLFLOW_TRACKING_URI to the https:// URL, with "
            f"MLFLOW_TRACKING_SERVER_CERT_PATH for its CA ({ENV_HINT})"
        )
    if response.status_code == 400 and _PLAIN_HTTP_TO_TLS.search(response.text):
        raise ConfigError(
            f"{uri} sends plain HTTP to the server's HTTPS port: set MLFLOW_TRACKING_URI to "
            f"{'https://' + uri.removeprefix('http://')} with MLFLOW_TRACKING_SERVER_CERT_PATH for its CA ({ENV_HINT})"
        )


def _tls_message(uri: str, error: str) -> str:
    match = _TLS_REASON.search(error)
    reason = (match.group(1) or match.group(2)).strip() if match else "TLS handshake failed"
    if uri.startswith("https://") and match and match.group(2):
        return (
            f"TLS to {uri} failed ({reason}): the port does not speak HTTPS; use the server's https:// URL "
            f"and MLFLOW_TRACKING_SERVER_CERT_PATH ({ENV_HINT})"
        )
    return (
        f"cannot verify the TLS certificate of {uri} ({reason}): set MLFLOW_TRACKING_SERVER_CERT_PATH to the CA "
        f"that signed it and use the https:// URL it was issued for ({ENV_HINT}); MLflow itself would retry "
        f"this for about 4 minutes"
    )
