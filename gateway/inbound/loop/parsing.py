"""A batch parsed in the worker processes, in chunks, ahead of its decision; a chunk whose
worker dies or hangs is parsed again a message at a time, to find the message that did it."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence

import structlog

from gateway.inbound.imap.fetching import Fetched
from gateway.inbound.loop.workers import BrokenProcessPool, WorkerPool, WorkerTimeout
from gateway.inbound.mail.analysis import Parsed, parse_chunk
from gateway.inbound.mail.parsed import ParseLimits

log = structlog.get_logger(__name__)

Parsing = dict[int, "asyncio.Future[Parsed]"]
"""uid -> the message's parse, running in a worker."""

PARSE_CHUNK = 25
"""Messages per call to a parse worker: each call costs both processes pickling and a wake-up,
which 25 messages share (bench/README.md has the measurements)."""

WORKER_DIED = ("the parse worker process died while parsing this message, alone in it (killed, out of "
               "memory or crashed)")
WORKER_TIMED_OUT = ("parsing this message, alone in a worker process, took longer than "
                    "inbound.parse_timeout_seconds ({seconds:g} s); the worker was killed")


class Parser:
    def __init__(self, pool: WorkerPool | None, limits: ParseLimits, keys: Sequence[bytes]) -> None:
        self.pool = pool
        """Where messages are parsed; None: in a thread of this process."""
        self.limits = limits
        """The limits the workers parse to, as plain data (they need not import the settings)."""
        self.keys = keys

    def warm_up(self) -> None:
        """There is mail to parse: start the worker processes now (in a thread), so that they are
        up by the time the first batch is fetched. A round that finds no mail starts none."""
        if self.pool is not None:
            self.pool.start()

    def start(self, batch: Sequence[Fetched]) -> Parsing:
        """Parse ``batch`` from now on (parsing has no effect), in chunks of :data:`PARSE_CHUNK`;
        cancelling one message's parse cancels its chunk."""
        loop = asyncio.get_running_loop()
        parsing: Parsing = {}
        for f in batch:
            if f.problem is not None:  # not fetched whole: nothing to parse
                parsing[f.uid] = loop.create_future()
                parsing[f.uid].set_result(Parsed(None, f.problem))
        whole = [f for f in batch if f.problem is None]
        for start in range(0, len(whole), PARSE_CHUNK):
            chunk = whole[start : start + PARSE_CHUNK]
            task = asyncio.ensure_future(self._parse_chunk(chunk))
            futures = [loop.create_future() for _ in chunk]  # plain futures: no task per message
            task.add_done_callback(functools.partial(_deliver, futures))
            for f, future in zip(chunk, futures, strict=True):
                future.add_done_callback(functools.partial(_cancel_chunk, task))
                parsing[f.uid] = future
        return parsing

    async def _parse_chunk(self, chunk: Sequence[Fetched]) -> list[Parsed]:
        raws = [f.raw for f in chunk]
        if self.pool is None:
            return await asyncio.to_thread(parse_chunk, raws, self.limits, self.keys)
        try:
            return await self.pool.run(parse_chunk, raws, self.limits, self.keys)
        except BrokenProcessPool:  # a worker died or hung: which message of the chunk did it, if any?
            return [await self._parse_alone(f) for f in chunk]

    async def _parse_alone(self, message: Fetched) -> Parsed:
        assert self.pool is not None
        try:
            return (await self.pool.run_alone(parse_chunk, [message.raw], self.limits, self.keys))[0]
        except WorkerTimeout:
            log.error("inbound.message_hung_parse_worker", uid=message.uid, size=message.size)
            return Parsed(None, WORKER_TIMED_OUT.format(seconds=self.pool.timeout))
        except BrokenProcessPool:
            log.error("inbound.message_killed_parse_worker", uid=message.uid, size=message.size)
            return Parsed(None, WORKER_DIED)


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
