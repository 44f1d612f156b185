"""Time in one place: naive UTC datetimes, as Trove stores and shows them."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def isoformat(value: datetime | None) -> str | None:
    """Trove's wire format: ISO-8601 without microseconds or zone."""
    return value.replace(microsecond=0).isoformat() if value else None
