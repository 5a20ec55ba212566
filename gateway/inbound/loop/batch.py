"""A mailbox's fetched batches through store -> parse -> pipeline -> commit, in the order fetched.

Exactly-once effect: the raw row is committed first; one more attempt is committed before
each pipeline run; the effects and the disposition commit together. A crash before that
commit leaves the row undecided and the next run starts it again (no effect happened); a
crash after it leaves a decided row whose IMAP copy the next run only moves. A message whose
pipeline fails ``limits.pipeline_attempts`` times is quarantined with its error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.config import MailboxSettings
from gateway.db import PlannerStatistics
from gateway.domain import Disposition
from gateway.inbound.imap.fetching import Fetched
from gateway.inbound.loop import store
from gateway.inbound.loop.failures import give_up, record_failure
from gateway.inbound.loop.parsing import Parser, Parsing
from gateway.inbound.loop.store import DecidedElsewhere, KnownUid
from gateway.inbound.loop.workers import WorkerPool
from gateway.inbound.mail.analysis import Parsed
from gateway.inbound.mail.parsed import ParseLimits
from gateway.inbound.policy.context import Services
from gateway.inbound.policy.lookups import Expected, Lookups
from gateway.inbound.policy.pipeline import run_pipeline
from gateway.inbound.policy.record import DecidedRow

log = structlog.get_logger(__name__)

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

class BatchDecider:
    """Decides the batches the mailbox loops fetch; one for all of the daemon's mailboxes."""

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
        self.parser = Parser(pool, ParseLimits.of(services.settings.limits), services.keys)
        self.statistics = PlannerStatistics(engine)

    def start_round(
        self, mailbox: MailboxSettings, uidvalidity: int, should_stop: Callable[[], bool] = lambda: False
    ) -> Round:
        """A round over ``mailbox`` that found mail: the parse workers start now."""
        self.parser.warm_up()
        return Round(self, mailbox, uidvalidity, should_stop)

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

    async def process(
        self,
        mailbox: MailboxSettings,
        batch: Sequence[Fetched],
        known: dict[int, KnownUid],
        parsing: Parsing,
        should_stop: Callable[[], bool],
    ) -> dict[int, str]:
        """Decide every stored message of ``batch`` (``known``: what :meth:`store` returned,
        ``parsing``: their parses); return uid -> IMAP folder for the decided ones."""
        todo = [f for f in batch if known[f.uid].disposition is None]
        done = {
            uid: k.target_folder or mailbox.processed_folder
            for uid, k in known.items()
            if k.disposition is not None
        }
        limit = self.services.settings.limits.pipeline_attempts
        for f in (f for f in todo if known[f.uid].attempts >= limit):
            done[f.uid] = await self._give_up(known[f.uid].id, mailbox, known[f.uid].attempts)
        todo = [f for f in todo if known[f.uid].attempts < limit]
        for group in groups(todo, {uid: k.attempts for uid, k in known.items()}):
            if should_stop():
                break  # the rest stays undecided in the inbox for the next run
            items = [Item(f.uid, known[f.uid].id, await parsing[f.uid], known[f.uid].attempts + 1,
                          f.fetched_at) for f in group]
            await store.begin_attempts(self.engine, [(i.row_id, i.attempt, i.parsed.mail) for i in items])
            done.update(await self._decide(mailbox, items))
        return done

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


class Round:
    """One round's batches of one mailbox. Each batch's parsing starts and it is stored as soon
    as it is fetched, while earlier batches are decided; batches are stored and decided in the
    order they came (rows numbered in the mailbox's order, and no two write transactions of a
    round waiting on each other)."""

    def __init__(self, decider: BatchDecider, mailbox: MailboxSettings, uidvalidity: int,
                 should_stop: Callable[[], bool]) -> None:
        self.decider = decider
        self.mailbox = mailbox
        self.uidvalidity = uidvalidity
        self.should_stop = should_stop
        self.stopped = False
        self._storing = asyncio.Lock()
        self._deciding = asyncio.Lock()

    async def decide(self, batch: Sequence[Fetched]) -> dict[int, str]:
        """Store, parse and decide ``batch``; uid -> IMAP folder of the messages decided. Called
        in the order the batches were fetched, with nothing awaited before it."""
        parsing = self.decider.parser.start(batch)
        try:
            async with self._storing:
                known = await self.decider.store(self.mailbox, self.uidvalidity, batch)
            async with self._deciding:  # queued at once: the order stored is the order decided
                return await self.decider.process(self.mailbox, batch, known, parsing, self._stopping)
        finally:  # what was not decided (a stop, a failure) is parsed again next round
            for parse in parsing.values():
                parse.cancel()

    def stop(self) -> None:
        """Decide nothing more: the batches still to come are only stored."""
        self.stopped = True

    def _stopping(self) -> bool:
        return self.stopped or self.should_stop()
