"""The parse worker processes, and what happens when one of them dies.

A worker can die in the middle of a message: the kernel kills it when it runs out of memory,
an operator kills it, a C extension crashes on hostile input. ``ProcessPoolExecutor`` then
fails every call in flight (not only the one that killed it) and refuses all later ones: the
pool is broken for good. :class:`WorkerPool` replaces a broken pool with a new one, and the
caller parses the messages whose calls failed again, one at a time in a pool of one worker
of their own, where a death can only be the fault of the message being parsed.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

import structlog

log = structlog.get_logger(__name__)
T = TypeVar("T")

__all__ = ["BrokenProcessPool", "WorkerPool"]


class WorkerPool:
    """``workers`` processes from a fork server that has imported the program already
    (``__main__`` and ``preload``): a worker starts without importing anything again."""

    def __init__(self, workers: int, preload: Sequence[str] = ()) -> None:
        self.workers = workers
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(["__main__", *preload])
        self.executor = self._new(workers)
        self._alone: ProcessPoolExecutor | None = None
        self._one_at_a_time = asyncio.Lock()
        self.replaced = 0
        """How many times a broken pool was replaced (for tests and logs)."""

    def _new(self, workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=workers, mp_context=self._context)

    async def run(self, function: Callable[..., T], *args: object) -> T:
        """``function(*args)`` in a worker; raises :class:`BrokenProcessPool` when the pool
        broke (a worker died) during the call or before it, after replacing the pool."""
        executor = self.executor
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, function, *args)
        except BrokenProcessPool:
            if executor is self.executor:  # the first call to fail on this pool replaces it
                log.warning("inbound.parse_worker_died", workers=self.workers)
                self.executor = self._new(self.workers)
                self.replaced += 1
                executor.shutdown(wait=False, cancel_futures=True)
            raise

    async def run_alone(self, function: Callable[..., T], *args: object) -> T:
        """``function(*args)`` in a worker of its own, one call at a time: a
        :class:`BrokenProcessPool` from here means this call killed its worker."""
        async with self._one_at_a_time:
            if self._alone is None:
                self._alone = self._new(1)
            executor = self._alone
            try:
                return await asyncio.get_running_loop().run_in_executor(executor, function, *args)
            except BrokenProcessPool:
                self._alone = None
                executor.shutdown(wait=False, cancel_futures=True)
                raise

    def shutdown(self) -> None:
        for executor in (self.executor, self._alone):
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
