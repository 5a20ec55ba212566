"""Business-day and business-hour arithmetic: hand-checked cases and properties (hypothesis)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.schedule.calendar import (
    Calendar,
    add_working_time,
    business_days_after,
    format_hours,
    parse_hours,
    resolve_local,
    working_time_between,
)

BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")


def local(when: datetime, zone: str) -> str:
    return when.astimezone(ZoneInfo(zone)).strftime("%a %Y-%m-%d %H:%M %Z")


# --- hand-checked -------------------------------------------------------------------------

def test_a_request_on_the_friday_before_easter_in_berlin() -> None:
    """Good Friday (3 April 2026) is a holiday, then the weekend, then Easter Monday: the count
    starts at 00:00 on Tuesday 7 April."""
    berlin = Calendar("Europe/Berlin", "DE", "BE")
    asked = datetime(2026, 4, 3, 10, 0, tzinfo=BERLIN)
    assert [local(business_days_after(berlin, asked, n), "Europe/Berlin") for n in (2, 5, 10)] == [
        "Thu 2026-04-09 00:00 CEST", "Tue 2026-04-14 00:00 CEST", "Tue 2026-04-21 00:00 CEST"]
    thursday = datetime(2026, 4, 2, 15, 0, tzinfo=BERLIN)  # Maundy Thursday: a business day in Berlin
    assert local(business_days_after(berlin, thursday, 2), "Europe/Berlin") == "Wed 2026-04-08 15:00 CEST"


def test_a_request_on_31_december_in_new_york() -> None:
    """New Year's Day is a holiday; Martin Luther King Day (18 January) is after the 10th day."""
    new_york = Calendar("America/New_York", "US", "NY")
    asked = datetime(2026, 12, 31, 16, 0, tzinfo=NEW_YORK)
    assert [local(business_days_after(new_york, asked, n), "America/New_York") for n in (2, 5, 10)] == [
        "Tue 2027-01-05 16:00 EST", "Fri 2027-01-08 16:00 EST", "Fri 2027-01-15 16:00 EST"]


def test_friday_saturday_weekends() -> None:
    riyadh = Calendar("Asia/Riyadh", "SA")
    thursday = datetime(2026, 11, 5, 10, 0, tzinfo=ZoneInfo("Asia/Riyadh"))
    assert [local(business_days_after(riyadh, thursday, n), "Asia/Riyadh")[:14] for n in (1, 2)] == [
        "Sun 2026-11-08", "Mon 2026-11-09"]
    dubai = Calendar("Asia/Dubai", "AE")  # Friday-Saturday until 2021, Saturday-Sunday since 2022
    in_2021 = datetime(2021, 11, 4, 10, 0, tzinfo=ZoneInfo("Asia/Dubai"))
    in_2026 = datetime(2026, 11, 5, 10, 0, tzinfo=ZoneInfo("Asia/Dubai"))
    assert local(business_days_after(dubai, in_2021, 1), "Asia/Dubai")[:14] == "Sun 2021-11-07"
    assert local(business_days_after(dubai, in_2026, 1), "Asia/Dubai")[:14] == "Fri 2026-11-06"


def test_local_times_that_do_not_exist_or_exist_twice_take_the_later_reading() -> None:
    """An Israeli organisation in Berlin's zone works on Sundays, the days Europe changes clocks."""
    calendar = Calendar("Europe/Berlin", "IL")
    gap = business_days_after(calendar, datetime(2026, 3, 26, 2, 30, tzinfo=BERLIN), 1)
    assert local(gap, "Europe/Berlin") == "Sun 2026-03-29 03:30 CEST"  # 02:30 did not exist
    overlap = business_days_after(calendar, datetime(2026, 10, 22, 2, 30, tzinfo=BERLIN), 1)
    assert overlap == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # the second 02:30 (CET)
    assert resolve_local(BERLIN, date(2026, 10, 25), time(2, 30)) - timedelta(hours=1) == datetime(
        2026, 10, 25, 2, 30, tzinfo=BERLIN).astimezone(UTC)


def test_dst_in_new_york_and_sydney() -> None:
    """Organisations whose working week includes Sunday, the day these zones change clocks."""
    new_york = business_days_after(Calendar("America/New_York", "IL"),
                                   datetime(2026, 3, 5, 2, 30, tzinfo=NEW_YORK), 1)
    assert local(new_york, "America/New_York") == "Sun 2026-03-08 03:30 EDT"  # 02:30 was skipped
    sydney = business_days_after(Calendar("Australia/Sydney", "SA"),
                                 datetime(2026, 4, 2, 2, 30, tzinfo=ZoneInfo("Australia/Sydney")), 1)
    assert sydney == datetime(2026, 4, 4, 16, 30, tzinfo=UTC)  # the second 02:30 (AEST, +10:00)


def test_business_hours() -> None:
    berlin = Calendar("Europe/Berlin", "DE", "BE", parse_hours("08:00-18:00"))
    friday_evening = datetime(2026, 11, 6, 17, 0, tzinfo=BERLIN)
    due = add_working_time(berlin, friday_evening, timedelta(hours=2), hours=True)
    assert local(due, "Europe/Berlin") == "Mon 2026-11-09 09:00 CET"
    assert working_time_between(berlin, friday_evening, due, hours=True) == timedelta(hours=2)
    assert format_hours(berlin.hours) == "08:00-18:00"
    for bad in ("18:00-08:00", "9-5", "09:00", "09:00+01:00-17:00"):
        with pytest.raises(ValueError, match="business hours"):
            parse_hours(bad)


# --- properties ---------------------------------------------------------------------------

ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Riyadh", "Asia/Dubai",
         "Asia/Kolkata", "UTC", "America/Sao_Paulo", "Pacific/Chatham"]
COUNTRIES = [("DE", "BY"), ("DE", None), ("US", "NY"), ("AU", "NSW"), ("SA", None), ("AE", None),
             ("IL", None), ("GB", None), ("FR", None), ("IN", None)]
DST_DAYS = [  # spring forward and fall back, local noon
    datetime(2026, 3, 29, 12, tzinfo=UTC), datetime(2026, 10, 25, 12, tzinfo=UTC),  # Berlin
    datetime(2026, 3, 8, 12, tzinfo=UTC), datetime(2026, 11, 1, 12, tzinfo=UTC),  # New York
    datetime(2026, 4, 5, 12, tzinfo=UTC), datetime(2026, 10, 4, 12, tzinfo=UTC),  # Sydney
]

calendars = st.builds(
    lambda zone, country: Calendar(zone, *country), st.sampled_from(ZONES), st.sampled_from(COUNTRIES))
instants = st.one_of(
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)),
    st.builds(lambda day, minutes: day + timedelta(minutes=minutes),  # around DST days and year ends
              st.sampled_from([*DST_DAYS, datetime(2026, 12, 31, 12, tzinfo=UTC)]),
              st.integers(-6 * 24 * 60, 6 * 24 * 60)),
)


def working(calendar: Calendar, day: date) -> bool:
    """The holidays package's own answer, asked independently of the module under test."""
    return bool(holidays.country_holidays(calendar.country, subdiv=calendar.subdivision).is_working_day(day))


@settings(max_examples=300, deadline=None)
@given(calendar=calendars, start=instants, days=st.integers(1, 12))
@example(calendar=Calendar("Europe/Berlin", "IL"), start=datetime(2026, 3, 26, 1, 30, tzinfo=UTC), days=1)
@example(calendar=Calendar("Australia/Sydney", "SA"), start=datetime(2026, 4, 1, 15, 30, tzinfo=UTC), days=3)
def test_due_times_fall_on_business_days_at_the_same_local_time(
    calendar: Calendar, start: datetime, days: int
) -> None:
    due = business_days_after(calendar, start, days)
    zone = calendar.zone
    begin = start.astimezone(zone)
    on_business_day = working(calendar, begin.date())
    wanted = begin.time().replace(tzinfo=None) if on_business_day else time(0)
    shown = due.astimezone(zone)
    assert due.tzinfo is UTC and due > start
    assert working(calendar, shown.date())
    counted = [d for d in _days(begin.date(), shown.date()) if working(calendar, d)]
    assert len(counted) == days + (0 if on_business_day else 1)  # the next business day counts from 00:00
    naive = datetime.combine(shown.date(), wanted)
    readings = {naive.replace(tzinfo=zone, fold=f).astimezone(UTC) for f in (0, 1)}
    assert due == max(readings)
    if len(readings) == 1:
        assert shown.time().replace(tzinfo=None) == wanted  # the time exists once: exactly it


def _days(after: date, through: date) -> list[date]:
    return [after + timedelta(days=i) for i in range(1, (through - after).days + 1)]


@settings(max_examples=150, deadline=None)
@given(calendar=calendars, start=instants, days=st.integers(0, 11))
def test_due_times_are_monotonic_in_the_number_of_days(
    calendar: Calendar, start: datetime, days: int
) -> None:
    assert business_days_after(calendar, start, days) < business_days_after(calendar, start, days + 1)


@settings(max_examples=150, deadline=None)
@given(calendar=calendars, start=instants, minutes=st.integers(1, 60 * 24 * 12), hours=st.booleans())
def test_working_time_added_is_working_time_between(
    calendar: Calendar, start: datetime, minutes: int, hours: bool
) -> None:
    amount = timedelta(minutes=minutes)
    end = add_working_time(calendar, start, amount, hours=hours)
    assert end > start
    assert working_time_between(calendar, start, end, hours=hours) == amount
    assert working(calendar, (end - timedelta(microseconds=1)).astimezone(calendar.zone).date())
