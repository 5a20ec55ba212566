"""Incidents (guide 7, 10): the alert at once, ops' updates at once, and a mail to every
recipient at least every ``notices.incident_update_minutes`` until the all-clear."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import Settings
from gateway.domain import NoticeKind
from gateway.errors import InvalidValue, PolicyViolation
from gateway.models import Notice, NoticeTarget, NoticeUpdate, Organisation
from gateway.notices import mails, references, targets
from gateway.notices.mails import UpdateKind
from gateway.outbound.render import Renderer
from gateway.schedule.calendar import business_days_after
from gateway.schedule.timer import calendar_of

STATES = ("investigating", "identified", "monitoring")
RESTORED = "restored"
RCA_BUSINESS_DAYS = 5


@dataclass
class Incidents:
    settings: Settings
    renderer: Renderer

    @property
    def cadence(self) -> timedelta:
        return timedelta(minutes=self.settings.notices.incident_update_minutes)

    async def open(self, session: AsyncSession, now: datetime, *, orgs: str | None, everyone: bool,
                   summary: str, impact: str, services: str | None, recommendation: str | None,
                   title: str | None = None) -> Notice:
        if not summary.strip() or not impact.strip():
            raise InvalidValue("--summary and --impact must not be empty")
        organisations = await targets.resolve(session, orgs, everyone)
        notice = Notice(
            reference=await references.next_reference(session, NoticeKind.INCIDENT, now),
            kind=NoticeKind.INCIDENT.value, status=STATES[0],
            title=title or summary.strip().splitlines()[0][:120], summary=summary, impact=impact,
            services=services, instructions=None, starts_at=now, created_at=now,
            next_update_at=now + self.cadence, sequence=0,
        )
        session.add(notice)
        await session.flush()
        targets.attach(session, notice, organisations)
        await session.flush()
        alert = await mails.add_update(session, notice, UpdateKind.FIRST, now=now, due_at=now,
                                       next_steps=recommendation, state=STATES[0])
        await mails.deliver(session, self.settings, self.renderer, notice, alert, now)
        return notice

    async def post(self, session: AsyncSession, now: datetime, reference: str, *, status: str,
                   message: str, next_steps: str | None) -> NoticeUpdate:
        if status not in STATES:
            raise InvalidValue(f"unknown status {status!r} (use {', '.join(STATES)}; "
                               "`incident restore` gives the all-clear)")
        if not message.strip():
            raise InvalidValue("--message must not be empty")
        notice = await self._open(session, reference)
        notice.status = status
        notice.next_update_at = now + self.cadence
        posted = await mails.add_update(session, notice, UpdateKind.UPDATE, now=now, due_at=now,
                                        text=message, next_steps=next_steps, state=status)
        await mails.deliver(session, self.settings, self.renderer, notice, posted, now)
        return posted

    async def restore(self, session: AsyncSession, now: datetime, reference: str, *, notes: str,
                      affected_agents: int, started: datetime, restored: datetime) -> Notice:
        if restored <= started:
            raise InvalidValue("--restored must come after --started")
        if restored > now:
            raise InvalidValue("--restored is in the future")
        if affected_agents < 0:
            raise InvalidValue("--affected-agents must not be negative")
        notice = await self._open(session, reference)
        notice.status, notice.restored_at, notice.next_update_at = RESTORED, now, None
        notice.starts_at, notice.ends_at, notice.instructions = started, restored, notes or None
        notice.rca_due_at = await self._rca_due(session, notice, restored)
        await session.execute(update(NoticeTarget).where(NoticeTarget.notice_id == notice.id)
                              .values(affected_agents=affected_agents))
        clear = await mails.add_update(session, notice, UpdateKind.RESTORED, now=now, due_at=now,
                                       state=RESTORED)
        await mails.deliver(session, self.settings, self.renderer, notice, clear, now)
        return notice

    async def _rca_due(self, session: AsyncSession, notice: Notice, restored: datetime) -> datetime:
        """5 business days after restoration in each organisation's calendar; the earliest."""
        organisations = (await session.scalars(select(Organisation).join(
            NoticeTarget, NoticeTarget.organisation_id == Organisation.id)
            .where(NoticeTarget.notice_id == notice.id))).all()
        return min(business_days_after(calendar_of(org), restored, RCA_BUSINESS_DAYS)
                   for org in organisations)

    async def send_status(self, session: AsyncSession, notice: Notice, now: datetime) -> int:
        """The mail without news: ops' latest status repeated (one, however late it is)."""
        latest = await session.scalar(
            select(NoticeUpdate).where(NoticeUpdate.notice_id == notice.id,
                                       NoticeUpdate.kind == UpdateKind.UPDATE.value)
            .order_by(NoticeUpdate.sequence.desc()).limit(1))
        status = await mails.add_update(
            session, notice, UpdateKind.STATUS, now=now, due_at=now,
            text=f"No new information since our last update. The latest status: {latest.status_text}"
            if latest else "", state=notice.status,
            next_steps=latest.next_steps if latest else None)
        return await mails.deliver(session, self.settings, self.renderer, notice, status, now)

    async def _open(self, session: AsyncSession, reference: str) -> Notice:
        notice = await references.get_notice(session, reference, NoticeKind.INCIDENT)
        if notice.status == RESTORED:
            raise PolicyViolation(f"{notice.reference} is already restored")
        return notice
