"""Service-level targets of a case (guide 5.1): pure functions of its timeline and calendar.

Response target, from the case's opening to care's first answer (a reply, a request for
information, a proposed solution or the closure): high 2 business hours, medium 4, low 1
business day; a critical case is escalated by telephone, so it has none here. Resolution target,
from the opening to the closure: critical 24 hours, high 2 business days, medium 5, low 10. The
resolution clock runs only while the case is with care: it pauses while the case awaits
information, has a solution proposed, or is closed (until it is re-opened).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gateway.domain import EventKind, Severity
from gateway.schedule.calendar import (
    Calendar,
    add_working_time,
    business_days_after,
    working_time_between,
)

RESPONSES = (EventKind.CARE_REPLY, EventKind.INFO_REQUESTED, EventKind.SOLUTION_PROPOSED, EventKind.CLOSED)
"""Care's events that count as the response."""
PAUSES = (EventKind.INFO_REQUESTED, EventKind.SOLUTION_PROPOSED, EventKind.CLOSED)
"""Events after which the case is not with care."""
RESUMES = (EventKind.CARE_REPLY, EventKind.CUSTOMER_REPLY, EventKind.REOPENED)
"""Events after which a paused case is with care again."""


@dataclass(frozen=True)
class Event:
    at: datetime
    kind: str
    actor: str


@dataclass(frozen=True)
class Target:
    name: str
    """"response" or "resolution"."""
    goal: str
    """What is promised, as people say it ("2 business hours", "by phone")."""
    state: str
    """met, breached, running, paused, or by_phone."""
    due_at: datetime | None
    margin: timedelta | None
    """met: how early; breached: how late (by now, if it is still open); running: time left."""

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.goal, "state": self.state,
                "due_at": self.due_at.isoformat() if self.due_at else None,
                "by": _duration(self.margin) if self.margin is not None else None}


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    return (f"{days}d " if days else "") + f"{minutes // 60}h{minutes % 60:02d}m"


def response_target(calendar: Calendar, severity: str, opened_at: datetime, events: Sequence[Event],
                    now: datetime) -> Target:
    if severity == Severity.CRITICAL:
        return Target("response", "by phone (customer calls to escalate)", "by_phone", None, None)
    if severity == Severity.LOW:
        goal, due = "1 business day", business_days_after(calendar, opened_at, 1)
    else:
        hours = 2 if severity == Severity.HIGH else 4
        goal = f"{hours} business hours"
        due = add_working_time(calendar, opened_at, timedelta(hours=hours), hours=True)
    answered = next((e.at for e in events if e.kind in RESPONSES and e.actor == "care"
                     and e.at >= opened_at), None)
    return _judge("response", goal, due, answered, now)


def _judge(name: str, goal: str, due: datetime, done: datetime | None, now: datetime) -> Target:
    if done is not None:
        return Target(name, goal, "met" if done <= due else "breached", due, abs(due - done))
    if now > due:
        return Target(name, goal, "breached", due, now - due)
    return Target(name, goal, "running", due, due - now)


def with_care(opened_at: datetime, events: Sequence[Event], now: datetime) -> list[tuple[datetime, datetime]]:
    """The intervals in which the case was with care, up to ``now``."""
    spans: list[tuple[datetime, datetime]] = []
    start: datetime | None = opened_at
    for event in events:
        if event.at < opened_at:
            continue
        if start is not None and event.kind in PAUSES:
            if event.at > start:
                spans.append((start, event.at))
            start = None
        elif start is None and event.kind in RESUMES:
            start = event.at
    if start is not None and now > start:
        spans.append((start, now))
    return spans


def resolution_target(calendar: Calendar, severity: str, opened_at: datetime, events: Sequence[Event],
                      closed_at: datetime | None, now: datetime) -> Target:
    """The margin is time with care (working time for the business-day targets): how much was
    to spare (met), is left (running, paused) or was used beyond the target (breached)."""
    if severity == Severity.CRITICAL:
        goal, budget = "24 hours", timedelta(hours=24)
    else:
        days = {Severity.HIGH: 2, Severity.MEDIUM: 5}.get(Severity(severity), 10)
        goal = f"{days} business days"
        budget = working_time_between(calendar, opened_at, business_days_after(calendar, opened_at, days),
                                      hours=False)

    def spent(start: datetime, end: datetime) -> timedelta:
        return end - start if severity == Severity.CRITICAL else working_time_between(
            calendar, start, end, hours=False)

    def after(start: datetime, amount: timedelta) -> datetime:
        return start + amount if severity == Severity.CRITICAL else add_working_time(
            calendar, start, amount, hours=False)

    spans = with_care(opened_at, events, now)
    ongoing = closed_at is None and _with_care_now(events, opened_at)
    used, due = timedelta(), None
    for index, (start, end) in enumerate(spans):
        part = spent(start, end)
        if due is None and (used + part > budget or (ongoing and index == len(spans) - 1)):
            due = after(start, budget - used)
        used += part
    if used > budget:
        return Target("resolution", goal, "breached", due, used - budget)
    if closed_at is not None:
        return Target("resolution", goal, "met", None, budget - used)
    return Target("resolution", goal, "running" if ongoing else "paused", due if ongoing else None,
                  budget - used)


def _with_care_now(events: Sequence[Event], opened_at: datetime) -> bool:
    """Whether the case is with care now (no pause since the last resume)."""
    state = True
    for event in events:
        if event.at < opened_at:
            continue
        if event.kind in PAUSES:
            state = False
        elif event.kind in RESUMES:
            state = True
    return state
