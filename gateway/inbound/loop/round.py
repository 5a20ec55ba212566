"""One round over a mailbox's inbox folder: its messages fetched in batches, decided, and moved
to their folders after their commits.

While a batch is decided (CPU and database), the IMAP side works in the background: it fetches
the next batches (:data:`FETCH_AHEAD`), whose parsing starts in the workers at once; once
``move_batch_size`` messages are decided it moves them while the next batch is decided, and the
rest at the end of the round. Messages are moved in UID sets, up to a thousand at a time (one
at a time would cap throughput at a few dozen a second, and an IMAP server's work per MOVE
grows with the folder).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.config import MailboxSettings
from gateway.inbound.imap.fetching import fetch_batch
from gateway.inbound.imap.mailbox import Mailbox
from gateway.inbound.loop import store
from gateway.inbound.loop.batch import Round

FETCH_AHEAD = 2
"""Batches fetched, stored and being parsed while one is decided: enough to keep the parse
workers and the database busy at once."""


@dataclass
class RoundStats:
    seen: int = 0
    decided: int = 0
    moved: int = 0
    held_elsewhere: bool = False
    """Another replica holds the mailbox (PostgreSQL advisory lock): nothing was looked at."""


class InboxRound:
    def __init__(
        self,
        client: Mailbox,
        settings: MailboxSettings,
        batches: Round,
        engine: AsyncEngine,
        *,
        max_message_bytes: int,
        stopping: asyncio.Event,
        on_decided: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.batches = batches
        self.engine = engine
        self.max_message_bytes = max_message_bytes
        self.stopping = stopping
        self.on_decided = on_decided
        self.imap_turn = asyncio.Lock()
        """One IMAP command at a time on the connection, in the order asked."""

    async def run(self, uids: Sequence[int]) -> RoundStats:
        """Decide and move the messages of ``uids``, every move done before it returns."""
        stats = RoundStats(seen=len(uids))
        size = self.settings.batch_size
        batches = iter([list(uids[start : start + size]) for start in range(0, len(uids), size)])
        pending: deque[asyncio.Future[dict[int, str]]] = deque()  # fetched and decided in order
        committed: dict[int, str] = {}  # decided, not moved yet
        moving: list[asyncio.Future[int]] = []

        def fetch_ahead() -> None:
            while len(pending) <= FETCH_AHEAD and (batch := next(batches, None)) is not None:
                pending.append(asyncio.ensure_future(self._fetch_and_decide(batch)))

        try:
            fetch_ahead()
            while pending and not self.stopping.is_set():
                decided = await pending.popleft()
                fetch_ahead()
                committed.update(decided)
                stats.decided += len(decided)
                if decided and self.on_decided is not None:
                    self.on_decided()
                if len(committed) >= self.settings.move_batch_size:
                    moving.append(asyncio.ensure_future(self._move(committed)))
                    committed = {}
                stats.moved += _moved_so_far(moving)  # a failed move ends the round here
            if committed:
                moving.append(asyncio.ensure_future(self._move(committed)))
            while moving:
                stats.moved += await moving.pop(0)
        finally:
            # After a stop or a failure the batches fetched are stored, not decided (next round
            # decides them), and the client is not left mid-command.
            self.batches.stop()
            for waiting in (pending, moving):
                if waiting:
                    await asyncio.wait(waiting)
                    for task in waiting:
                        if not task.cancelled():
                            task.exception()  # retrieved; the round fails with the first error
        return stats

    async def _fetch_and_decide(self, uids: list[int]) -> dict[int, str]:
        async with self.imap_turn:
            fetched = await fetch_batch(self.client, uids, self.max_message_bytes, self.settings.name)
        return await self.batches.decide(fetched)  # nothing awaited between: decided in fetch order

    async def _move(self, decided: dict[int, str]) -> int:
        by_folder: dict[str, list[int]] = defaultdict(list)
        for uid, folder in decided.items():
            by_folder[folder].append(uid)
        moved: list[int] = []
        try:
            for folder, uids in by_folder.items():
                async with self.imap_turn:
                    await self.client.move(sorted(uids), folder)
                moved.extend(uids)
        finally:  # one transaction for the batch; after a failure, for what was moved
            if moved:
                await store.mark_moved(self.engine, self.settings.name, self.batches.uidvalidity, moved)
        return len(moved)


def _moved_so_far(moving: list[asyncio.Future[int]]) -> int:
    """How many messages the finished moves moved (they are taken off the list); a failed move
    raises its error."""
    done = [move for move in moving if move.done()]
    for move in done:
        moving.remove(move)
    return sum(move.result() for move in done)
