"""What is written when a message's pipeline fails: its error, and at the attempt limit its
quarantine. Recording a failure can never fail because of the message: when the database
refuses what the message shows (a value no column takes), a generic reason is recorded in
its place, so the attempt still counts and the message is still quarantined in the end. Only
a database that refuses even that (it is down) stops the round, which is tried again later.
"""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.config import MailboxSettings
from gateway.inbound.loop import store
from gateway.inbound.loop.store import DecidedElsewhere
from gateway.inbound.mail.clean import clean_line
from gateway.inbound.mail.parsed import ParsedMail
from gateway.inbound.policy.context import Services
from gateway.inbound.policy.pipeline import quarantine_after_failures
from gateway.inbound.policy.record import DecidedRow, shown_fields

log = structlog.get_logger(__name__)

GENERIC_ERROR = "the pipeline failed; its error could not be recorded (see the daemon's log)"


async def record_failure(
    sessions: async_sessionmaker[AsyncSession], row_id: int, error: str, mail: ParsedMail | None
) -> None:
    """The failure, and what the row shows of the message (the pipeline did not get to write
    it), so that it can be recognised; the generic reason alone if that cannot be written."""
    try:
        await _record(sessions, row_id, clean_line(error)[:4000], mail)
    except Exception as exc:  # a value the driver or the database refuses, whatever it raises
        log.error("inbound.failure_not_recorded", inbound_id=row_id,
                  error=f"{type(exc).__name__}: {exc}"[:500])
        await _record(sessions, row_id, GENERIC_ERROR, None)


async def _record(
    sessions: async_sessionmaker[AsyncSession], row_id: int, error: str, mail: ParsedMail | None
) -> None:
    async with sessions.begin() as session:
        row = await store.load(session, row_id)
        if row.disposition is not None:
            return  # decided meanwhile (by another process): its record stands
        row.error = error
        for key, value in shown_fields(mail).items():
            if value is not None:
                setattr(row, key, value)


async def give_up(
    sessions: async_sessionmaker[AsyncSession], services: Services, row_id: int, mailbox: MailboxSettings,
    attempts: int,
) -> str:
    """Quarantine the message after ``attempts`` failures, unless another process decided it
    meanwhile; returns its IMAP folder."""
    try:
        async with sessions.begin() as session:
            row = await store.load(session, row_id)
            if row.disposition is not None:
                return row.target_folder or mailbox.processed_folder
            decided = DecidedRow(row_id)
            quarantine_after_failures(decided, attempts, row.error or GENERIC_ERROR, mailbox, services)
            await store.write_decided(session, [decided])
            return mailbox.quarantine_folder
    except DecidedElsewhere:  # by another process, between the read and the write
        async with sessions.begin() as session:
            row = await store.load(session, row_id)
            return row.target_folder or mailbox.processed_folder
