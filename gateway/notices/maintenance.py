"""Planned and emergency maintenance (guide 10): scheduled 7-14 days ahead (held until 14
days before the start when scheduled earlier), changed or cancelled with the same reference
to exactly the first notice's recipients, and a reminder before the start."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import Settings
from gateway.domain import NoticeKind
from gateway.errors import InvalidValue, PolicyViolation
from gateway.models import Notice, NoticeUpdate
from gateway.notices import mails, references, targets
from gateway.notices.mails import UpdateKind
from gateway.outbound.render import Renderer

SCHEDULED, CANCELLED = "scheduled", "cancelled"


@dataclass
class Window:
    """What ops give for a maintenance: every field but the window may be None on a change."""

    starts_at: datetime | None = None
    ends_at: datetime | None = None
    impact: str | None = None
    services: str | None = None
    title: str | None = None
    summary: str | None = None


@dataclass
class Maintenance:
    settings: Settings
    renderer: Renderer

    async def schedule(self, session: AsyncSession, now: datetime, window: Window, *,
                       orgs: str | None, everyone: bool, emergency: bool) -> Notice:
        start, end = self._window(now, window.starts_at, window.ends_at)
        rules = self.settings.notices
        if not emergency and start - now < timedelta(days=rules.min_notice_days):
            raise PolicyViolation(
                f"planned maintenance must start at least {rules.min_notice_days} days ahead; "
                "for shorter notice use `maintenance emergency`")
        if not window.impact:
            raise InvalidValue("--impact must not be empty")
        organisations = await targets.resolve(session, orgs, everyone)
        kind = NoticeKind.MAINTENANCE_EMERGENCY if emergency else NoticeKind.MAINTENANCE_PLANNED
        notice = Notice(
            reference=await references.next_reference(session, kind, now), kind=kind.value,
            status=SCHEDULED, title=window.title or _default_title(window.services),
            summary=window.summary or "", impact=window.impact, services=window.services,
            starts_at=start, ends_at=end, send_at=self._send_at(now, start, emergency),
            created_at=now, sequence=0,
        )
        session.add(notice)
        await session.flush()
        targets.attach(session, notice, organisations)
        await session.flush()
        assert notice.send_at is not None
        first = await mails.add_update(session, notice, UpdateKind.FIRST, now=now, due_at=notice.send_at)
        await self._add_reminder(session, notice, now)
        if notice.send_at <= now:
            await mails.deliver(session, self.settings, self.renderer, notice, first, now)
        return notice

    async def change(self, session: AsyncSession, now: datetime, reference: str, window: Window,
                     reason: str | None) -> Notice:
        notice = await self._open(session, reference, now)
        start, end = self._window(now, window.starts_at or notice.starts_at,
                                  window.ends_at or notice.ends_at)
        changed = {"starts_at": start, "ends_at": end, "impact": window.impact,
                   "services": window.services, "title": window.title, "summary": window.summary}
        texts = (window.impact, window.services, window.title, window.summary)
        if all(v is None for v in texts) and (start, end) == (notice.starts_at, notice.ends_at):
            raise InvalidValue("nothing to change: give --start, --end, --impact, --services, "
                               "--title or --summary")
        for key, value in changed.items():
            if value is not None:
                setattr(notice, key, value)
        notice.sequence += 1
        first = await self._first(session, notice)
        pending = await self._pending(session, notice)
        for update in pending:
            if update.kind == UpdateKind.REMINDER:
                mails.finish(update, now, "dropped: the maintenance changed")
        if first.sent_at is None:  # nobody has it yet: the held notice goes out as changed
            notice.send_at = first.due_at = self._send_at(
                now, start, notice.kind == NoticeKind.MAINTENANCE_EMERGENCY)
            await session.flush()
            if first.due_at <= now:
                await mails.deliver(session, self.settings, self.renderer, notice, first, now)
        else:
            update = await mails.add_update(session, notice, UpdateKind.CHANGED, now=now, due_at=now,
                                            text=reason or "")
            await mails.deliver(session, self.settings, self.renderer, notice, update, now)
        await self._add_reminder(session, notice, now)
        return notice

    async def cancel(self, session: AsyncSession, now: datetime, reference: str,
                     reason: str | None) -> Notice:
        notice = await self._open(session, reference, now)
        notice.status, notice.cancelled_at = CANCELLED, now
        notice.sequence += 1
        for update in await self._pending(session, notice):
            mails.finish(update, now, "dropped: the maintenance was cancelled")
        first = await self._first(session, notice)
        if first.outcome and first.outcome.endswith("queued"):
            update = await mails.add_update(session, notice, UpdateKind.CANCELLED, now=now,
                                            due_at=now, text=reason or "")
            await mails.deliver(session, self.settings, self.renderer, notice, update, now)
        return notice

    def _window(
        self, now: datetime, start: datetime | None, end: datetime | None
    ) -> tuple[datetime, datetime]:
        if start is None or end is None:
            raise InvalidValue("a maintenance needs --start and --end")
        if end <= start:
            raise InvalidValue("the end must come after the start")
        if start <= now:
            raise InvalidValue("the start is in the past")
        return start, end

    def _send_at(self, now: datetime, start: datetime, emergency: bool) -> datetime:
        hold = timedelta(days=self.settings.notices.hold_days)
        return start - hold if not emergency and start - now > hold else now

    async def _add_reminder(self, session: AsyncSession, notice: Notice, now: datetime) -> None:
        hours = self.settings.notices.reminder_hours
        assert notice.starts_at is not None and notice.send_at is not None
        due = notice.starts_at - timedelta(hours=hours)
        if hours > 0 and due > max(now, notice.send_at):
            await mails.add_update(session, notice, UpdateKind.REMINDER, now=now, due_at=due)

    async def _open(self, session: AsyncSession, reference: str, now: datetime) -> Notice:
        notice = await references.get_notice(session, reference, *mails.MAINTENANCE)
        if notice.status == CANCELLED:
            raise PolicyViolation(f"{notice.reference} is already cancelled")
        if notice.ends_at is not None and notice.ends_at <= now:
            ended = f"{notice.ends_at:%Y-%m-%d %H:%M} UTC"
            raise PolicyViolation(f"{notice.reference} is over (it ended {ended})")
        return notice

    async def _first(self, session: AsyncSession, notice: Notice) -> NoticeUpdate:
        first = await session.scalar(select(NoticeUpdate).where(
            NoticeUpdate.notice_id == notice.id, NoticeUpdate.sequence == 0))
        assert first is not None
        return first

    async def _pending(self, session: AsyncSession, notice: Notice) -> list[NoticeUpdate]:
        return list((await session.scalars(select(NoticeUpdate).where(
            NoticeUpdate.notice_id == notice.id, NoticeUpdate.due_at.is_not(None)))).all())


def _default_title(services: str | None) -> str:
    return f"Maintenance of {services}" if services else "Platform maintenance"


def state(notice: Notice, updates: list[NoticeUpdate], now: datetime) -> str:
    """held, sent, reminded, in progress, completed, cancelled (or missed: never sent)."""
    if notice.status == CANCELLED:
        return "cancelled"
    first = next(u for u in updates if u.sequence == 0)
    if first.sent_at is None:
        return "held"
    if not (first.outcome or "").endswith("queued"):
        return "missed"
    assert notice.starts_at is not None and notice.ends_at is not None
    if now >= notice.ends_at:
        return "completed"
    if now >= notice.starts_at:
        return "in progress"
    if any(u.kind == UpdateKind.REMINDER and u.sent_at is not None and
           (u.outcome or "").endswith("queued") for u in updates):
        return "reminded"
    return "sent"
