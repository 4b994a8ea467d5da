"""What the TLS edge in front of MLflow must do, once, for the EKS Ingress and the local nginx.

Why these values: MLflow users upload and download multi-GB models through this edge (proxied
artifacts, and the model registry in both modes). The common failures are 413 (body size),
504 (read timeout while the server streams to S3) and worker timeouts caused by the proxy
buffering a whole upload to disk before forwarding it. So:

* a body limit large enough for models but still finite (a bound on what one request can make
  the server stream);
* request *and* response buffering off, so uploads and downloads stream end to end;
* long proxy read/send timeouts (they bound the gap between two reads/writes, not the whole
  transfer);
* plain HTTP answers only with a redirect to HTTPS (308 keeps the method, as ingress-nginx does).

``ingress_nginx_annotations`` maps the settings onto ingress-nginx annotations for the cloud;
the local target renders an nginx.conf from the same object (``localplatform.nginx``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .units import GIB, MIB

RedirectStatus = Literal[301, 308]
MIN_BODY_SIZE_BYTES = 1 * GIB


@dataclass(frozen=True)
class IngressSettings:
    max_body_size_bytes: int = 16 * GIB
    proxy_connect_timeout_s: int = 10
    proxy_read_timeout_s: int = 900
    proxy_send_timeout_s: int = 900
    client_body_timeout_s: int = 900
    request_buffering: bool = False
    response_buffering: bool = False
    ssl_redirect: bool = True
    redirect_status: RedirectStatus = 308
    hsts_max_age_s: int = 31_536_000
    """One year in the cloud. The local target passes 0: HSTS on ``localhost`` would pin every
    local port of the developer's browser to HTTPS."""
    tls_protocols: tuple[str, ...] = ("TLSv1.2", "TLSv1.3")

    def __post_init__(self) -> None:
        if self.max_body_size_bytes < MIN_BODY_SIZE_BYTES:
            raise ValueError("max_body_size_bytes below 1 GiB cannot carry typical model artifacts")
        if min(self.proxy_read_timeout_s, self.proxy_send_timeout_s) < 60:
            raise ValueError("proxy timeouts under 60 s break large artifact transfers")


def nginx_size(size_bytes: int) -> str:
    """nginx size literal; megabytes are understood by every nginx version (and ingress-nginx)."""
    if size_bytes % MIB:
        raise ValueError("sizes are rendered in whole MiB")
    return f"{size_bytes // MIB}m"


def ingress_nginx_annotations(settings: IngressSettings) -> dict[str, str]:
    """``nginx.ingress.kubernetes.io/*`` annotations for the Kubernetes Ingress."""
    prefix = "nginx.ingress.kubernetes.io/"
    on_off = {True: "on", False: "off"}
    annotations = {
        "proxy-body-size": nginx_size(settings.max_body_size_bytes),
        "proxy-connect-timeout": str(settings.proxy_connect_timeout_s),
        "proxy-read-timeout": str(settings.proxy_read_timeout_s),
        "proxy-send-timeout": str(settings.proxy_send_timeout_s),
        "proxy-request-buffering": on_off[settings.request_buffering],
        "proxy-buffering": on_off[settings.response_buffering],
        "ssl-redirect": "true" if settings.ssl_redirect else "false",
        "force-ssl-redirect": "true" if settings.ssl_redirect else "false",
        "backend-protocol": "HTTP",
    }
    return {prefix + key: value for key, value in annotations.items()}
