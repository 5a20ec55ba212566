"""A batch of fetched messages through store -> parse -> pipeline -> commit.

Exactly-once effect: the raw row is committed first; one more attempt is committed before
each pipeline run; the effects and the disposition commit together. A crash before that
commit leaves the row undecided and the next run starts it again (no effect happened); a
crash after it leaves a decided row whose IMAP copy the next run only moves. A message whose
pipeline fails ``limits.pipeline_attempts`` times is quarantined with its error.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.config import MailboxSettings
from gateway.db import PlannerStatistics
from gateway.domain import Disposition
from gateway.inbound.loop import store
from gateway.inbound.loop.failures import give_up, record_failure
from gateway.inbound.loop.store import DecidedElsewhere, KnownUid
from gateway.inbound.loop.workers import BrokenProcessPool, WorkerPool, WorkerTimeout
from gateway.inbound.mail.analysis import Parsed, parse_chunk
from gateway.inbound.mail.parse import ParseLimits
from gateway.inbound.policy.context import Services
from gateway.inbound.policy.lookups import Expected, Lookups
from gateway.inbound.policy.pipeline import run_pipeline
from gateway.inbound.policy.record import DecidedRow

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Fetched:
    uid: int
    raw: bytes
    size: int
    problem: str | None = None
    """Set when the message was not fetched whole (over the size limit): it is quarantined."""
    fetched_at: float = field(default_factory=time.monotonic)
    """When it was fetched (``time.monotonic``): the decision's latency is measured from it."""


def _deliver(futures: Sequence[asyncio.Future[Parsed]], chunk: asyncio.Future[list[Parsed]]) -> None:
    """Hand a chunk's parses (or its failure) to the futures of its messages."""
    for index, future in enumerate(futures):
        if future.done():
            continue
        if chunk.cancelled():
            future.cancel()
        elif (error := chunk.exception()) is not None:
            future.set_exception(error)
        else:
            future.set_result(chunk.result()[index])


def _cancel_chunk(chunk: asyncio.Future[list[Parsed]], future: asyncio.Future[Parsed]) -> None:
    if future.cancelled():
        chunk.cancel()


Parsing = dict[int, "asyncio.Future[Parsed]"]
"""uid -> the message's parse, running in a worker."""

GROUP_SIZE = 150
"""Messages decided in one transaction."""


@dataclass(frozen=True)
class Item:
    uid: int
    row_id: int
    parsed: Parsed
    attempt: int
    fetched_at: float


def groups(todo: Sequence[Fetched], attempts: dict[int, int]) -> Iterator[list[Fetched]]:
    """Fresh messages in groups of :data:`GROUP_SIZE`; a message tried before (it failed, or the
    process died while its group ran) alone, so that a failure is pinned on the message that
    causes it and a poison message cannot take innocent ones to the attempt limit."""
    group: list[Fetched] = []
    for f in todo:
        if attempts.get(f.uid, 0) > 0:
            if group:
                yield group
                group = []
            yield [f]
            continue
        group.append(f)
        if len(group) == GROUP_SIZE:
            yield group
            group = []
    if group:
        yield group


Decision = tuple[Item, str | None, str | None, str | None]
"""A decided message: its disposition, its IMAP folder, and why it was quarantined (if it was)."""
"""A message, its disposition and its folder."""

PARSE_CHUNK = 25
"""Messages per call to a parse worker: six calls for a batch of 150, three for each of two
workers. Each call costs the daemon pickling, a result thread's wake-up and a future; in
calls of 3,000 mails to two workers the daemon's CPU per mail was 0.08 ms at 10 per call,
0.06 at 25 and 0.05 at 50, the workers' 0.62-0.65, 0.61 and 0.60 ms."""

WORKER_DIED = ("the parse worker process died while parsing this message, alone in it (killed, out of "
               "memory or crashed)")
WORKER_TIMED_OUT = ("parsing this message, alone in a worker process, took longer than "
                    "inbound.parse_timeout_seconds ({seconds:g} s); the worker was killed")


class BatchDecider:
    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        services: Services,
        pool: WorkerPool | None = None,
        observe: Callable[[str, float | None], None] | None = None,
    ) -> None:
        self.engine = engine
        self.observe = observe
        """Told each committed decision: its disposition and seconds since the fetch (metrics)."""
        self.sessions = sessions
        self.services = services
        self.pool = pool
        """Where messages are parsed; None: in a thread of this process."""
        self.statistics = PlannerStatistics(engine)
        self.limits = ParseLimits.of(services.settings.limits)
        """The limits the workers parse to, as plain data (they need not import the settings)."""

    async def store(
        self, mailbox: MailboxSettings, uidvalidity: int, batch: Sequence[Fetched]
    ) -> dict[int, KnownUid]:
        """Store the raw messages of ``batch`` (those not stored yet); uid -> what is known."""
        known = await store.store_raw(
            self.engine,
            mailbox=mailbox.name,
            uidvalidity=uidvalidity,
            items=[(f.uid, f.raw, f.size) for f in batch],
            received_at=self.services.clock.now(),
        )
        await self.statistics.wrote(len(batch))
        return known

    def expect_mail(self) -> None:
        """There is mail to parse: start the parse workers now (in a thread), so that they are
        up by the time the first batch is fetched. A round that finds no mail starts none."""
        if self.pool is not None:
            self.pool.start()

    def start_parsing(self, batch: Sequence[Fetched]) -> Parsing:
        """Parse ``batch`` in the workers, from now on (parsing has no effect), in chunks of
        :data:`PARSE_CHUNK`; cancelling one message's parse cancels its chunk."""
        whole = [f for f in batch if f.problem is None]
        parsing: Parsing = {}
        for f in batch:
            if f.problem is not None:  # not fetched whole: nothing to parse
                parsing[f.uid] = asyncio.get_running_loop().create_future()
                parsing[f.uid].set_result(Parsed(None, f.problem))
        loop = asyncio.get_running_loop()
        for start in range(0, len(whole), PARSE_CHUNK):
            chunk = whole[start : start + PARSE_CHUNK]
            task = asyncio.ensure_future(self._parse_chunk(chunk))
            futures = [loop.create_future() for _ in chunk]  # plain futures: no task per message
            task.add_done_callback(functools.partial(_deliver, futures))
            for f, future in zip(chunk, futures, strict=True):
                future.add_done_callback(functools.partial(_cancel_chunk, task))
                parsing[f.uid] = future
        return parsing

    async def process(
        self,
        mailbox: MailboxSettings,
        uidvalidity: int,
        batch: Sequence[Fetched],
        should_stop: Callable[[], bool] = lambda: False,
        parsing: Parsing | None = None,
        stored: dict[int, KnownUid] | None = None,
    ) -> dict[int, str]:
        """Decide every message of ``batch``; return uid -> IMAP folder for the decided ones.
        ``parsing``: what :meth:`start_parsing` started for the batch, ``stored``: what
        :meth:`store` returned for it, if the caller did either already."""
        known = stored if stored is not None else await self.store(mailbox, uidvalidity, batch)
        todo = [f for f in batch if known[f.uid].disposition is None]
        done = {
            uid: k.target_folder or mailbox.processed_folder
            for uid, k in known.items()
            if k.disposition is not None
        }
        limit = self.services.settings.limits.pipeline_attempts
        given_up = [f for f in todo if known[f.uid].attempts >= limit]
        for f in given_up:
            done[f.uid] = await self._give_up(known[f.uid].id, mailbox, known[f.uid].attempts)
        todo = [f for f in todo if known[f.uid].attempts < limit]
        # Parsing runs ahead in the workers while the messages before are decided, in order.
        parsing = dict(parsing or {})
        parsing.update(self.start_parsing([f for f in todo if f.uid not in parsing]))
        try:
            for group in groups(todo, {uid: k.attempts for uid, k in known.items()}):
                if should_stop():
                    break  # the rest stays undecided in the inbox for the next run
                items = [Item(f.uid, known[f.uid].id, await parsing[f.uid], known[f.uid].attempts + 1,
                              f.fetched_at) for f in group]
                await store.begin_attempts(self.engine, [(i.row_id, i.attempt, i.parsed.mail) for i in items])
                done.update(await self._decide(mailbox, items))
        finally:
            for parse in parsing.values():
                parse.cancel()
        return done

    async def _parse_chunk(self, chunk: Sequence[Fetched]) -> list[Parsed]:
        limits, keys, raws = self.limits, self.services.keys, [f.raw for f in chunk]
        if self.pool is None:
            return await asyncio.to_thread(parse_chunk, raws, limits, keys)
        try:
            return await self.pool.run(parse_chunk, raws, limits, keys)
        except BrokenProcessPool:  # a worker died or hung: which message of the chunk did it, if any?
            return [await self._parse_alone(f) for f in chunk]

    async def _parse_alone(self, message: Fetched) -> Parsed:
        assert self.pool is not None
        limits, keys = self.limits, self.services.keys
        try:
            return (await self.pool.run_alone(parse_chunk, [message.raw], limits, keys))[0]
        except WorkerTimeout:
            log.error("inbound.message_hung_parse_worker", uid=message.uid, size=message.size)
            return Parsed(None, WORKER_TIMED_OUT.format(seconds=self.pool.timeout))
        except BrokenProcessPool:
            log.error("inbound.message_killed_parse_worker", uid=message.uid, size=message.size)
            return Parsed(None, WORKER_DIED)

    async def _decide(self, mailbox: MailboxSettings, items: list[Item]) -> dict[int, str]:
        """Decide a group in one transaction: what the stages ask the database is fetched for
        the whole group first, and what they write goes out in one flush at the end.

        A message whose pipeline raises is taken out (its error recorded, quarantined at the
        attempt limit) and the others run again: nothing of theirs was committed, so nothing
        happens twice. When the prefetch, the flush or the commit fails, no message can be
        blamed: each is then decided alone, which pins the failure on the one that causes it.
        A message another process decided meanwhile is left to it (its effects here roll back)."""
        remaining = list(items)
        decided: dict[int, str] = {}
        while remaining:
            current: Item | None = None
            problem: Exception
            try:
                outcome = await self._run_group(mailbox, remaining)
            except DecidedElsewhere as elsewhere:
                log.info("inbound.decided_elsewhere", mailbox=mailbox.name,
                         inbound_ids=sorted(elsewhere.row_ids))
                remaining = [i for i in remaining if i.row_id not in elsewhere.row_ids]
                continue
            except _ItemFailed as failure:
                current, problem = failure.item, failure.error
            except Exception as error:  # one bad message must not stop the mailbox
                problem = error
            else:
                for item, disposition, folder, reason in outcome:  # committed
                    if disposition == Disposition.QUARANTINED:  # a person must look at it: said loudly
                        log.warning("inbound.quarantined", inbound_id=item.row_id, mailbox=mailbox.name,
                                    reason=reason)
                    log.info("inbound.decided", inbound_id=item.row_id, disposition=disposition,
                             mailbox=mailbox.name)
                    if self.observe is not None and disposition is not None:
                        self.observe(disposition, time.monotonic() - item.fetched_at)
                    decided[item.uid] = folder or mailbox.processed_folder
                return decided
            if current is None and len(remaining) > 1:
                log.warning("inbound.group_failed", mailbox=mailbox.name, size=len(remaining),
                            error=f"{type(problem).__name__}: {problem}"[:500])
                for item in remaining:
                    decided.update(await self._decide(mailbox, [item]))
                return decided
            culprit = current or remaining[0]
            log.error("inbound.pipeline_failed", inbound_id=culprit.row_id, attempt=culprit.attempt,
                      error=f"{type(problem).__name__}: {problem}"[:500], exc_info=problem)
            await record_failure(self.sessions, culprit.row_id, f"{type(problem).__name__}: {problem}",
                                 culprit.parsed.mail)
            if culprit.attempt >= self.services.settings.limits.pipeline_attempts:
                decided[culprit.uid] = await self._give_up(culprit.row_id, mailbox, culprit.attempt)
            remaining.remove(culprit)
        return decided

    async def _run_group(self, mailbox: MailboxSettings, items: list[Item]) -> list[Decision]:
        """The group's pipelines and their writes, in one transaction; a message's pipeline
        that raises is named by :class:`_ItemFailed`."""
        outcome: list[Decision] = []
        async with self.sessions.begin() as session:
            rows = {i.row_id: DecidedRow(i.row_id) for i in items}
            lookups = await Lookups.prefetch(session, self.services.clock.now(), [
                Expected(i.row_id, i.parsed.mail, i.parsed.tokens, i.parsed.quotes_maybe_ours) for i in items
            ])
            with session.no_autoflush:  # one flush for the group
                for item in items:
                    row = rows[item.row_id]
                    try:
                        await run_pipeline(session, self.services, row, mailbox, item.parsed, lookups)
                    except Exception as exc:
                        raise _ItemFailed(item, exc) from exc
                    lookups.remember(row)
                    quarantined = row.disposition == Disposition.QUARANTINED
                    reason = (row.error or (row.trail or [{}])[-1].get("detail")) if quarantined else None
                    outcome.append((item, row.disposition, row.target_folder, reason))
            await store.write_decided(session, [rows[i.row_id] for i in items])
        return outcome

    async def _give_up(self, row_id: int, mailbox: MailboxSettings, attempts: int) -> str:
        folder = await give_up(self.sessions, self.services, row_id, mailbox, attempts)
        if folder == mailbox.quarantine_folder:
            log.warning("inbound.quarantined", inbound_id=row_id, mailbox=mailbox.name,
                        reason=f"failed {attempts} times")
            if self.observe is not None:
                self.observe(Disposition.QUARANTINED, None)
        return folder


class _ItemFailed(Exception):
    """The pipeline of ``item`` raised ``error``."""

    def __init__(self, item: Item, error: Exception) -> None:
        super().__init__(str(error))
        self.item = item
        self.error = error
