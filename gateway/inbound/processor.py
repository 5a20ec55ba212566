"""A batch of fetched messages through store -> parse -> pipeline -> commit.

Exactly-once effect: the raw row is committed first; one more attempt is committed before
each pipeline run; the effects and the disposition commit together. A crash before that
commit leaves the row undecided and the next run starts it again (no effect happened); a
crash after it leaves a decided row whose IMAP copy the next run only moves. A message whose
pipeline fails ``limits.pipeline_attempts`` times is quarantined with its error.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.config import LimitSettings, MailboxSettings
from gateway.domain import Disposition
from gateway.errors import MessageRejected
from gateway.inbound import store
from gateway.inbound.context import Deps
from gateway.inbound.parse import ParsedMail, parse_message
from gateway.inbound.pipeline import finish, run_pipeline
from gateway.inbound.reply_text import new_text_now

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Fetched:
    uid: int
    raw: bytes
    size: int
    problem: str | None = None
    """Set when the message was not fetched whole (over the size limit): it is quarantined."""


@dataclass(frozen=True)
class Parsed:
    """What a worker process makes of a message's bytes."""

    mail: ParsedMail | None
    problem: str | None = None
    """Why the message cannot be processed (it is quarantined)."""
    new_text: str | None = None
    """The sender's new words, quotes stripped (the CPU-heavy part of applying a reply)."""


def parse_safely(raw: bytes, limits: LimitSettings) -> Parsed:
    """Runs in a worker process: the parsed mail and its new text, or why it cannot be processed."""
    try:
        mail = parse_message(raw, limits)
    except MessageRejected as exc:
        return Parsed(None, str(exc))
    except Exception as exc:  # the parser promises not to raise; a bug still must not stall us
        return Parsed(None, f"parser failed: {type(exc).__name__}: {exc}")
    try:
        text = new_text_now(mail.text_body, mail.html_body, limits.max_new_text_chars)
    except Exception:  # worked out again, with a deadline, if the message is applied
        text = None
    return Parsed(mail, None, text)


GROUP_SIZE = 25
"""Messages decided in one transaction."""


@dataclass(frozen=True)
class Item:
    uid: int
    row_id: int
    parsed: Parsed
    attempt: int


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


def parse_pool(workers: int) -> Executor | None:
    if workers <= 0:
        return None
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("forkserver"))


class Processor:
    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        deps: Deps,
        executor: Executor | None = None,
    ) -> None:
        self.engine = engine
        self.sessions = sessions
        self.deps = deps
        self.executor = executor

    async def process(
        self,
        mailbox: MailboxSettings,
        uidvalidity: int,
        batch: Sequence[Fetched],
        should_stop: Callable[[], bool] = lambda: False,
    ) -> dict[int, str]:
        """Decide every message of ``batch``; return uid -> IMAP folder for the decided ones."""
        now = self.deps.clock.now()
        ids = await store.store_raw(
            self.engine,
            mailbox=mailbox.name,
            uidvalidity=uidvalidity,
            items=[(f.uid, f.raw, f.size) for f in batch],
            received_at=now,
        )
        known = await store.known_uids(self.engine, mailbox.name, uidvalidity, list(ids))
        todo = [f for f in batch if known[f.uid].disposition is None]
        done = {
            uid: k.target_folder or mailbox.processed_folder
            for uid, k in known.items()
            if k.disposition is not None
        }
        limit = self.deps.settings.limits.pipeline_attempts
        given_up = [f for f in todo if known[f.uid].attempts >= limit]
        for f in given_up:
            done[f.uid] = await self._give_up(ids[f.uid], mailbox, known[f.uid].attempts)
        todo = [f for f in todo if known[f.uid].attempts < limit]
        # Parsing runs ahead in the workers while the messages before are decided, in order.
        parsing = {f.uid: asyncio.ensure_future(self._parse(f)) for f in todo}
        try:
            for group in groups(todo, {uid: k.attempts for uid, k in known.items()}):
                if should_stop():
                    break  # the rest stays undecided in the inbox for the next run
                items = [
                    Item(f.uid, ids[f.uid], await parsing[f.uid], known[f.uid].attempts + 1) for f in group
                ]
                await store.begin_attempts(self.engine, [(i.row_id, i.parsed.mail) for i in items])
                done.update(await self._decide(mailbox, items))
        finally:
            for parse in parsing.values():
                parse.cancel()
        return done

    async def _parse(self, f: Fetched) -> Parsed:
        if f.problem is not None:
            return Parsed(None, f.problem)
        limits = self.deps.settings.limits
        if self.executor is None:
            return await asyncio.to_thread(parse_safely, f.raw, limits)
        return await asyncio.get_running_loop().run_in_executor(self.executor, parse_safely, f.raw, limits)

    async def _decide(self, mailbox: MailboxSettings, items: list[Item]) -> dict[int, str]:
        """Decide a group in one transaction. A message whose pipeline raises is taken out (its
        error recorded, quarantined at the attempt limit) and the others run again: nothing of
        theirs was committed, so nothing happens twice."""
        remaining = list(items)
        decided: dict[int, str] = {}
        while remaining:
            current: Item | None = None
            try:
                outcome: list[tuple[Item, str | None, str | None]] = []
                async with self.sessions.begin() as session:
                    rows = await store.load_many(session, [i.row_id for i in remaining])
                    for current in remaining:
                        row = rows[current.row_id]
                        with session.no_autoflush:  # the row's fields go out once
                            await run_pipeline(
                                session,
                                self.deps,
                                row,
                                mailbox,
                                current.parsed.mail,
                                current.parsed.problem,
                                new_text=current.parsed.new_text,
                            )
                        await session.flush()  # the next message's dedupe must see this one
                        outcome.append((current, row.disposition, row.target_folder))
            except Exception as exc:  # one bad message must not stop the mailbox
                if current is None:
                    log.exception("inbound.group_failed", mailbox=mailbox.name)
                    return decided  # undecided: found again next round
                log.exception("inbound.pipeline_failed", inbound_id=current.row_id, attempt=current.attempt)
                await self._record_error(current.row_id, f"{type(exc).__name__}: {exc}")
                if current.attempt >= self.deps.settings.limits.pipeline_attempts:
                    decided[current.uid] = await self._give_up(current.row_id, mailbox, current.attempt)
                remaining.remove(current)
                continue
            for item, disposition, folder in outcome:  # committed
                log.info(
                    "inbound.decided", inbound_id=item.row_id, disposition=disposition, mailbox=mailbox.name
                )
                decided[item.uid] = folder or mailbox.processed_folder
            return decided
        return decided

    async def _record_error(self, row_id: int, error: str) -> None:
        async with self.sessions.begin() as session:
            row = await store.load(session, row_id)
            row.error = error[:4000]

    async def _give_up(self, row_id: int, mailbox: MailboxSettings, attempts: int) -> str:
        async with self.sessions.begin() as session:
            row = await store.load(session, row_id)
            trail = [
                {
                    "stage": "pipeline",
                    "outcome": "quarantine",
                    "detail": f"failed {attempts} times; last error: {row.error or 'unknown'}",
                }
            ]
            finish(row, Disposition.QUARANTINED, trail, mailbox, self.deps, error=row.error)
            return row.target_folder or mailbox.quarantine_folder
