"""Byte-size helpers shared by the renderers (Postgres, PgBouncer, ingress body sizes)."""

from __future__ import annotations

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB


def human_bytes(size_bytes: int) -> str:
    """Postgres-style size literal (``2GB``, ``64MB``, ``512kB``) for logs and docs."""
    for unit, factor in (("GB", GIB), ("MB", MIB), ("kB", KIB)):
        if size_bytes >= factor and size_bytes % factor == 0:
            return f"{size_bytes // factor}{unit}"
    return f"{size_bytes}B"
