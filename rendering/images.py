"""Container images of the sidecars, in one place. The tracking-server image itself is built by
CI from images/tracking-server/Dockerfile and configured per stack by digest
(``mlflow-platform:server.image``).

Digests: these machines cannot reach a registry, so no digest here could be verified; rather
than ship an unverifiable one, the defaults are exact version tags and each stack may pin a
digest with ``server.pgbouncerImage`` / ``server.proxyImage`` (the deploy workflow resolves
them with ``docker buildx imagetools inspect``).
"""

from __future__ import annotations

from .pgbouncer import CLOUD_MINIMUM_VERSION, PgBouncerVersion

PGBOUNCER_VERSION: PgBouncerVersion = (1, 25, 1)
"""CloudNativePG's PgBouncer build; must stay >= CLOUD_MINIMUM_VERSION (CVE-2025-2291)."""
PGBOUNCER_IMAGE = "ghcr.io/cloudnative-pg/pgbouncer:" + ".".join(map(str, PGBOUNCER_VERSION))
PROXY_IMAGE = "docker.io/nginxinc/nginx-unprivileged:1.29.4-alpine"
"""Official nginx built to run unprivileged (listens on 8080); the in-pod admission proxy."""

PGBOUNCER_EXPORTER_VERSION = "0.10.2"
PGBOUNCER_EXPORTER_IMAGE = "docker.io/prometheuscommunity/pgbouncer-exporter:v" + PGBOUNCER_EXPORTER_VERSION
"""Prometheus community's PgBouncer exporter (``SHOW POOLS``/``STATS``/``LISTS`` as metrics,
``pgbouncer_pools_*``), as a sidecar reading the pod's PgBouncer over loopback as a stats user."""

assert PGBOUNCER_VERSION >= CLOUD_MINIMUM_VERSION
