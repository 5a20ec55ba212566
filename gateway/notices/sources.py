"""The notices' due work for the scheduler (gateway/schedule/): held and reminder mails,
the incidents' 30-minute mails, and the warning to ops before a mail without news.

Each finds its work by an indexed due time (rows another replica holds are skipped on
PostgreSQL: ``FOR UPDATE SKIP LOCKED``) and takes an item with a conditional UPDATE, so two
replicas or a restart never send one mail twice (the outbox's dedupe keys hold too).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from gateway.config import Settings
from gateway.domain import NoticeKind
from gateway.models import Notice, NoticeUpdate
from gateway.notices import mails
from gateway.notices.fanout import send_internal
from gateway.notices.incidents import Incidents
from gateway.notices.lists import Recipient
from gateway.notices.mails import UpdateKind
from gateway.outbound import dedupe
from gateway.outbound.kinds import MailKind
from gateway.outbound.render import Renderer
from gateway.schedule.scheduler import DueWork, Upcoming

log = structlog.get_logger(__name__)


class NoticeMails:
    """Mails of notices that are due: planned maintenance held until 14 days before, reminders."""

    name = "notice-mails"

    def __init__(self, settings: Settings, renderer: Renderer) -> None:
        self.settings, self.renderer = settings, renderer

    async def next_due(self, session: AsyncSession) -> datetime | None:
        return await session.scalar(select(func.min(NoticeUpdate.due_at)))

    async def run_due(self, session: AsyncSession, now: datetime, limit: int) -> int:
        ids = (await session.scalars(select(NoticeUpdate.id).where(NoticeUpdate.due_at <= now)
                                     .order_by(NoticeUpdate.due_at).limit(limit)
                                     .with_for_update(skip_locked=True))).all()
        handled = 0
        for update_id in ids:
            taken = await session.execute(update(NoticeUpdate).where(
                NoticeUpdate.id == update_id, NoticeUpdate.due_at.is_not(None)).values(due_at=None)
                .execution_options(synchronize_session=False))
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                continue
            row = await session.get(NoticeUpdate, update_id, populate_existing=True)
            assert row is not None
            notice = await session.get(Notice, row.notice_id)
            assert notice is not None
            await self._send(session, notice, row, now)
            handled += 1
        return handled

    async def _send(self, session: AsyncSession, notice: Notice, row: NoticeUpdate, now: datetime) -> None:
        if notice.kind in mails.MAINTENANCE and notice.starts_at is not None:
            too_late = notice.ends_at is not None and notice.ends_at <= now
            if row.kind == UpdateKind.REMINDER:
                too_late = notice.starts_at <= now
            if too_late:  # a daemon that was down reports it, never sends it late
                mails.finish(row, now, "not sent: the window had passed when it was due")
                log.warning("notice.missed", reference=notice.reference, update=row.sequence)
                return
        await mails.deliver(session, self.settings, self.renderer, notice, row, now)

    async def upcoming(self, session: AsyncSession, until: datetime, org: str | None) -> list[Upcoming]:
        rows = (await session.execute(select(NoticeUpdate, Notice).join(Notice)
                                      .where(NoticeUpdate.due_at <= until)
                                      .order_by(NoticeUpdate.due_at))).all()
        found: list[Upcoming] = []
        for update_row, notice in rows:
            assert update_row.due_at is not None
            kind = mails.mail_kind(notice, update_row).value
            found.extend(_each(update_row.due_at, kind, notice.reference,
                               await mails.recipients_of(session, notice, update_row), org))
        return found


def _each(due: datetime, kind: str, reference: str, recipients: list[Recipient],
          org: str | None) -> list[Upcoming]:
    return [Upcoming(due, kind, reference, r.address, r.organisation, r.timezone)
            for r in recipients if org is None or r.organisation.lower() == org.lower()]


class IncidentUpdates:
    """Every open incident's recipients get a mail at least every 30 minutes."""

    name = "incident-updates"

    def __init__(self, settings: Settings, renderer: Renderer) -> None:
        self.incidents = Incidents(settings, renderer)

    async def next_due(self, session: AsyncSession) -> datetime | None:
        return await session.scalar(select(func.min(Notice.next_update_at)))

    async def run_due(self, session: AsyncSession, now: datetime, limit: int) -> int:
        due = (await session.execute(select(Notice.id, Notice.next_update_at)
                                     .where(Notice.next_update_at <= now)
                                     .order_by(Notice.next_update_at).limit(limit)
                                     .with_for_update(skip_locked=True))).all()
        handled = 0
        for notice_id, was_due in due:
            taken = await session.execute(update(Notice).where(
                Notice.id == notice_id, Notice.next_update_at == was_due)
                .values(next_update_at=now + self.incidents.cadence)
                .execution_options(synchronize_session=False))
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                continue
            notice = await session.get(Notice, notice_id, populate_existing=True)
            assert notice is not None and notice.kind == NoticeKind.INCIDENT
            await self.incidents.send_status(session, notice, now)
            handled += 1
        return handled

    async def upcoming(self, session: AsyncSession, until: datetime, org: str | None) -> list[Upcoming]:
        """Each open incident's next mail (then one every 30 minutes until the all-clear)."""
        found: list[Upcoming] = []
        for notice in (await session.scalars(select(Notice).where(Notice.next_update_at <= until)
                                             .order_by(Notice.next_update_at))).all():
            assert notice.next_update_at is not None
            found.extend(_each(notice.next_update_at, MailKind.INCIDENT_UPDATE.value, notice.reference,
                               await mails.earlier_recipients(session, notice), org))
        return found


class IncidentWarnings:
    """Ops are told a few minutes before an incident mail goes out without news."""

    name = "incident-warnings"

    def __init__(self, settings: Settings, renderer: Renderer) -> None:
        self.settings, self.renderer = settings, renderer
        self.ahead = timedelta(minutes=settings.notices.ops_warning_minutes)

    def _unwarned(self) -> ColumnElement[bool]:
        return or_(Notice.warned_for.is_(None), Notice.warned_for != Notice.next_update_at)

    async def next_due(self, session: AsyncSession) -> datetime | None:
        if not self.ahead:
            return None
        first = await session.scalar(select(func.min(Notice.next_update_at)).where(self._unwarned()))
        return first - self.ahead if first is not None else None

    async def run_due(self, session: AsyncSession, now: datetime, limit: int) -> int:
        if not self.ahead:
            return 0
        due = (await session.scalars(select(Notice).where(
            Notice.next_update_at <= now + self.ahead, self._unwarned())
            .order_by(Notice.next_update_at).limit(limit).with_for_update(skip_locked=True))).all()
        handled = 0
        for notice in due:
            when = notice.next_update_at
            assert when is not None
            taken = await session.execute(update(Notice).where(
                Notice.id == notice.id, Notice.next_update_at == when, self._unwarned())
                .values(warned_for=when).execution_options(synchronize_session=False))
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                continue
            handled += 1
            if when <= now:  # the mail is due already: a warning now would be stale
                continue
            latest = await session.scalar(select(NoticeUpdate).where(NoticeUpdate.notice_id == notice.id)
                                          .order_by(NoticeUpdate.sequence.desc()).limit(1))
            minutes = int((when - (latest.at if latest else notice.created_at)).total_seconds() // 60)
            await send_internal(
                session, self.settings, self.renderer, kind=MailKind.INCIDENT_OPS_WARNING, now=now,
                notice_id=notice.id, dedupe_key=dedupe.incident_warning(notice.reference, when),
                context={"notice": {"reference": notice.reference, "title": notice.title,
                                    "state": notice.status,
                                    "status_text": latest.status_text if latest else None},
                         "due_at": when, "minutes": minutes},
            )
        return handled


def notice_sources(settings: Settings) -> list[DueWork]:
    """The notices' due work, for ``gateway/schedule/sources.py``."""
    renderer = Renderer(settings.branding, settings.templates.override_dir)
    return [NoticeMails(settings, renderer), IncidentUpdates(settings, renderer),
            IncidentWarnings(settings, renderer)]
