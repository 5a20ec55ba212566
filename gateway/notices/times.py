"""Instants ops type: ISO 8601 with an offset, or a local time read in ``--tz``."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from gateway.directory import validate_timezone
from gateway.errors import InvalidValue


def parse_instant(text: str, timezone: str | None, what: str) -> datetime:
    """``text`` as an aware UTC datetime. A local time that does not exist (the hour skipped
    when clocks go forward) is refused; an ambiguous one (the hour repeated) is refused too,
    so ops say which with an offset."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidValue(f"{what}: not an ISO 8601 time: {text!r} (like 2026-12-01T22:00+01:00)") from None
    if value.tzinfo is not None:
        return value.astimezone(UTC)
    if timezone is None:
        raise InvalidValue(f"{what}: {text!r} has no UTC offset; add one or give --tz")
    zone = ZoneInfo(validate_timezone(timezone))
    early, late = value.replace(tzinfo=zone, fold=0), value.replace(tzinfo=zone, fold=1)
    if early.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != value:
        raise InvalidValue(f"{what}: {text} does not exist in {timezone} (clocks go forward)")
    if early.utcoffset() != late.utcoffset():
        raise InvalidValue(f"{what}: {text} happens twice in {timezone} (clocks go back); give an offset")
    return early.astimezone(UTC)
