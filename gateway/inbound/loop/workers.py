"""The parse worker processes, and what happens when one of them dies or hangs.

A worker can die in the middle of a message: the kernel kills it when it runs out of memory,
an operator kills it, a C extension crashes on hostile input. ``ProcessPoolExecutor`` then
fails every call in flight (not only the one that killed it) and refuses all later ones: the
pool is broken for good. A worker can also hang (a pathological input for some regular
expression): its calls never return and the mailbox would wait for them forever. So every
call has a deadline; past it, the pool's workers are killed.

The workers run at a lower scheduling priority than the daemon (``nice``): they parse ahead
of the messages being decided, and a core they take from the event loop (or from the thread
it waits for, SQLite's) holds up the decisions; the cores nobody else needs they still get.
And the pipes between the daemon and its workers are widened (:data:`PIPE_BYTES`), so that a
worker hands back a chunk's results without waiting for the daemon to read them.

Either way :class:`WorkerPool` replaces the broken pool with a new one, and the caller parses
the messages whose calls failed again, one at a time in a pool of one worker of their own
(:meth:`WorkerPool.run_alone`), where a death or a timeout can only be the fault of the
message being parsed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import multiprocessing
import os
import select
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

import structlog

log = structlog.get_logger(__name__)
T = TypeVar("T")

__all__ = ["BrokenProcessPool", "WorkerPool", "WorkerTimeout"]


PIPE_BYTES = 1 << 20
"""The capacity asked for the pipes to and from the workers (what an unprivileged process may
ask for by default, ``/proc/sys/fs/pipe-max-size``): a chunk's results do not fit Linux's
default pipe, and a worker would otherwise wait for the daemon's result thread, which waits
for the event loop, before it can parse the next chunk."""


class WorkerTimeout(BrokenProcessPool):
    """A call took longer than the pool's timeout; the pool's workers were killed."""


class WorkerPool:
    """``workers`` processes from a fork server that has imported the program already
    (``__main__`` and ``preload``): a worker starts without importing anything again. A call
    taking longer than ``timeout`` seconds (waiting for a free worker included) is stopped.

    Starting the first worker waits for the fork server's imports (a few tenths of a second);
    :meth:`start` does that in a thread, so the event loop goes on meanwhile (fetching and
    storing the first batch); calls wait for it."""

    def __init__(self, workers: int, timeout: float, preload: Sequence[str] = (), nice: int = 0) -> None:
        self.workers = workers
        self.timeout = timeout
        self.nice = nice
        """How much lower than this process's the workers' scheduling priority is (``nice``)."""
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(["__main__", *preload])
        self.executor = self._new(workers)
        self._alone: ProcessPoolExecutor | None = None
        self._one_at_a_time = asyncio.Lock()
        self._starting: tuple[ProcessPoolExecutor, asyncio.Future[None]] | None = None
        """The pool whose workers :meth:`start` is starting, and that thread's end."""
        self.replaced = 0
        """How many times a broken pool was replaced (for tests and logs)."""

    def start(self) -> None:
        """Start the workers now, in a thread; without this the first call starts them and
        the event loop stops until the fork server has imported the program."""
        if self._starting is None:
            spawning = asyncio.to_thread(self._spawn, self.executor)
            self._starting = self.executor, asyncio.ensure_future(spawning)

    def _spawn(self, executor: ProcessPoolExecutor) -> None:
        """Each call submitted while no worker is idle starts one: ``workers`` calls start them
        all. A failure is only logged: the first real call meets it again, and handles it."""
        try:
            calls = [executor.submit(os.getpid) for _ in range(self.workers)]
            for call in calls:
                call.result()
        except Exception as exc:
            log.warning("inbound.parse_workers_start_failed", error=f"{type(exc).__name__}: {exc}")

    def _new(self, workers: int) -> ProcessPoolExecutor:
        executor = ProcessPoolExecutor(max_workers=workers, mp_context=self._context,
                                       initializer=_start_worker, initargs=(self.nice, os.getpid()))
        _widen_pipes(executor)
        return executor

    async def run(self, function: Callable[..., T], *args: object) -> T:
        """``function(*args)`` in a worker; raises :class:`BrokenProcessPool` when the pool
        broke (a worker died) during the call or before it, :class:`WorkerTimeout` when the
        call took too long; either way after replacing the pool."""
        executor = self.executor
        try:
            return await self._call(executor, function, *args)
        except BrokenProcessPool as exc:
            if executor is self.executor:  # the first call to fail on this pool replaces it
                log.warning("inbound.parse_workers_replaced", workers=self.workers,
                            reason="timeout" if isinstance(exc, WorkerTimeout) else "a worker died")
                self.executor = self._new(self.workers)
                self.replaced += 1
                executor.shutdown(wait=False, cancel_futures=True)
            raise

    async def run_alone(self, function: Callable[..., T], *args: object) -> T:
        """``function(*args)`` in a worker of its own, one call at a time: a
        :class:`BrokenProcessPool` (or :class:`WorkerTimeout`) from here means this call
        killed (or hung) its worker."""
        async with self._one_at_a_time:
            if self._alone is None:
                self._alone = self._new(1)
            executor = self._alone
            try:
                return await self._call(executor, function, *args)
            except BrokenProcessPool:
                self._alone = None
                executor.shutdown(wait=False, cancel_futures=True)
                raise

    async def _call(self, executor: ProcessPoolExecutor, function: Callable[..., T], *args: object) -> T:
        # Submitting while the thread starts workers would block the loop (on the pool's lock):
        # wait for it; whether they started is up to the call below to find out.
        starting = self._starting[1] if self._starting and self._starting[0] is executor else None
        if starting is not None and not (await asyncio.wait([starting], timeout=self.timeout))[0]:
            _kill_workers(executor)
            raise WorkerTimeout(f"the parse workers did not start within {self.timeout:g} s")
        call = asyncio.get_running_loop().run_in_executor(executor, function, *args)
        try:
            return await asyncio.wait_for(call, self.timeout)
        except TimeoutError:
            _kill_workers(executor)
            raise WorkerTimeout(f"a call to a parse worker took longer than {self.timeout:g} s") from None

    def shutdown(self) -> None:
        if self._starting is not None and not self._starting[1].done():
            self._starting[1].cancel()  # the thread goes on to its end; the pool waits for it below
        for executor in (self.executor, self._alone):
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)


def _start_worker(increment: int, daemon: int) -> None:
    """A worker's first step: its priority lowered by ``increment`` (the kernel caps it at 19),
    and its end tied to the daemon's (:func:`_exit_with`)."""
    _exit_with(daemon)
    if increment > 0:
        os.nice(increment)


def _exit_with(daemon: int) -> None:
    """End this worker when process ``daemon`` ends, however it ends (SIGKILL included).

    Nothing else would: a worker waits on a pipe whose other end it holds itself, and it is
    the fork server's child, not the daemon's (so a parent-death signal would watch the wrong
    process); the fork server and the resource tracker end once the workers have. A thread
    waits on a pidfd of the daemon (readable when it ends), or polls where there is none."""
    try:
        handle = os.pidfd_open(daemon)
    except ProcessLookupError:
        os._exit(0)
    except (AttributeError, OSError):  # no pidfd here (an old kernel, another system)
        handle = None

    def watch() -> None:
        if handle is not None:
            select.select([handle], [], [])
        else:
            while process_alive(daemon):
                time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, name="daemon-watch", daemon=True).start()


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _widen_pipes(executor: ProcessPoolExecutor) -> None:
    """Ask for :data:`PIPE_BYTES` on the pool's two pipes (calls to the workers, results back).
    Where that is refused (another system, a lower limit), the pipes stay as they are: only
    slower."""
    for queue, end in (("_call_queue", "_writer"), ("_result_queue", "_reader")):
        with contextlib.suppress(AttributeError, OSError, ValueError):  # private attributes, too
            pipe = getattr(getattr(executor, queue), end).fileno()
            fcntl.fcntl(pipe, fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def _kill_workers(executor: ProcessPoolExecutor) -> None:
    """Kill the pool's worker processes (Python 3.14 has ``kill_workers()`` for this): the pool
    then fails every call in flight and is replaced."""
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            process.kill()
