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
from collections.abc import Callable, Sequence
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


def parse_pool(workers: int) -> Executor | None:
    if workers <= 0:
        return None
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("forkserver"))


class Processor:
    def __init__(
        self, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], deps: Deps,
        executor: Executor | None = None,
    ) -> None:
        self.engine = engine
        self.sessions = sessions
        self.deps = deps
        self.executor = executor

    async def process(
        self, mailbox: MailboxSettings, uidvalidity: int, batch: Sequence[Fetched],
        should_stop: Callable[[], bool] = lambda: False,
    ) -> dict[int, str]:
        """Decide every message of ``batch``; return uid -> IMAP folder for the decided ones."""
        now = self.deps.clock.now()
        ids = await store.store_raw(self.engine, mailbox=mailbox.name, uidvalidity=uidvalidity,
                                    items=[(f.uid, f.raw, f.size) for f in batch], received_at=now)
        known = await store.known_uids(self.engine, mailbox.name, uidvalidity, list(ids))
        todo = [f for f in batch if known[f.uid].disposition is None]
        done = {uid: k.target_folder or mailbox.processed_folder for uid, k in known.items()
                if k.disposition is not None}
        limit = self.deps.settings.limits.pipeline_attempts
        given_up = [f for f in todo if known[f.uid].attempts >= limit]
        for f in given_up:
            done[f.uid] = await self._give_up(ids[f.uid], mailbox, known[f.uid].attempts)
        todo = [f for f in todo if known[f.uid].attempts < limit]
        # Parsing runs ahead in the workers while the messages before are decided, in order.
        parsing = [asyncio.ensure_future(self._parse(f)) for f in todo]
        try:
            for f, parse in zip(todo, parsing, strict=True):
                if should_stop():
                    break  # the rest stays undecided in the inbox for the next run
                result = await parse
                await store.begin_attempt(self.engine, ids[f.uid], result.mail)
                folder = await self._one(ids[f.uid], mailbox, result, known[f.uid].attempts + 1)
                if folder is not None:
                    done[f.uid] = folder
        finally:
            for parse in parsing:
                parse.cancel()
        return done

    async def _parse(self, f: Fetched) -> Parsed:
        if f.problem is not None:
            return Parsed(None, f.problem)
        limits = self.deps.settings.limits
        if self.executor is None:
            return await asyncio.to_thread(parse_safely, f.raw, limits)
        return await asyncio.get_running_loop().run_in_executor(self.executor, parse_safely, f.raw, limits)

    async def _one(self, row_id: int, mailbox: MailboxSettings, parsed: Parsed, attempt: int) -> str | None:
        try:
            async with self.sessions.begin() as session:
                row = await store.load(session, row_id)
                with session.no_autoflush:  # the row's fields go out once, not before every query
                    await run_pipeline(session, self.deps, row, mailbox, parsed.mail, parsed.problem,
                                       new_text=parsed.new_text)
            log.info("inbound.decided", inbound_id=row_id, disposition=row.disposition,
                     mailbox=mailbox.name)  # committed
            return row.target_folder
        except Exception as exc:  # one bad message must not stop the mailbox
            log.exception("inbound.pipeline_failed", inbound_id=row_id, attempt=attempt)
            await self._record_error(row_id, f"{type(exc).__name__}: {exc}")
            if attempt >= self.deps.settings.limits.pipeline_attempts:
                return await self._give_up(row_id, mailbox, attempt)
            return None

    async def _record_error(self, row_id: int, error: str) -> None:
        async with self.sessions.begin() as session:
            row = await store.load(session, row_id)
            row.error = error[:4000]

    async def _give_up(self, row_id: int, mailbox: MailboxSettings, attempts: int) -> str:
        async with self.sessions.begin() as session:
            row = await store.load(session, row_id)
            trail = [{"stage": "pipeline", "outcome": "quarantine",
                      "detail": f"failed {attempts} times; last error: {row.error or 'unknown'}"}]
            finish(row, Disposition.QUARANTINED, trail, mailbox, self.deps, error=row.error)
            return row.target_folder or mailbox.quarantine_folder


