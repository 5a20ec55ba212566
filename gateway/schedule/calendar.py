"""Business days and business hours of an organisation: pure functions, no database.

A business day is a day of the organisation's country's working week (the ``holidays``
package knows each country's weekend, Friday-Saturday in some, and when it changed) that is
not one of its public holidays (country and optional subdivision), in the organisation's IANA
zone. "N business days after T" is the same local clock time on the Nth business day after T's
local date; a T on a non-business day counts from the start (00:00) of the next business day.

DST: a local time that does not exist on the due date (spring forward) or exists twice (fall
back) resolves to the later of its two readings: 02:30 in a gap becomes 03:30 (shifted by the
gap), 02:30 in an overlap is the second 02:30. Every result is an aware UTC datetime.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

import holidays

DEFAULT_HOURS = (time(9, 0), time(17, 0))
"""Business hours when an organisation sets none (local time)."""

MAX_DAYS_WITHOUT_BUSINESS = 400
"""A calendar with no business day in this many days is broken (every day a holiday)."""


@cache
def _country_holidays(country: str, subdivision: str | None) -> holidays.HolidayBase:
    return holidays.country_holidays(country, subdiv=subdivision)


@lru_cache(maxsize=100_000)
def _is_working_day(country: str, subdivision: str | None, day: date) -> bool:
    """The ``holidays`` package's answer, remembered: a pass asks it a few dozen times per case."""
    return bool(_country_holidays(country, subdivision).is_working_day(day))


@dataclass(frozen=True)
class Calendar:
    """One organisation's working time: zone, holiday country/subdivision, business hours."""

    timezone: str
    country: str
    subdivision: str | None = None
    hours: tuple[time, time] = DEFAULT_HOURS
    zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.hours[0] < self.hours[1]:
            raise ValueError(f"business hours must start before they end: {self.hours}")
        object.__setattr__(self, "zone", ZoneInfo(self.timezone))

    def is_business_day(self, day: date) -> bool:
        return _is_working_day(self.country, self.subdivision, day)

    def next_business_day(self, day: date) -> date:
        """The first business day strictly after ``day``."""
        for _ in range(MAX_DAYS_WITHOUT_BUSINESS):
            day += timedelta(days=1)
            if self.is_business_day(day):
                return day
        raise ValueError(f"no business day in {MAX_DAYS_WITHOUT_BUSINESS} days after {day}")

    def local(self, instant: datetime) -> datetime:
        return instant.astimezone(self.zone)


def resolve_local(zone: ZoneInfo, day: date, clock: time) -> datetime:
    """The UTC instant of ``clock`` on ``day`` in ``zone``; a non-existent or ambiguous local
    time is the later of its two readings (see the module docstring)."""
    naive = datetime.combine(day, clock.replace(tzinfo=None, fold=0))
    readings = (naive.replace(tzinfo=zone, fold=0), naive.replace(tzinfo=zone, fold=1))
    return max(r.astimezone(UTC) for r in readings)


def business_days_after(calendar: Calendar, start: datetime, days: int) -> datetime:
    """The instant ``days`` business days after ``start`` (0: ``start``, or the start of the
    next business day when ``start`` is on none)."""
    if days < 0:
        raise ValueError("days must not be negative")
    local = calendar.local(start)
    day, clock = local.date(), local.time().replace(tzinfo=None)
    if not calendar.is_business_day(day):
        day, clock = calendar.next_business_day(day), time(0)
    elif days == 0:
        return start.astimezone(UTC)
    for _ in range(days):
        day = calendar.next_business_day(day)
    return resolve_local(calendar.zone, day, clock)


def _windows(calendar: Calendar, start: datetime, *, hours: bool) -> Iterator[tuple[datetime, datetime]]:
    """Working windows that end after ``start``, in order: each business day's business hours
    (``hours``), or each business day whole."""
    day = calendar.local(start).date() - timedelta(days=1)
    for _ in range(MAX_DAYS_WITHOUT_BUSINESS * 50):  # ample for any target
        day += timedelta(days=1)
        if not calendar.is_business_day(day):
            continue
        if hours:
            opens, closes = (resolve_local(calendar.zone, day, t) for t in calendar.hours)
        else:
            opens = resolve_local(calendar.zone, day, time(0))
            closes = resolve_local(calendar.zone, day + timedelta(days=1), time(0))
        if closes > start:
            yield max(opens, start), closes
    raise ValueError("no working window found")  # pragma: no cover - a broken calendar


def add_working_time(calendar: Calendar, start: datetime, amount: timedelta, *, hours: bool) -> datetime:
    """The instant at which ``amount`` of working time (business hours, or whole business days)
    has passed since ``start``."""
    left = amount
    for opens, closes in _windows(calendar, start, hours=hours):
        if opens + left <= closes:
            return (opens + left).astimezone(UTC)
        left -= closes - opens
    raise AssertionError("unreachable")  # pragma: no cover


def working_time_between(
    calendar: Calendar, start: datetime, end: datetime, *, hours: bool
) -> timedelta:
    """How much working time (business hours, or whole business days) lies in [start, end)."""
    total = timedelta()
    if end <= start:
        return total
    for opens, closes in _windows(calendar, start, hours=hours):
        if opens >= end:
            break
        total += min(closes, end) - opens
    return total


_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def parse_hours(text: str) -> tuple[time, time]:
    """``"08:00-18:00"`` -> (08:00, 18:00), local times; the start must be before the end."""
    match = _HOURS.match(text)
    try:
        if match is None:
            raise ValueError
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        opens, closes = time(h1, m1), time(h2, m2)
    except ValueError:
        raise ValueError(f"business hours look like 08:00-18:00, not {text!r}") from None
    if not opens < closes:
        raise ValueError(f"business hours must start before they end, not {text!r}")
    return opens, closes


def format_hours(hours: tuple[time, time]) -> str:
    return f"{hours[0]:%H:%M}-{hours[1]:%H:%M}"
