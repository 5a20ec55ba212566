"""Quarantine release: run the pipeline again on a quarantined message's stored bytes."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import MailboxSettings, Settings
from gateway.db import insert_ignoring_conflicts
from gateway.domain import Disposition
from gateway.errors import NotFound, PolicyViolation
from gateway.inbound.loop.store import raw_of, write_decided
from gateway.inbound.mail.analysis import parse_safely
from gateway.inbound.policy.context import MessageContext, Services
from gateway.inbound.policy.lookups import Expected, Lookups
from gateway.inbound.policy.pipeline import run_pipeline
from gateway.inbound.policy.record import DecidedRow
from gateway.models import InboundMessage, InboundMoved


def mailbox_settings(settings: Settings, name: str) -> MailboxSettings:
    for box in settings.mailboxes:
        if box.name == name:
            return box
    return MailboxSettings(name=name, host="127.0.0.1")


async def release(session: AsyncSession, services: Services, inbound_id: int) -> MessageContext:
    """Decide the message anew; its IMAP copy stays in the quarantine folder as the record."""
    row = await session.get(InboundMessage, inbound_id, with_for_update=True)
    if row is None:
        raise NotFound(f"no inbound message {inbound_id}")
    if row.disposition != Disposition.QUARANTINED:
        raise PolicyViolation(f"inbound message {inbound_id} is {row.disposition or 'undecided'}, "
                              "not quarantined")
    raw = await raw_of(session, row.id)
    if raw is None or len(raw) < row.size:
        raise PolicyViolation(f"inbound message {inbound_id} was too large to keep whole "
                              f"({row.size} bytes); handle it from the quarantine folder")
    parsed = parse_safely(raw, services.settings.limits, services.keys)
    row.disposition = None
    row.error = None
    await session.flush()  # undecided again: claimed and written like any decision
    decided = DecidedRow(row.id)
    lookups = await Lookups.prefetch(session, services.clock.now(), [
        Expected(row.id, parsed.mail, parsed.tokens, parsed.quotes_maybe_ours)])
    ctx = await run_pipeline(session, services, decided, mailbox_settings(services.settings, row.mailbox),
                             parsed, lookups)
    ctx.trail.insert(0, {"stage": "release", "outcome": "continue", "detail": "released from quarantine"})
    await write_decided(session, [decided])
    moved = insert_ignoring_conflicts(session.get_bind().dialect.name, InboundMoved.__table__,
                                      ["inbound_message_id"])
    await session.execute(moved.values(inbound_message_id=row.id))  # nothing to move: the copy stays
    return ctx
