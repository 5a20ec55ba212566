"""Service-level targets (guide 5.1), hand-checked on Berlin's calendar (November 2026: no
holiday in Berlin; 2 November is a Monday)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from gateway.schedule.calendar import Calendar
from gateway.schedule.targets import Event, resolution_target, response_target, with_care

BERLIN = ZoneInfo("Europe/Berlin")
CAL = Calendar("Europe/Berlin", "DE", "BE")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=BERLIN)


def care(kind: str, when: datetime) -> Event:
    return Event(when, kind, "care")


def test_high_response_counts_business_hours_over_the_weekend() -> None:
    opened = at(6, 16, 30)  # Friday, half an hour before closing
    target = response_target(CAL, "high", opened, [care("care_reply", at(9, 10))], at(9, 12))
    assert target.due_at == at(9, 10, 30)  # 30 min on Friday, 90 on Monday from 09:00
    assert (target.state, target.margin) == ("met", timedelta(minutes=30))
    assert target.as_dict()["by"] == "0h30m"


def test_medium_response_with_the_organisations_hours_and_a_breach() -> None:
    early = Calendar("Europe/Berlin", "DE", "BE", (time(8), time(18)))
    opened = at(2, 7)  # before opening: counted from 08:00
    late = response_target(early, "medium", opened, [care("info_requested", at(2, 13))], at(3, 9))
    assert late.due_at == at(2, 12) and (late.state, late.margin) == ("breached", timedelta(hours=1))
    waiting = response_target(early, "medium", opened, [], at(2, 11))
    assert (waiting.state, waiting.margin) == ("running", timedelta(hours=1))
    overdue = response_target(early, "medium", opened, [Event(at(2, 9), "customer_reply", "x@y")], at(2, 14))
    assert (overdue.state, overdue.margin) == ("breached", timedelta(hours=2))  # no care response


def test_low_response_is_one_business_day_and_critical_is_by_phone() -> None:
    assert response_target(CAL, "low", at(6, 15), [], at(6, 16)).due_at == at(9, 15)
    critical = response_target(CAL, "critical", at(6, 15), [], at(6, 16))
    assert critical.state == "by_phone" and critical.due_at is None


def test_the_resolution_clock_pauses_while_care_waits_for_the_customer() -> None:
    opened = at(2, 10)
    events = [care("opened", opened), care("info_requested", at(2, 12)),
              Event(at(4, 12), "customer_reply", "ana@acme.example")]
    assert with_care(opened, events, at(5, 9)) == [(at(2, 10), at(2, 12)), (at(4, 12), at(5, 9))]
    running = resolution_target(CAL, "high", opened, events, None, at(5, 9))
    assert running.state == "running" and running.due_at == at(6, 10)  # Wednesday 10:00 plus the 2-day pause
    assert running.margin == timedelta(hours=25)  # 2 days of business-day time less 2 h and 21 h used
    paused = resolution_target(CAL, "high", opened, events[:2], None, at(20, 9))
    assert paused.state == "paused" and paused.due_at is None and paused.margin == timedelta(hours=46)


def test_resolution_met_or_breached_at_closing() -> None:
    opened = at(2, 10)
    closed_in_time = [care("closed", at(3, 10))]
    met = resolution_target(CAL, "high", opened, closed_in_time, at(3, 10), at(20, 9))
    assert (met.state, met.margin) == ("met", timedelta(hours=24))
    closed_late = [care("closed", at(5, 10))]
    late = resolution_target(CAL, "high", opened, closed_late, at(5, 10), at(20, 9))
    assert (late.state, late.due_at, late.margin) == ("breached", at(4, 10), timedelta(hours=24))
    weekend = resolution_target(CAL, "medium", at(6, 10), [], None, at(9, 10))  # Friday to Monday
    assert weekend.margin == timedelta(days=4)  # the weekend does not count: one of five days used


def test_critical_resolution_is_24_hours_of_time_with_care() -> None:
    opened = at(7, 10)  # a Saturday: critical counts every hour
    events = [care("solution_proposed", at(7, 20)), Event(at(8, 8), "customer_reply", "ana@acme.example")]
    target = resolution_target(CAL, "critical", opened, events, None, at(8, 9))
    assert target.due_at == at(8, 22) and target.state == "running"  # 10 h used, 14 h from 08:00
    breached = resolution_target(CAL, "critical", opened, events, None, at(9, 0))
    assert (breached.state, breached.margin) == ("breached", timedelta(hours=2))
