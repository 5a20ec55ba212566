"""The case service: open, care actions, customer updates, close, re-open, timeline; care's
actions with their mail in :mod:`gateway.cases.care`, what mail about a case shows in
:mod:`gateway.cases.mail`.

Functions take the session first and never commit: the caller owns the transaction, so a
state change, its timeline event and the mail it causes (the outbox row) commit together.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.clock import Clock
from gateway.directory import get_contact, get_organisation, normalise_email
from gateway.domain import CASE_TYPES, CaseStatus, CloseReason, Environment, EventKind, Severity
from gateway.errors import InvalidValue, NotFound, PolicyViolation
from gateway.models import Case, CaseEvent, Contact
from gateway.schedule import timer

REOPEN_WINDOW = timedelta(days=30)
"""Cases closed for 30 days or more cannot be re-opened (guide 4.11)."""

CARE = "care"
SYSTEM = "system"


def format_number(case_id: int) -> str:
    return f"{case_id:08d}"


def parse_number(text: str) -> str:
    digits = text.strip().lstrip("#")
    if not digits.isdigit() or len(digits) > 8:
        raise InvalidValue(f"not a case number: {text!r}")
    return digits.zfill(8)


def _choice(value: str, allowed: Sequence[str], what: str) -> str:
    norm = value.strip().lower().replace("-", "_").replace(" ", "_")
    if norm not in allowed:
        raise InvalidValue(f"unknown {what} {value!r} (one of: {', '.join(allowed)})")
    return norm


async def open_case(
    session: AsyncSession,
    clock: Clock,
    *,
    organisation: str,
    contact_email: str,
    subject: str,
    severity: str,
    case_type: str = "support",
    sub_type: str | None = None,
    environment: str = "production",
    description: str | None = None,
) -> Case:
    """Care opens a case on a designated contact's behalf (the guide's phone path)."""
    org = await get_organisation(session, organisation)
    contact = await get_contact(session, org.id, contact_email)
    if contact is None:
        raise NotFound(f"no contact {contact_email} in {org.name}")
    if not contact.designated:
        raise PolicyViolation(f"{contact.email} is not a designated contact of {org.name}")
    ctype = _choice(case_type, list(CASE_TYPES), "case type")
    subtypes = CASE_TYPES[ctype]
    stype = _choice(sub_type, subtypes, f"sub-type of {ctype}") if sub_type else subtypes[0]
    subject = " ".join(subject.split())
    if not subject:
        raise InvalidValue("subject must not be empty")
    now = clock.now()
    case = Case(
        organisation_id=org.id,
        contact_id=contact.id,
        case_type=ctype,
        sub_type=stype,
        severity=_choice(severity, [s.value for s in Severity], "severity"),
        status=CaseStatus.NEW,
        environment=_choice(environment, [e.value for e in Environment], "environment"),
        subject=subject[:500],
        opened_at=now,
        updated_at=now,
        escalated=False,
        followups_sent=0,
        followup_cycle=0,
    )
    case.organisation, case.contact = org, contact
    session.add(case)
    await session.flush()
    case.number = format_number(case.id)
    add_event(session, event(case, clock, EventKind.OPENED, CARE, description))
    return case


async def get_case(session: AsyncSession, number: str, *, for_update: bool = False) -> Case:
    stmt = select(Case).where(Case.number == parse_number(number))
    if for_update:
        stmt = stmt.with_for_update(of=Case)
    case = (await session.execute(stmt)).unique().scalar_one_or_none()
    if case is None:
        raise NotFound(f"no case {parse_number(number)}")
    return case


async def list_cases(
    session: AsyncSession,
    *,
    organisation: str | None = None,
    status: str | None = None,
    contact_email: str | None = None,
    limit: int | None = None,
) -> Sequence[Case]:
    """Cases, the most recently changed first, filtered by organisation, status and contact."""
    stmt = select(Case).order_by(Case.updated_at.desc(), Case.id.desc())
    if organisation is not None:
        stmt = stmt.where(Case.organisation_id == (await get_organisation(session, organisation)).id)
    if status is not None:
        stmt = stmt.where(Case.status == _choice(status, [s.value for s in CaseStatus], "status"))
    if contact_email is not None:
        stmt = stmt.where(Case.contact_id.in_(
            select(Contact.id).where(Contact.email == normalise_email(contact_email))
        ))
    if limit is not None:
        stmt = stmt.limit(limit)
    return (await session.execute(stmt)).unique().scalars().all()


async def timeline(session: AsyncSession, case: Case) -> Sequence[CaseEvent]:
    stmt = select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.at, CaseEvent.id)
    return (await session.execute(stmt)).scalars().all()


def event(
    case: Case,
    clock: Clock,
    kind: EventKind,
    actor: str,
    body: str | None = None,
    *,
    inbound_message_id: int | None = None,
    outbox_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A timeline event's columns: for :func:`add_event`, or for
    :func:`gateway.db.queue_insert` where nothing in the transaction reads the event back
    (the inbound pipeline, a group's events at once)."""
    return {"case_id": case.id, "at": clock.now(), "kind": kind, "actor": actor, "body": body,
            "inbound_message_id": inbound_message_id, "outbox_id": outbox_id, "data": data}


def add_event(session: AsyncSession, values: dict[str, Any]) -> CaseEvent:
    """Add the event :func:`event` describes to the session."""
    added = CaseEvent(**values)
    session.add(added)  # flushed with the rest of the transaction (flush first to read its id)
    return added


def set_status(case: Case, status: CaseStatus, now: datetime) -> None:
    """Move a case and keep the follow-up timer in step (guide 4.9: it starts when care waits
    for the customer and stops on any other status)."""
    if status.waits_for_customer:
        timer.start(case, now)
    else:
        timer.stop(case)
    case.status = status
    case.updated_at = now


def require_open(case: Case) -> None:
    if case.status == CaseStatus.CLOSED:
        raise PolicyViolation(f"case {case.number} is closed; re-open it first")


def close(case: Case, now: datetime, reason: CloseReason) -> None:
    require_open(case)
    set_status(case, CaseStatus.CLOSED, now)
    case.closed_at = now
    case.close_reason = reason


def reopenable(case: Case, now: datetime) -> bool:
    return case.closed_at is not None and now - case.closed_at < REOPEN_WINDOW


def reopen(case: Case, now: datetime) -> None:
    if case.status != CaseStatus.CLOSED:
        raise PolicyViolation(f"case {case.number} is not closed")
    if not reopenable(case, now):
        raise PolicyViolation(
            f"case {case.number} was closed 30 or more days ago and cannot be re-opened; "
            "open a new case instead"
        )
    set_status(case, CaseStatus.IN_PROGRESS, now)
    case.closed_at = None
    case.close_reason = None
