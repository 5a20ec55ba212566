"""``status``: the gateway at a glance, from the database (what every replica wrote), and the
checks that say when a person is needed. ``probe`` also greets the servers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway import migrate
from gateway.clock import Clock
from gateway.config import Settings
from gateway.db import session_factory
from gateway.domain import Disposition, OutboxStatus
from gateway.models import InboundMessage, MailboxHealth, Outbox
from gateway.operations.health import one_line
from gateway.schedule.scheduler import Scheduler
from gateway.schedule.sources import default_sources

WAITING_STATUSES = (OutboxStatus.PENDING, OutboxStatus.SENDING)
UPCOMING_HORIZON = timedelta(days=7)
UPCOMING_SHOWN = 5
"""``status`` shows the first few automatic mails of the coming week (``schedule`` lists all)."""


@dataclass
class MailboxStatus:
    name: str
    connected: bool | None
    """None: no replica has polled it yet."""
    last_poll_at: datetime | None
    waiting: int | None
    last_error: str | None
    last_error_at: datetime | None


@dataclass
class Snapshot:
    at: datetime
    mailboxes: list[MailboxStatus]
    outbox: dict[str, int]
    oldest_waiting_at: datetime | None
    """The oldest outbox row still to be sent (pending or being sent)."""
    quarantined: int
    schema_revision: str | None
    schema_head: str
    upcoming: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        oldest = self.oldest_waiting_at
        return {
            "at": self.at.isoformat(),
            "mailboxes": [
                {"name": m.name, "connected": m.connected, "last_poll_at": _iso(m.last_poll_at),
                 "waiting": m.waiting, "last_error": m.last_error, "last_error_at": _iso(m.last_error_at)}
                for m in self.mailboxes
            ],
            "outbox": {"by_status": self.outbox, "oldest_waiting_at": _iso(oldest),
                       "oldest_waiting_seconds": _age(self.at, oldest)},
            "quarantined": self.quarantined,
            "upcoming": self.upcoming,
            "schema": {"revision": self.schema_revision, "head": self.schema_head,
                       "up_to_date": self.schema_revision == self.schema_head},
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _age(now: datetime, then: datetime | None) -> int | None:
    return None if then is None else max(0, int((now - then).total_seconds()))


@dataclass
class SharedCounts:
    outbox: dict[str, int]
    oldest_waiting_at: datetime | None
    quarantined: int


async def shared_counts(engine: AsyncEngine) -> SharedCounts:
    """The outbox by status, its oldest row still to send, and the quarantine's size."""
    async with engine.connect() as conn:
        counts = dict((await conn.execute(
            select(Outbox.status, func.count()).group_by(Outbox.status))).all())
        oldest = (await conn.execute(
            select(func.min(Outbox.created_at)).where(Outbox.status.in_(WAITING_STATUSES))
        )).scalar_one()
        quarantined = (await conn.execute(
            select(func.count()).select_from(InboundMessage)
            .where(InboundMessage.disposition == Disposition.QUARANTINED)
        )).scalar_one()
    by_status = {s.value: int(counts.get(s.value, 0)) for s in OutboxStatus}
    return SharedCounts(by_status, oldest, int(quarantined))


async def snapshot(engine: AsyncEngine, settings: Settings, clock: Clock) -> Snapshot:
    now = clock.now()
    async with engine.connect() as conn:
        health = {row.mailbox: row for row in (await conn.execute(select(MailboxHealth.__table__))).all()}
    mailboxes = []
    for box in settings.mailboxes:
        row = health.get(box.name)
        if row is None:
            mailboxes.append(MailboxStatus(box.name, None, None, None, None, None))
        else:
            mailboxes.append(MailboxStatus(box.name, row.connected, row.last_poll_at, row.waiting,
                                           row.last_error, row.last_error_at))
    counts = await shared_counts(engine)
    scheduler = Scheduler(session_factory(engine), clock, default_sources(settings, clock))
    upcoming = [
        {"due_at": u.due_at.isoformat(), "kind": u.kind, "subject": u.subject_ref, "recipient": u.recipient}
        for u in (await scheduler.upcoming(now + UPCOMING_HORIZON))[:UPCOMING_SHOWN]
    ]
    return Snapshot(
        at=now, mailboxes=mailboxes, outbox=counts.outbox, oldest_waiting_at=counts.oldest_waiting_at,
        quarantined=counts.quarantined, schema_revision=await migrate.current_revision(engine),
        schema_head=migrate.head_revision(), upcoming=upcoming,
    )


def problems(snap: Snapshot, settings: Settings) -> list[str]:
    """What needs a person, one line each (``status --check``), by the ``[status]`` thresholds."""
    limits = settings.status
    found = []
    stale = timedelta(minutes=limits.max_poll_age_minutes)
    for box in snap.mailboxes:
        if box.last_poll_at is None:
            found.append(f"mailbox {box.name}: never polled"
                         + (f" (last error: {box.last_error})" if box.last_error else ""))
        elif snap.at - box.last_poll_at > stale:
            minutes = int((snap.at - box.last_poll_at).total_seconds() // 60)
            found.append(f"mailbox {box.name}: not polled for {minutes} minutes"
                         + (f" (last error: {box.last_error})" if box.last_error else ""))
    age = _age(snap.at, snap.oldest_waiting_at)
    if age is not None and age > limits.max_outbox_age_minutes * 60:
        found.append(f"outbox: mail waiting for {age // 60} minutes "
                     f"({snap.outbox.get('pending', 0)} pending, {snap.outbox.get('sending', 0)} sending)")
    if snap.quarantined > limits.max_quarantined:
        found.append(f"quarantine: {snap.quarantined} message(s) need review (case-gateway quarantine list)")
    if snap.schema_revision != snap.schema_head:
        found.append(f"database schema at {snap.schema_revision or 'nothing'}, the program needs "
                     f"{snap.schema_head} (case-gateway db upgrade)")
    return found


async def probe(settings: Settings) -> list[str]:
    """Log in to every mailbox and greet the relay (nothing else); a line per server that
    does not answer as it should."""
    from gateway.inbound.imap.client import connect as imap_connect
    from gateway.outbound.transport import SmtpTransport

    async def mailbox(box: Any) -> str | None:
        try:
            client = await asyncio.wait_for(imap_connect(box), box.timeout_seconds)
            await client.close()
        except Exception as error:
            return f"mailbox {box.name}: cannot log in to {box.host}:{box.port}: {one_line(error)}"
        return None

    async def relay() -> str | None:
        transport = SmtpTransport(settings.smtp)
        try:
            await asyncio.wait_for(transport.greet(), settings.smtp.timeout_seconds)
        except Exception as error:
            return f"relay {settings.smtp.host}:{settings.smtp.port}: {one_line(error)}"
        finally:
            await transport.close()
        return None

    answers = await asyncio.gather(*(mailbox(b) for b in settings.mailboxes), relay())
    return [a for a in answers if a is not None]
