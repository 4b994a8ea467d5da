"""nginx in front of MLflow: the local TLS edge and the per-pod admission proxy on EKS.

One renderer for both, from :class:`rendering.ingress.IngressSettings` (body size, timeouts,
streaming) plus the admission limit from :mod:`rendering.pools`:

* ``limit_conn`` caps the requests in flight to this MLflow instance at the plan's
  ``in_flight_per_replica``; the excess gets **503** at once, which MLflow's client retries with
  jittered exponential backoff — instead of queueing inside MLflow, where pool timeouts come back
  as HTTP 400 that nobody retries, or inside PgBouncer, where they become 30–120 s stalls.
* **No Retry-After** on that 503: urllib3 (under MLflow's client) sleeps a server's Retry-After
  *instead of* its backoff, so ``Retry-After: 1`` shrank MLflow's 7 retries from ~4 minutes of
  backoff to ~7 s, and ``make bench`` saw clients give up (``too many 503 error responses``) while
  the server was merely busy. Without it every client backs off 2, 4, 8 … s with jitter.
* ``/health`` is outside the limit, so probes are never starved by load.
* With TLS (local target) plain HTTP only redirects; without TLS (the pod, behind the Ingress
  that terminates TLS) the proxy listens on one plain port inside the pod network.
"""

from __future__ import annotations

from dataclasses import dataclass

from .ingress import IngressSettings, nginx_size


@dataclass(frozen=True)
class ProxyTls:
    https_port: int
    http_port: int
    cert_file: str
    key_file: str


@dataclass(frozen=True)
class ProxySite:
    listen_host: str
    listen_port: int
    """The plain port without TLS; ignored when ``tls`` is set (its ports are used)."""
    upstream_host: str
    upstream_port: int
    server_names: tuple[str, ...]
    pid_file: str
    temp_dir: str
    max_in_flight: int | None
    """Admission limit (``PoolPlan.in_flight_per_replica``); None disables admission control."""
    tls: ProxyTls | None = None
    worker_processes: int = 1
    """One worker keeps the ``limit_conn`` count exact and is plenty for a proxy."""


def render_proxy_conf(settings: IngressSettings, site: ProxySite) -> str:
    on_off = {True: "on", False: "off"}
    names = " ".join(site.server_names)
    proto = "https" if site.tls else "$http_x_forwarded_proto"
    admission_zone = "    limit_conn_zone $server_name zone=mlflow_in_flight:1m;\n" if site.max_in_flight else ""
    admission = (
        f"            limit_conn mlflow_in_flight {site.max_in_flight};\n"
        "            limit_conn_status 503;\n"
        "            limit_conn_log_level warn;\n"
        # Only nginx's own 503s reach error_page (proxy_intercept_errors is off).
        "            error_page 503 = @over_capacity;\n"
        if site.max_in_flight
        else ""
    )
    over_capacity = (
        """
        location @over_capacity {
            default_type application/json;
            return 503 '{"error_code": "TEMPORARILY_UNAVAILABLE", "message": "server at capacity, retry"}';
        }
"""
        if site.max_in_flight
        else ""
    )
    proxy = f"""            proxy_pass http://mlflow;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto {proto};
            proxy_request_buffering {on_off[settings.request_buffering]};
            proxy_buffering {on_off[settings.response_buffering]};
            proxy_connect_timeout {settings.proxy_connect_timeout_s}s;
            proxy_read_timeout {settings.proxy_read_timeout_s}s;
            proxy_send_timeout {settings.proxy_send_timeout_s}s;
"""
    if site.tls:
        tls = site.tls
        hsts = (
            f'        add_header Strict-Transport-Security "max-age={settings.hsts_max_age_s}" always;\n'
            if settings.hsts_max_age_s > 0
            else ""
        )
        redirect = (
            f"        return {settings.redirect_status} https://$host:{tls.https_port}$request_uri;"
            if settings.ssl_redirect
            else "        return 403;"
        )
        servers = f"""    # Plain HTTP only redirects (308 keeps the method, as ingress-nginx does).
    server {{
        listen {site.listen_host}:{tls.http_port};
        server_name {names};
{redirect}
    }}

    server {{
        listen {site.listen_host}:{tls.https_port} ssl;
        server_name {names};
        ssl_certificate {tls.cert_file};
        ssl_certificate_key {tls.key_file};
        ssl_protocols {" ".join(settings.tls_protocols)};
        ssl_prefer_server_ciphers off;
        ssl_session_cache shared:mlflow_tls:1m;
        ssl_session_tickets off;
{hsts}"""
    else:
        servers = f"""    server {{
        listen {site.listen_host}:{site.listen_port};
        server_name {names};
"""
    return f"""# Rendered by rendering.proxy; do not edit.
worker_processes {site.worker_processes};
daemon off;
pid {site.pid_file};
error_log stderr notice;

events {{
    worker_connections 1024;
}}

http {{
    access_log /dev/stdout;
    server_tokens off;
    client_body_temp_path {site.temp_dir}/client_body;
    proxy_temp_path {site.temp_dir}/proxy;
    fastcgi_temp_path {site.temp_dir}/fastcgi;
    uwsgi_temp_path {site.temp_dir}/uwsgi;
    scgi_temp_path {site.temp_dir}/scgi;
{admission_zone}
    upstream mlflow {{
        server {site.upstream_host}:{site.upstream_port};
        keepalive 16;
    }}

{servers}        client_max_body_size {nginx_size(settings.max_body_size_bytes)};
        client_body_timeout {settings.client_body_timeout_s}s;
        send_timeout {settings.proxy_send_timeout_s}s;

        # Probes: never subject to admission control.
        location = /health {{
{proxy}        }}

        location / {{
{admission}{proxy}        }}
{over_capacity}    }}
}}
"""
