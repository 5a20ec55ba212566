"""The outbox sender: claims due rows, sends them over pooled SMTP connections, records each
recipient's fate in the row, so retries and give-ups survive restarts.

Claiming is one ``UPDATE ... RETURNING`` statement: with ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so several sender processes never take the same row; on SQLite the database's
single writer makes the statement atomic. A claim is a lease, renewed every third of
``lease_seconds`` while its sender lives: a sender that dies after claiming leaves the row to
be taken again when the lease runs out, and it is then sent with the same Message-ID (so a
message goes out once more at most).
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.clock import Clock
from gateway.config import OutboxSettings
from gateway.db import among
from gateway.domain import OutboxStatus, RecipientStatus
from gateway.errors import PermanentTransportError, TemporaryTransportError
from gateway.models import Outbox, OutboxRecipient
from gateway.outbound.backoff import retry_delay
from gateway.outbound.transport import Reply, Transport

log = structlog.get_logger(__name__)


@dataclass
class Claimed:
    id: int
    data: bytes
    envelope_from: str
    message_id: str
    expires_at: datetime
    attempts: int
    recipients: dict[str, int] = field(default_factory=dict)
    """Pending recipients: address -> recipient row id."""


@dataclass
class SendStats:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    expired: int = 0

    def add(self, other: SendStats) -> None:
        self.sent += other.sent
        self.retrying += other.retrying
        self.failed += other.failed
        self.expired += other.expired

    @property
    def handled(self) -> int:
        return self.sent + self.retrying + self.failed + self.expired


class Sender:
    def __init__(
        self,
        engine: AsyncEngine,
        transport: Transport,
        settings: OutboxSettings,
        clock: Clock,
        *,
        concurrency: int = 4,
        worker_id: str | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.engine = engine
        self.transport = transport
        self.settings = settings
        self.clock = clock
        self.concurrency = concurrency
        self.worker_id = worker_id or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.rng = rng or random.Random()
        self._pg = engine.dialect.name == "postgresql"
        self.relay_failure: str | None = None
        """Why the relay could not be reached (no SMTP reply at all), until a send works again."""
        self.sleep = sleep
        """What the lease renewal waits with (tests drive it)."""
        self._held: set[int] = set()
        """Rows claimed and not yet recorded: their leases are renewed."""

    async def run_until_empty(self) -> SendStats:
        """Send everything due now; return when nothing due is left (the burst mode tests use).

        Database work overlaps with sending: the next batch is claimed while this one is on the
        wire, and this one's results are recorded while the next is. A crash loses nothing:
        unrecorded rows keep their lease and are sent again (same Message-ID) when it ends.
        """
        total = SendStats()
        recording: asyncio.Future[SendStats] | None = None
        batch = await self.claim(self.settings.batch_size)
        if not batch:
            return total
        renewing = asyncio.ensure_future(self._renew_leases())
        try:
            while batch:
                sending = asyncio.ensure_future(self._send_all(batch))
                claiming = asyncio.ensure_future(self.claim(self.settings.batch_size))
                try:
                    results = await sending
                    if recording is not None:
                        total.add(await recording)
                    recording = asyncio.ensure_future(self._record(results))
                finally:
                    batch = await claiming
            if recording is not None:
                total.add(await recording)
        finally:
            renewing.cancel()
        return total

    async def _renew_leases(self) -> None:
        """Every third of the lease, push the leases of the rows in hand further out."""
        while True:
            await self.sleep(self.settings.lease_seconds / 3)
            held = list(self._held)
            if not held:
                continue
            lease = self.clock.now() + timedelta(seconds=self.settings.lease_seconds)
            try:
                async with self.engine.begin() as conn:
                    await conn.execute(
                        update(Outbox)
                        .where(among(Outbox.id, held, conn.dialect.name), Outbox.claimed_by == self.worker_id)
                        .values(lease_until=lease)
                        .execution_options(synchronize_session=False)
                    )
            except Exception as exc:  # the database is away: the leases may run out; no more
                log.warning("outbox.lease_not_renewed", rows=len(held), error=str(exc))

    async def _send_all(
        self, rows: list[Claimed]
    ) -> list[tuple[Claimed, dict[str, Reply] | Exception | None]]:
        now = self.clock.now()
        gate = asyncio.Semaphore(self.concurrency)

        async def one(row: Claimed) -> tuple[Claimed, dict[str, Reply] | Exception | None]:
            if row.expires_at <= now:
                return row, None  # too late: expire without sending
            async with gate:
                return row, await self._deliver(row)

        return list(await asyncio.gather(*(one(r) for r in rows)))

    async def claim(self, limit: int) -> list[Claimed]:
        """Lease up to ``limit`` due rows: pending ones first, then rows whose lease ran out
        (their sender died). Two statements, so each can walk its index."""
        now = self.clock.now()
        lease = now + timedelta(seconds=self.settings.lease_seconds)
        async with self.engine.begin() as conn:
            rows: dict[int, Claimed] = {}
            for due in (
                and_(Outbox.status == OutboxStatus.PENDING, Outbox.next_attempt_at <= now),
                and_(Outbox.status == OutboxStatus.SENDING, Outbox.lease_until <= now),
            ):
                if len(rows) >= limit:
                    break
                for r in (await conn.execute(self._claim_statement(due, limit - len(rows), lease))).all():
                    rows[r.id] = Claimed(
                        r.id, r.data, r.envelope_from, r.message_id, r.expires_at, r.attempts
                    )
            if rows:
                recipients = await conn.execute(
                    select(OutboxRecipient.id, OutboxRecipient.outbox_id, OutboxRecipient.address).where(
                        among(OutboxRecipient.outbox_id, rows, conn.dialect.name),
                        OutboxRecipient.status == RecipientStatus.PENDING,
                    )
                )
                for rid, oid, address in recipients.all():
                    rows[oid].recipients[address] = rid
        self._held.update(rows)
        return sorted(rows.values(), key=lambda r: r.id)

    def _claim_statement(self, due: Any, limit: int, lease: datetime) -> Any:
        pick = select(Outbox.id).where(due).order_by(Outbox.next_attempt_at, Outbox.id).limit(limit)
        if self._pg:
            pick = pick.with_for_update(skip_locked=True)
        return (
            update(Outbox)
            .where(Outbox.id.in_(pick.scalar_subquery()))
            .values(status=OutboxStatus.SENDING, lease_until=lease, claimed_by=self.worker_id)
            .returning(
                Outbox.id,
                Outbox.data,
                Outbox.envelope_from,
                Outbox.message_id,
                Outbox.expires_at,
                Outbox.attempts,
            )
            .execution_options(synchronize_session=False)
        )

    async def _deliver(self, row: Claimed) -> dict[str, Reply] | Exception:
        if not row.recipients:
            return {}
        try:
            replies = await self.transport.send(row.envelope_from, list(row.recipients), row.data)
        except (TemporaryTransportError, PermanentTransportError) as exc:
            log.warning(
                "outbox.send_failed",
                outbox_id=row.id,
                error=str(exc),
                temporary=isinstance(exc, TemporaryTransportError),
            )
            if isinstance(exc, TemporaryTransportError) and exc.code is None:
                self.relay_failure = f"SMTP relay: {exc}"
            return exc
        if self.relay_failure is not None:
            log.info("smtp.relay_recovered", was=self.relay_failure)
            self.relay_failure = None
        return replies

    async def _record(
        self, results: Sequence[tuple[Claimed, dict[str, Reply] | Exception | None]]
    ) -> SendStats:
        now = self.clock.now()
        stats = SendStats()
        row_updates: list[dict[str, Any]] = []
        rcpt_updates: list[dict[str, Any]] = []
        for row, outcome in results:
            row_update, rcpts = self._outcome(row, outcome, now)
            for change, address in zip(rcpts, row.recipients, strict=True):
                if change["r_status"] in (RecipientStatus.FAILED, RecipientStatus.EXPIRED):
                    log.warning("outbox.recipient_failed", outbox_id=row.id, recipient=address,
                                status=str(change["r_status"]), code=change["r_code"],
                                reply=change["r_reply"])
            row_updates.append(row_update)
            rcpt_updates.extend(rcpts)
            status = row_update["status"]
            if status == OutboxStatus.PENDING and row_update["error"]:
                log.warning("outbox.retry_scheduled", outbox_id=row.id, attempts=row_update["attempts"],
                            next_attempt_at=row_update["next_at"].isoformat())
            if status == OutboxStatus.SENT:
                stats.sent += 1
            elif status == OutboxStatus.PENDING:
                stats.retrying += 1
            elif status == OutboxStatus.EXPIRED:
                stats.expired += 1
            else:
                stats.failed += 1
        async with self.engine.begin() as conn:
            if rcpt_updates:
                await conn.execute(_RCPT_UPDATE, rcpt_updates)
            await conn.execute(_ROW_UPDATE, row_updates)
        self._held.difference_update(row.id for row, _ in results)
        return stats

    def _outcome(
        self, row: Claimed, outcome: dict[str, Reply] | Exception | None, now: datetime
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Decide the row's and each pending recipient's new state."""
        attempts = row.attempts + (0 if outcome is None else 1)
        rcpts: list[dict[str, Any]] = []
        error: str | None = None
        still_pending = 0
        for address, rid in row.recipients.items():
            change: dict[str, Any] = {
                "rid": rid,
                "r_attempts": 1 if outcome is not None else 0,
                "r_code": None,
                "r_reply": None,
                "r_sent_at": None,
                "r_status": RecipientStatus.PENDING,
            }
            if outcome is None:
                change["r_status"] = RecipientStatus.EXPIRED
                change["r_reply"] = "expired before it could be sent"
            elif isinstance(outcome, Exception):
                change["r_code"] = getattr(outcome, "code", None)
                change["r_reply"] = str(outcome)
                if isinstance(outcome, PermanentTransportError):
                    change["r_status"] = RecipientStatus.FAILED
                error = str(outcome)
            else:
                reply = outcome.get(address) or Reply(451, "no reply for this recipient")
                change["r_code"], change["r_reply"] = reply.code, reply.text
                if reply.ok:
                    change["r_status"], change["r_sent_at"] = RecipientStatus.SENT, now
                elif not reply.temporary:
                    change["r_status"] = RecipientStatus.FAILED
                    error = f"{address}: {reply.code} {reply.text}"
                else:
                    error = f"{address}: {reply.code} {reply.text}"
            if change["r_status"] == RecipientStatus.PENDING:
                still_pending += 1
            rcpts.append(change)
        status, next_at, finished = self._row_status(row, rcpts, still_pending, attempts, now)
        if status == OutboxStatus.EXPIRED:
            for change in rcpts:
                if change["r_status"] == RecipientStatus.PENDING:
                    change["r_status"] = RecipientStatus.EXPIRED
        return {
            "oid": row.id,
            "status": status,
            "attempts": attempts,
            "next_at": next_at,
            "finished": finished,
            "error": error,
        }, rcpts

    def _row_status(
        self,
        row: Claimed,
        rcpts: list[dict[str, Any]],
        still_pending: int,
        attempts: int,
        now: datetime,
    ) -> tuple[OutboxStatus, datetime, datetime | None]:
        if still_pending:
            next_at = now + retry_delay(
                attempts, self.settings.backoff_base_seconds, self.settings.backoff_max_seconds, self.rng
            )
            if next_at >= row.expires_at:
                return OutboxStatus.EXPIRED, now, now
            return OutboxStatus.PENDING, next_at, None
        states = {c["r_status"] for c in rcpts}
        if rcpts and states <= {RecipientStatus.EXPIRED}:
            return OutboxStatus.EXPIRED, now, now
        if RecipientStatus.FAILED in states or RecipientStatus.EXPIRED in states:
            return OutboxStatus.FAILED, now, now
        return OutboxStatus.SENT, now, now


_RCPT_UPDATE = (
    update(OutboxRecipient)
    .where(OutboxRecipient.id == bindparam("rid"))
    .values(
        status=bindparam("r_status"),
        attempts=OutboxRecipient.attempts + bindparam("r_attempts"),
        last_code=bindparam("r_code"),
        last_reply=bindparam("r_reply"),
        sent_at=bindparam("r_sent_at"),
    )
    .execution_options(synchronize_session=False)
)

_ROW_UPDATE = (
    update(Outbox)
    .where(Outbox.id == bindparam("oid"))
    .values(
        status=bindparam("status"),
        attempts=bindparam("attempts"),
        next_attempt_at=bindparam("next_at"),
        finished_at=bindparam("finished"),
        last_error=bindparam("error"),
        lease_until=None,
        claimed_by=None,
    )
    .execution_options(synchronize_session=False)
)
