"""What ``case show``, ``report slt`` and ``schedule`` show about a case's timer and targets."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import among, chunks
from gateway.models import Case, CaseEvent, Organisation
from gateway.schedule import timer
from gateway.schedule.targets import Event, Target, resolution_target, response_target


def followup_view(case: Case) -> dict[str, Any]:
    """The running timer: its cycle, the step reached, the next step and when it is due."""
    running = case.followup_due_at is not None
    step = case.followups_sent
    view: dict[str, Any] = {"running": running, "cycle": case.followup_cycle, "step": step,
                            "started_at": _iso(case.followup_started_at),
                            "next_step": None, "due_at": None, "due_local": None}
    if running and case.followup_due_at is not None:
        zone = timer.calendar_of(case.organisation).zone
        view.update(next_step=timer.STEP_NAMES.get(step + 1), due_at=_iso(case.followup_due_at),
                    due_local=case.followup_due_at.astimezone(zone).isoformat())
    return view


def targets(case: Case, events: Sequence[Event], now: datetime) -> list[Target]:
    calendar = timer.calendar_of(case.organisation)
    return [response_target(calendar, case.severity, case.opened_at, events, now),
            resolution_target(calendar, case.severity, case.opened_at, events, case.closed_at, now)]


def targets_view(case: Case, events: Sequence[Event], now: datetime) -> dict[str, Any]:
    return {t.name: t.as_dict() for t in targets(case, events, now)}


def events_of(rows: Sequence[CaseEvent]) -> list[Event]:
    return [Event(e.at, e.kind, e.actor) for e in rows]


async def slt_rows(session: AsyncSession, now: datetime, org: str | None, breached_only: bool
                   ) -> list[dict[str, Any]]:
    """Every case's targets (of one organisation), oldest first; only breached ones if asked."""
    stmt = select(Case).order_by(Case.opened_at, Case.id)
    if org is not None:
        stmt = stmt.join(Organisation, Case.organisation_id == Organisation.id).where(
            Organisation.name == org)
    found = list((await session.scalars(stmt)).unique().all())
    dialect = session.get_bind().dialect.name
    events: dict[int, list[Event]] = {}
    for ids in chunks(c.id for c in found):
        rows = await session.execute(
            select(CaseEvent.case_id, CaseEvent.at, CaseEvent.kind, CaseEvent.actor)
            .where(among(CaseEvent.case_id, ids, dialect)).order_by(CaseEvent.at, CaseEvent.id))
        for case_id, at, kind, actor in rows.all():
            events.setdefault(case_id, []).append(Event(at, kind, actor))
    report = []
    for case in found:
        judged = targets(case, events.get(case.id, []), now)
        if breached_only and not any(t.state == "breached" for t in judged):
            continue
        report.append({"case": case.number, "organisation": case.organisation.name,
                       "severity": case.severity, "status": case.status,
                       **{t.name: t.as_dict() for t in judged}})
    return report


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
