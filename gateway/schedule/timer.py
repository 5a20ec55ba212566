"""The auto follow-up timer's rules (guide 4.8, 4.9): pure functions on a case's timer columns.

Care's request for information or proposed solution starts a cycle; with no customer
response, step 1 (reminder) is due 2 business days later, step 2 (second reminder) 5, step 3
(automatic closure with the final mail) 10, counted in the organisation's calendar from the
cycle's start. A daemon that was down takes only the most advanced step that is due.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from gateway.models import Case, Organisation
from gateway.outbound.kinds import MailKind
from gateway.schedule.calendar import Calendar, business_days_after, parse_hours

STEP_DAYS = {1: 2, 2: 5, 3: 10}
"""Business days after the cycle's start at which each step is due."""
LAST_STEP = 3
STEP_KINDS = {1: MailKind.FOLLOWUP_1, 2: MailKind.FOLLOWUP_2, 3: MailKind.FOLLOWUP_3_CLOSED}
STEP_NAMES = {1: "reminder 1", 2: "reminder 2", 3: "auto-close"}


def calendar_of(org: Organisation) -> Calendar:
    return _calendar(org.timezone, org.holiday_country, org.holiday_subdivision,
                     org.business_hours or "09:00-17:00")


@lru_cache(maxsize=1024)
def _calendar(timezone: str, country: str, subdivision: str | None, hours: str) -> Calendar:
    return Calendar(timezone, country, subdivision, parse_hours(hours))


def step_due(calendar: Calendar, started_at: datetime, step: int) -> datetime:
    return business_days_after(calendar, started_at, STEP_DAYS[step])


def due_step(calendar: Calendar, started_at: datetime, done: int, now: datetime) -> int | None:
    """The most advanced step after ``done`` that is due at ``now`` (catch-up: the ones before
    it are skipped), or None."""
    for step in range(LAST_STEP, done, -1):
        if step_due(calendar, started_at, step) <= now:
            return step
    return None


def next_due(calendar: Calendar, started_at: datetime, done: int) -> datetime | None:
    return step_due(calendar, started_at, done + 1) if done < LAST_STEP else None


def start(case: Case, now: datetime) -> None:
    """Care asked the customer for something: a new cycle from ``now``."""
    case.followup_cycle = (case.followup_cycle or 0) + 1
    case.followup_started_at = now
    case.followups_sent = 0
    case.followup_due_at = step_due(calendar_of(case.organisation), now, 1)


def stop(case: Case) -> None:
    """The customer answered, care moved on, or the case closed."""
    case.followup_started_at = None
    case.followup_due_at = None
