"""Inbound rows: one per (mailbox, UIDVALIDITY, UID), written before any effect.

The row is the gateway's promise that nothing is lost: it exists, with the raw bytes (kept
apart in ``inbound_raw``, written once), before the pipeline runs; its ``attempts`` counter is
committed before each run (so a message that crashes the process is still counted); its
``disposition`` is set in the same transaction as the message's effects; a row in
``inbound_moved`` records that the IMAP copy reached its folder.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from gateway.db import among, chunks, insert_ignoring_conflicts, insert_queued
from gateway.inbound.mail.parsed import ParsedMail
from gateway.inbound.policy.record import DECIDED, KEPT, DecidedRow, shown_fields
from gateway.models import InboundMessage, InboundMoved, InboundRaw, MailboxState
from gateway.outbound.outbox import insert_queued_in_bulk


@dataclass(frozen=True)
class KnownUid:
    id: int
    uid: int
    disposition: str | None
    target_folder: str | None
    attempts: int


def _uids_in(uids: Sequence[int], dialect: str) -> Any:
    """``uid IN (...)`` plus the range the UIDs span. The range is what keeps the statement
    cheap whatever plan the database picks: PostgreSQL, without statistics yet (a new
    database, a burst of mail), plans the ``IN`` list as a filter on every row of the
    mailbox (a scan that grows with the table, tens of milliseconds at 10,000 rows), but
    always takes a range on the unique index's last column as an index condition."""
    return and_(InboundMessage.uid.between(min(uids), max(uids)), among(InboundMessage.uid, uids, dialect))


def known_query(mailbox: str, uidvalidity: int, uids: Sequence[int], dialect: str) -> Any:
    """What is known of these UIDs' rows (:class:`KnownUid`)."""
    return select(
        InboundMessage.id,
        InboundMessage.uid,
        InboundMessage.disposition,
        InboundMessage.target_folder,
        InboundMessage.attempts,
    ).where(
        InboundMessage.mailbox == mailbox,
        InboundMessage.uidvalidity == uidvalidity,
        _uids_in(uids, dialect),
    )


async def store_raw(
    engine: AsyncEngine,
    *,
    mailbox: str,
    uidvalidity: int,
    items: Iterable[tuple[int, bytes, int]],
    received_at: datetime,
) -> dict[int, KnownUid]:
    """Insert a row per (uid, raw, size) not stored yet; returns uid -> what is known of each
    (new rows and rows stored by an earlier run alike)."""
    items = list(items)
    if not items:
        return {}
    insert = insert_ignoring_conflicts(
        engine.dialect.name, InboundMessage.__table__, ["mailbox", "uidvalidity", "uid"]
    )
    values = [
        {
            "mailbox": mailbox,
            "uidvalidity": uidvalidity,
            "uid": uid,
            "size": size,
            "content_hash": "",
            "received_at": received_at,
            "trail": [],
            "attempts": 0,
        }
        for uid, raw, size in items
    ]
    found: dict[int, KnownUid] = {}
    raws = {uid: raw for uid, raw, _ in items}
    async with engine.begin() as conn:
        await conn.execute(insert, values)  # rows stored by an earlier run keep their first copy
        for chunk in chunks(list(raws)):
            known = known_query(mailbox, uidvalidity, chunk, engine.dialect.name)
            for r in (await conn.execute(known)).all():
                found[r.uid] = KnownUid(r.id, r.uid, r.disposition, r.target_folder, r.attempts)
        insert_raw = insert_ignoring_conflicts(engine.dialect.name, InboundRaw.__table__,
                                               ["inbound_message_id"])
        await conn.execute(insert_raw, [{"inbound_message_id": known.id, "raw": raws[uid]}
                                        for uid, known in found.items()])
    return found


async def raw_of(session: AsyncSession, row_id: int) -> bytes | None:
    """The stored bytes of an inbound message (None if it has none)."""
    return await session.scalar(select(InboundRaw.raw).where(InboundRaw.inbound_message_id == row_id))


async def begin_attempts(engine: AsyncEngine, items: Sequence[tuple[int, int, ParsedMail | None]]) -> None:
    """Commit one more attempt for each (row id, attempt, parsed mail) before the pipeline
    runs on it. From the second attempt on (the first failed, or the process died during it),
    with what the row shows to people (sender, subject, Message-ID), so that a message that
    keeps failing can be recognised before it is quarantined. A first attempt, nearly every
    message, is only counted: one statement for the group that touches no index (the
    pipeline writes those fields with its decision, ``failures.record_failure`` with a failure)."""
    if not items:
        return
    first = [row_id for row_id, attempt, _ in items if attempt <= 1]
    again = [{"rid": row_id, **{f"shown_{k}": v for k, v in shown_fields(mail).items()}}
             for row_id, attempt, mail in items if attempt > 1]
    try:
        await _count_attempts(engine, first, again)
    except Exception:  # a value the driver or the database refuses, whatever it raises
        if not again:
            raise
        # What the message shows was refused: the attempt counts all the same, or the message
        # would be tried for ever and never quarantined.
        await _count_attempts(engine, [row_id for row_id, _, _ in items], [])


async def _count_attempts(engine: AsyncEngine, first: Sequence[int], again: Sequence[dict[str, Any]]) -> None:
    async with engine.begin() as conn:
        for chunk in chunks(first):
            await conn.execute(
                update(InboundMessage)
                .where(among(InboundMessage.id, chunk, engine.dialect.name))
                .values(attempts=InboundMessage.attempts + 1)
                .execution_options(synchronize_session=False)
            )
        if again:
            await conn.execute(_AGAIN, again)


_AGAIN = (
    update(InboundMessage)
    .where(InboundMessage.id == bindparam("rid"))
    .values(
        attempts=InboundMessage.attempts + 1,
        from_address=bindparam("shown_from_address"),
        subject=bindparam("shown_subject"),
        message_id=bindparam("shown_message_id"),
    )
    .execution_options(synchronize_session=False)
)


class DecidedElsewhere(Exception):
    """Another process decided these rows first: this transaction must roll back."""

    def __init__(self, row_ids: set[int]) -> None:
        super().__init__(f"inbound rows {sorted(row_ids)[:20]} were decided by another process")
        self.row_ids = row_ids


async def claim_undecided(session: AsyncSession, row_ids: Sequence[int]) -> None:
    """Lock the rows a transaction is about to decide, or raise :class:`DecidedElsewhere` for
    those decided already. A write, and the transaction's first: on PostgreSQL it waits for a
    concurrent decider's commit and then sees its decision; on SQLite it takes the database's
    write lock, after which nobody else can decide anything until this transaction ends."""
    dialect = session.get_bind().dialect.name
    claimed: set[int] = set()
    for chunk in chunks(row_ids):
        found = await session.execute(
            update(InboundMessage)
            .where(among(InboundMessage.id, chunk, dialect), InboundMessage.disposition.is_(None))
            .values(attempts=InboundMessage.attempts)
            .returning(InboundMessage.id)
            .execution_options(synchronize_session=False)
        )
        claimed.update(found.scalars())
    lost = set(row_ids) - claimed
    if lost:
        raise DecidedElsewhere(lost)


async def write_decided(session: AsyncSession, rows: Sequence[DecidedRow]) -> None:
    """What deciding ``rows`` changed, in a few statements: the rows still undecided claimed
    (:func:`claim_undecided`: another process may have decided one meanwhile, and then this
    transaction must not commit), the cases through the unit of work, the decided rows in one
    executemany, then the timeline, attachments, security events and answers (outbox rows and
    recipients) in one bulk INSERT each.

    Rows are updated before the rows that point to them are inserted: on PostgreSQL, a foreign
    key check locks the row it points to (``FOR KEY SHARE``), which is cheap on a row the
    transaction has updated already, and costs a write of its own on one it has not."""
    values = [{"row_id": row.id, **{key: getattr(row, key) for key in DECIDED}} for row in rows]
    await claim_undecided(session, [row.id for row in rows])  # first: a message is decided once
    await session.flush()
    await session.execute(_DECIDED_UPDATE, values)  # Core executemany: no ORM bookkeeping per row
    await insert_queued_in_bulk(session)
    await insert_queued(session)


_TABLE = cast(Table, InboundMessage.__table__)
_DECIDED_UPDATE = (
    update(_TABLE).where(_TABLE.c.id == bindparam("row_id")).values({
        key: func.coalesce(bindparam(key), _TABLE.c[key]) if key in KEPT else bindparam(key)
        for key in DECIDED
    })
)


async def mark_moved(engine: AsyncEngine, mailbox: str, uidvalidity: int, uids: Sequence[int]) -> None:
    """The IMAP copies of these messages reached their folders."""
    if not uids:
        return
    async with engine.begin() as conn:
        for chunk in chunks(uids):
            await conn.execute(moved_insert(mailbox, uidvalidity, chunk, engine.dialect.name))


async def reconcile_moved(engine: AsyncEngine, mailbox: str, uidvalidity: int, in_inbox: set[int]) -> int:
    """Mark moved the decided messages that are no longer in the inbox folder but not marked
    moved (the process ended between a MOVE and its record); returns how many. Those still in
    the inbox are moved by the round, as every decided message there is."""
    unmarked = select(InboundMessage.uid).where(
        InboundMessage.mailbox == mailbox, InboundMessage.uidvalidity == uidvalidity,
        InboundMessage.disposition.is_not(None),
        ~select(InboundMoved.inbound_message_id)
        .where(InboundMoved.inbound_message_id == InboundMessage.id).exists(),
    )
    async with engine.connect() as conn:
        gone = [uid for uid in (await conn.scalars(unmarked)).all() if uid not in in_inbox]
    await mark_moved(engine, mailbox, uidvalidity, gone)
    return len(gone)


def moved_insert(mailbox: str, uidvalidity: int, uids: Sequence[int], dialect: str) -> Any:
    """Mark these UIDs' rows moved (rows marked before stay as they are)."""
    rows = select(InboundMessage.id).where(
        InboundMessage.mailbox == mailbox, InboundMessage.uidvalidity == uidvalidity, _uids_in(uids, dialect)
    )
    return insert_ignoring_conflicts(dialect, InboundMoved.__table__, ["inbound_message_id"]).from_select(
        ["inbound_message_id"], rows
    )


async def check_uidvalidity(engine: AsyncEngine, mailbox: str, uidvalidity: int, now: datetime) -> int | None:
    """Record the mailbox's UIDVALIDITY; return the previous one if it changed (else None).

    After a change, UIDs mean different messages: rows stay keyed by the old value, and the
    Message-ID + content dedupe keeps a re-fetched message from taking effect twice.
    """
    async with engine.begin() as conn:
        old = (
            await conn.execute(select(MailboxState.uidvalidity).where(MailboxState.mailbox == mailbox))
        ).scalar_one_or_none()
        if old is None:
            await conn.execute(
                insert(MailboxState).values(mailbox=mailbox, uidvalidity=uidvalidity, updated_at=now)
            )
            return None
        if old != uidvalidity:
            await conn.execute(
                update(MailboxState)
                .where(MailboxState.mailbox == mailbox)
                .values(uidvalidity=uidvalidity, updated_at=now)
            )
            return int(old)
        return None


async def load(session: AsyncSession, row_id: int) -> InboundMessage:
    """The row (the pipeline has its raw bytes parsed already)."""
    row = await session.get(InboundMessage, row_id)
    if row is None:
        raise LookupError(f"inbound message {row_id} vanished")
    return row
