"""Timestamps for audit tags and reports.

The guide writes ``datetime.utcnow().isoformat()``: a naive value without an offset, which a
reader in another timezone (or ``datetime.fromisoformat`` followed by ``.astimezone()``) takes
for local time. Everything here is timezone-aware UTC and renders with ``+00:00``.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """ISO 8601 with an explicit offset, to the second. Naive datetimes are refused, not guessed."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime: attach a timezone before formatting an audit timestamp")
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def utc_now_iso() -> str:
    return iso(utc_now())


def from_millis(millis: int) -> datetime:
    """MLflow stores times as epoch milliseconds; read them back as aware UTC datetimes."""
    return datetime.fromtimestamp(millis / 1000, UTC)


def to_millis(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: attach a timezone before converting to epoch milliseconds")
    return int(moment.timestamp() * 1000)
