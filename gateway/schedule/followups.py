"""The follow-up timer as the scheduler's due work: reminders and the automatic closure.

A due case is claimed (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), its step is advanced by a
conditional UPDATE (on the cycle, the step reached and the due time read), and the step's mail
is written to the outbox under a dedupe key per case, cycle and step: two replicas, or a pass
repeated after a crash, never take a step twice. Each mail goes to the designated contact who
opened the case, quotes what care asked, and carries the reference token and the case link.
A recipient whose address bounced permanently gets no mail; the timeline says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, false, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import cases
from gateway.cases.mail import case_context, contact_context
from gateway.clock import Clock, SystemClock
from gateway.config import Settings
from gateway.db import among, insert_queued, queue_insert
from gateway.domain import CaseStatus, CloseReason, EventKind, RecipientStatus
from gateway.models import Case, CaseEvent, Organisation, Outbox, OutboxRecipient
from gateway.outbound import dedupe
from gateway.outbound.outbox import Mail, Mailer, insert_queued_in_bulk
from gateway.outbound.render import Renderer
from gateway.schedule import timer
from gateway.schedule.mailing import mailer_at
from gateway.schedule.scheduler import Upcoming

REQUEST_KINDS = (EventKind.INFO_REQUESTED, EventKind.SOLUTION_PROPOSED)


class FollowupWork:
    """Due work of the follow-up timers (``cases.followup_due_at``, indexed)."""

    name = "followups"

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.renderer = Renderer(settings.branding, settings.templates.override_dir)

    async def next_due(self, session: AsyncSession) -> datetime | None:
        return await session.scalar(select(func.min(Case.followup_due_at)))

    async def run_due(self, session: AsyncSession, now: datetime, limit: int) -> int:
        stmt = (select(Case).where(Case.followup_due_at <= now)
                .order_by(Case.followup_due_at, Case.id).limit(limit))
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True, of=Case)
        else:  # SQLite's write lock first, so what is read stays true until it is written
            await session.execute(update(Case).where(false()).values(followup_due_at=None))
        claimed = list((await session.scalars(stmt)).unique().all())
        if not claimed:
            return 0
        steps = {case.id: _due_step(case, now) for case in claimed}
        await _advance(session, claimed, steps, now)
        mailer = await mailer_at(session, self.settings, self.renderer, now)
        requests = await requested_actions(session, [c.id for c in claimed], dialect)
        bounced = await bounced_addresses(session, [c.contact.email for c in claimed], dialect)
        keys = [dedupe.followup(c.number or "", c.followup_cycle, s) for c in claimed for s in (1, 2, 3)]
        queued = set((await session.scalars(
            select(Outbox.dedupe_key).where(among(Outbox.dedupe_key, keys, dialect)))).all())
        for case in claimed:
            step = steps[case.id]
            if step is not None:
                await self._take(session, mailer, case, step, now, requests.get(case.id, ""),
                                 case.contact.email in bounced, queued)
        await insert_queued_in_bulk(session)
        await insert_queued(session)
        return len(claimed)

    async def _take(
        self, session: AsyncSession, mailer: Mailer, case: Case, step: int, now: datetime, requested: str,
        bounced: bool, queued: set[str],
    ) -> None:
        """The step's timeline events and mail (the case has been advanced already)."""
        assert case.number is not None
        key = dedupe.followup(case.number, case.followup_cycle, step)
        name, days = timer.STEP_NAMES[step], timer.STEP_DAYS[step]
        data = {"cycle": case.followup_cycle, "step": step, "dedupe_key": key}
        if bounced:
            _note(session, case, now, EventKind.FOLLOWUP_NOT_SENT, data,
                  f"{name} not sent: {case.contact.email} bounced permanently")
        else:
            _note(session, case, now, EventKind.FOLLOWUP_SENT, data,
                  f"{name} sent to {case.contact.email} ({days} business days without a response)")
            if key not in queued:
                await mailer.enqueue_new(session, self._mail(mailer, case, step, key, requested, now))
        if step == timer.LAST_STEP:
            _note(session, case, now, EventKind.CLOSED, data,
                  f"closed automatically: no response {days} business days after care's request")

    def _mail(self, mailer: Mailer, case: Case, step: int, key: str, requested: str, now: datetime) -> Mail:
        shown = case_context(self.settings, mailer.keys[0], case)
        context: dict[str, Any] = {
            "case": shown, "contact": contact_context(case.contact),
            "recipient_tz": case.organisation.timezone,
            "requested_action": requested, "business_days": timer.STEP_DAYS[step],
        }
        if step == timer.LAST_STEP:
            shown["status"] = CaseStatus.CLOSED
            context.update(closed_at=now, reopen_deadline=now + cases.REOPEN_WINDOW)
        return Mail(kind=timer.STEP_KINDS[step], to=[(case.contact.name or "", case.contact.email)],
                    context=context, dedupe_key=key, case_id=case.id)

    async def upcoming(self, session: AsyncSession, until: datetime, org: str | None) -> list[Upcoming]:
        stmt = (select(Case).where(Case.followup_due_at <= until)
                .order_by(Case.followup_due_at, Case.id))
        if org is not None:
            stmt = stmt.join(Organisation, Case.organisation_id == Organisation.id).where(
                Organisation.name == org)
        now = self.clock.now()
        found = []
        for case in (await session.scalars(stmt)).unique():
            for step, due in pending_steps(case, now, until):
                found.append(Upcoming(due, timer.STEP_KINDS[step].value, case.number or "",
                                      case.contact.email, case.organisation.name, case.organisation.timezone))
        return found


def pending_steps(case: Case, now: datetime, until: datetime) -> list[tuple[int, datetime]]:
    """The steps of the case's running cycle that will be taken by ``until``, and when: a step
    already overdue at ``now`` is taken at the next pass, and only the most advanced of them."""
    if case.followup_started_at is None:
        return []
    calendar = timer.calendar_of(case.organisation)
    steps = [(s, timer.step_due(calendar, case.followup_started_at, s))
             for s in range(case.followups_sent + 1, timer.LAST_STEP + 1)]
    overdue = [s for s in steps if s[1] <= now]
    later = [s for s in steps if now < s[1] <= until]
    return overdue[-1:] + later


class TimerMoved(RuntimeError):
    """A claimed case's timer was not where it was read: the batch is rolled back."""


def _due_step(case: Case, now: datetime) -> int | None:
    assert case.followup_started_at is not None
    return timer.due_step(timer.calendar_of(case.organisation), case.followup_started_at,
                          case.followups_sent, now)


_CASES: Table = Case.__table__  # type: ignore[assignment]
_T = _CASES.c
_STILL_THERE = (_T.id == bindparam("b_id"), _T.followup_cycle == bindparam("b_cycle"),
                _T.followups_sent == bindparam("b_done"), _T.followup_due_at == bindparam("b_due"))
"""The timer is where it was read: the condition of every step's UPDATE."""


async def _advance(session: AsyncSession, claimed: list[Case], steps: dict[int, int | None],
                   now: datetime) -> None:
    """Advance every claimed timer with one conditional UPDATE per kind of change (reminders,
    closures), executed for the batch at once. A step that is not due after all (the calendar
    changed since its due time was set) only has its due time set again. On PostgreSQL the rows
    are locked since the claim, on SQLite the write lock is held: a miss is a bug, not a race."""
    moves: list[dict[str, Any]] = []
    closes: list[dict[str, Any]] = []
    for case in claimed:
        assert case.followup_started_at is not None
        step = steps[case.id]
        done = case.followups_sent if step is None else step
        due = timer.next_due(timer.calendar_of(case.organisation), case.followup_started_at, done)
        row = {"b_id": case.id, "b_cycle": case.followup_cycle, "b_done": case.followups_sent,
               "b_due": case.followup_due_at, "b_new_done": done, "b_new_due": due}
        (closes if step == timer.LAST_STEP else moves).append(row)
    closing = {"status": CaseStatus.CLOSED, "closed_at": now, "close_reason": CloseReason.AUTO_FOLLOWUP,
               "updated_at": now, "followup_started_at": None}
    for rows, extra in ((moves, {}), (closes, closing)):
        if not rows:
            continue
        result = await session.execute(
            update(_CASES).where(*_STILL_THERE)
            .values(followups_sent=bindparam("b_new_done"), followup_due_at=bindparam("b_new_due"), **extra),
            rows)
        counted = getattr(result, "rowcount", -1)
        if session.get_bind().dialect.supports_sane_multi_rowcount and counted != len(rows):
            raise TimerMoved(f"{len(rows) - counted} of {len(rows)} claimed timers had moved")


def _note(session: AsyncSession, case: Case, now: datetime, kind: EventKind, data: dict[str, Any],
          text: str) -> None:
    queue_insert(session, CaseEvent, case_id=case.id, at=now, kind=kind, actor=cases.SYSTEM, body=text,
                 inbound_message_id=None, outbox_id=None, data=data)


async def requested_actions(session: AsyncSession, case_ids: Iterable[int], dialect: str) -> dict[int, str]:
    """What care last asked of each case's customer (the text of the request that started the
    timer)."""
    rows = await session.execute(
        select(CaseEvent.case_id, CaseEvent.body)
        .where(among(CaseEvent.case_id, case_ids, dialect), CaseEvent.kind.in_(REQUEST_KINDS))
        .order_by(CaseEvent.id))
    return {case_id: body or "" for case_id, body in rows.all()}  # the last one of each case wins


async def bounced_addresses(session: AsyncSession, addresses: Iterable[str], dialect: str) -> set[str]:
    """The addresses among ``addresses`` with a permanent bounce recorded."""
    rows = await session.scalars(
        select(OutboxRecipient.address).distinct()
        .where(among(OutboxRecipient.address, [a.lower() for a in addresses], dialect),
               or_(OutboxRecipient.bounced_at.is_not(None),
                   OutboxRecipient.status == RecipientStatus.BOUNCED)))
    return set(rows.all())
