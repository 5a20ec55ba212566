"""Parse worker processes that die or hang: the daemon replaces them, the message that kills
or hangs one is quarantined, every other message is decided as usual, and the mailbox loop
goes on."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import threading
from typing import Any

import pytest

from gateway.clock import FrozenClock
from gateway.config import LimitSettings
from gateway.daemon import Daemon
from gateway.inbound.loop import batch as batch_module
from gateway.inbound.loop import parsing as parsing_module
from gateway.inbound.loop import round as round_module
from gateway.inbound.loop.parsing import PARSE_CHUNK, WORKER_DIED, WORKER_TIMED_OUT
from gateway.inbound.loop.workers import PIPE_BYTES, BrokenProcessPool, WorkerPool, WorkerTimeout
from gateway.inbound.mail.analysis import parse_chunk
from gateway.outbound.transport import MemoryTransport
from testkit.mails import inbound_rows, new_mail
from testkit.world import add_customer, open_world, settings_for
from tests.killer import HANG_MARKER, MARKER, parse_chunk_or_die, parse_chunk_or_hang


def attempts(count: int) -> list[bytes]:
    return [new_mail(sender=f"person{n}@example.org", subject=f"Attempt {n}", text="Open a case.")
            for n in range(count)]


def deliver_attempts(imap_account: Any, count: int, marked: int, marker: bytes) -> None:
    """``count`` new-case attempts into the inbox, the one at index ``marked`` with ``marker``
    as a header (what makes the test's parse function die or hang)."""
    mails = attempts(count)
    mails[marked] = mails[marked].replace(b"\r\n\r\n", b"\r\n" + marker + b"\r\n\r\n", 1)
    for mail in mails:
        imap_account.append(mail)


async def test_a_message_that_kills_its_worker_is_quarantined_and_the_others_are_decided(
    db_url: str, imap_account: Any, clock: FrozenClock, monkeypatch: Any
) -> None:
    monkeypatch.setattr(parsing_module, "parse_chunk", parse_chunk_or_die)
    settings = settings_for(db_url, mailboxes=[imap_account.mailbox_settings(batch_size=4)],
                            inbound={"parse_workers": 2})
    deliver_attempts(imap_account, 9, marked=5, marker=MARKER)
    async with open_world(settings, clock) as app:
        await add_customer(app)
        daemon = Daemon(app, transport=MemoryTransport())
        summary = await daemon.run_once()
        assert (summary.inbound.decided, summary.inbound.moved) == (9, 9)
        rows = await inbound_rows(app)
        refused = ["refused_new_case"]
        assert [r.disposition for r in rows] == refused * 5 + ["quarantined"] + refused * 3
        assert rows[5].error == WORKER_DIED
        assert [t["detail"] for t in rows[5].trail if t["stage"] == "parse"] == [WORKER_DIED]
        assert daemon.pool is not None and daemon.pool.replaced >= 1
        assert len(imap_account.messages("Quarantine")) == 1 and imap_account.messages("INBOX") == []


async def test_workers_killed_between_batches_are_replaced_and_nothing_is_quarantined(
    db_url: str, imap_account: Any, clock: FrozenClock, monkeypatch: Any
) -> None:
    settings = settings_for(db_url, mailboxes=[imap_account.mailbox_settings(batch_size=2)],
                            inbound={"parse_workers": 2})
    process = batch_module.BatchDecider.process
    killed: list[int] = []

    async def kill_workers_after_the_first_batch(self: Any, *args: Any) -> Any:
        decided = await process(self, *args)
        if not killed:  # as an operator's kill -9 of every worker
            for worker in list(self.parser.pool.executor._processes.values()):
                with contextlib.suppress(ProcessLookupError):  # the pool ends the others when one dies
                    os.kill(worker.pid, signal.SIGKILL)
                worker.join()
                killed.append(worker.pid)
        return decided

    monkeypatch.setattr(batch_module.BatchDecider, "process", kill_workers_after_the_first_batch)
    for mail in attempts(7):
        imap_account.append(mail)
    async with open_world(settings, clock) as app:
        await add_customer(app)
        daemon = Daemon(app, transport=MemoryTransport())
        summary = await daemon.run_once()
        assert killed and (summary.inbound.decided, summary.inbound.moved) == (7, 7)
        assert daemon.pool is not None and daemon.pool.replaced == 1
        assert [r.disposition for r in await inbound_rows(app)] == ["refused_new_case"] * 7
        assert imap_account.messages("INBOX") == []


async def test_a_message_that_hangs_its_worker_is_quarantined_after_the_timeout(
    db_url: str, imap_account: Any, clock: FrozenClock, monkeypatch: Any
) -> None:
    monkeypatch.setattr(parsing_module, "parse_chunk", parse_chunk_or_hang)
    settings = settings_for(db_url, mailboxes=[imap_account.mailbox_settings()],
                            inbound={"parse_workers": 2, "parse_timeout_seconds": 2})
    deliver_attempts(imap_account, 4, marked=1, marker=HANG_MARKER)
    async with open_world(settings, clock) as app:
        await add_customer(app)
        daemon = Daemon(app, transport=MemoryTransport())
        summary = await daemon.run_once()
        assert (summary.inbound.decided, summary.inbound.moved) == (4, 4)
        rows = await inbound_rows(app)
        assert [r.disposition for r in rows] == ["refused_new_case", "quarantined", *["refused_new_case"] * 2]
        assert rows[1].error == WORKER_TIMED_OUT.format(seconds=2) and "took longer than" in rows[1].error
        assert daemon.pool is not None and daemon.pool.replaced == 1


async def test_workers_start_in_a_thread_while_the_event_loop_goes_on() -> None:
    """The fork server imports the program before the first worker exists; started with
    ``start()``, the event loop keeps running meanwhile, and a call made before they are up
    waits for them instead of blocking the loop."""
    pool = WorkerPool(2, timeout=60, preload=["gateway.inbound.mail.analysis"])
    turns = 0

    async def ticker() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    ticking = asyncio.ensure_future(ticker())
    try:
        pool.start()
        parsed = await pool.run(parse_chunk, attempts(1), LimitSettings(), [])
        workers = dict(pool.executor._processes)  # started by start(): both, not only the one called
    finally:
        ticking.cancel()
        pool.shutdown()
    assert parsed[0].mail is not None and parsed[0].mail.subject == "Attempt 0"
    assert turns > 10  # the loop ran while the workers started (a blocked loop: one turn)
    assert len(workers) == 2 and os.getpid() not in workers


async def test_workers_run_at_the_configured_lower_priority_even_after_a_replacement() -> None:
    """The workers parse ahead of the decisions: they yield a contended core to the daemon
    (``nice`` raised by the pool's setting), in the pool, in its replacement after a worker
    died, and in the pool for messages parsed alone."""
    own = os.nice(0)
    pool = WorkerPool(1, timeout=60, preload=["gateway.inbound.mail.analysis"], nice=7)
    try:
        first = await pool.run(os.nice, 0)
        with pytest.raises(BrokenProcessPool):
            await pool.run(os._exit, 1)
        replaced = await pool.run(os.nice, 0)
        alone = await pool.run_alone(os.nice, 0)
    finally:
        pool.shutdown()
    assert first == replaced == alone == min(own + 7, 19)
    assert pool.replaced == 1
    assert os.nice(0) == own  # the daemon's own priority is untouched


def pipe_capacities(executor: Any) -> tuple[int, int]:
    """(the pipe calls go to the workers through, the one results come back through), in bytes."""
    calls, results = executor._call_queue._writer.fileno(), executor._result_queue._reader.fileno()
    return fcntl.fcntl(calls, fcntl.F_GETPIPE_SZ), fcntl.fcntl(results, fcntl.F_GETPIPE_SZ)


async def test_the_pipes_to_and_from_the_workers_hold_a_chunks_results() -> None:
    """A chunk's results (25 parsed messages, about 350 KB) go into the pipe at once, in the
    pool, its replacement and the pool for messages parsed alone: a worker does not wait for
    the daemon to read them (64 KB, Linux's default, would make it)."""
    pool = WorkerPool(1, timeout=60, preload=["gateway.inbound.mail.analysis"])
    try:
        big = await pool.run(bytes, 3 * 2**17)  # 384 KB back in one result
        first = pipe_capacities(pool.executor)
        with pytest.raises(BrokenProcessPool):
            await pool.run(os._exit, 1)
        replaced = pipe_capacities(pool.executor)
        await pool.run_alone(os.getpid)
        alone = pipe_capacities(pool._alone)
    finally:
        pool.shutdown()
    assert big == bytes(3 * 2**17)
    assert PIPE_BYTES >= 2**20 > PARSE_CHUNK * 14_000  # the bench's mails: 14 KB parsed, on average
    assert first == replaced == alone == (PIPE_BYTES, PIPE_BYTES)


async def test_the_daemon_lowers_its_workers_priority_by_the_setting(db_url: str, imap_account: Any,
                                                                     clock: FrozenClock) -> None:
    settings = settings_for(db_url, mailboxes=[imap_account.mailbox_settings()],
                            inbound={"parse_workers": 1, "parse_worker_nice": 3})
    imap_account.append(attempts(1)[0])
    async with open_world(settings, clock) as app:
        await add_customer(app)
        daemon = Daemon(app, transport=MemoryTransport())
        assert (await daemon.run_once()).inbound.decided == 1
        assert daemon.pool is not None and daemon.pool.nice == 3  # what it does: the test above


async def test_workers_that_do_not_start_in_time_are_replaced(monkeypatch: Any) -> None:
    """A fork server stuck in its imports (here: the thread starting the workers does not
    come back): a call waits for it at most the pool's timeout, fails with WorkerTimeout, and
    the pool is replaced; the next call runs in the new pool."""
    stuck = threading.Event()
    pool = WorkerPool(1, timeout=0.5, preload=["gateway.inbound.mail.analysis"])
    monkeypatch.setattr(pool, "_spawn", lambda executor: stuck.wait(60))
    try:
        pool.start()
        first = pool.executor
        with pytest.raises(WorkerTimeout, match=r"did not start within 0\.5 s"):
            await pool.run(parse_chunk, attempts(1), LimitSettings(), [])
        assert pool.replaced == 1 and pool.executor is not first
        parsed = await pool.run(parse_chunk, attempts(1), LimitSettings(), [])
    finally:
        stuck.set()
        pool.shutdown()
    assert parsed[0].mail is not None and parsed[0].mail.subject == "Attempt 0"


def record_starts(monkeypatch: Any, events: list[str]) -> None:
    """``events`` gets "workers" when a pool's workers are started and "fetch" at each batch
    fetched."""
    start, fetch = WorkerPool.start, round_module.fetch_batch

    def recording_start(pool: WorkerPool) -> None:
        if pool._starting is None:  # asked again later: nothing more is started
            events.append("workers")
        start(pool)

    async def recording_fetch(client: Any, uids: list[int], *args: Any) -> Any:
        events.append("fetch")
        return await fetch(client, uids, *args)

    monkeypatch.setattr(WorkerPool, "start", recording_start)
    monkeypatch.setattr(round_module, "fetch_batch", recording_fetch)


async def test_a_run_over_an_empty_inbox_starts_no_worker(
    db_url: str, imap_account: Any, clock: FrozenClock, monkeypatch: Any
) -> None:
    """Starting the workers costs two processes and a few tenths of a second: a round that
    finds no mail pays nothing of it."""
    events: list[str] = []
    record_starts(monkeypatch, events)
    settings = settings_for(db_url, mailboxes=[imap_account.mailbox_settings()], inbound={"parse_workers": 2})
    async with open_world(settings, clock) as app:
        daemon = Daemon(app, transport=MemoryTransport())
        summary = await daemon.run_once()
        assert summary.inbound.decided == 0
        assert events == [] and daemon.pool is not None and daemon.pool.executor._processes is None


async def test_the_workers_start_when_a_round_finds_mail_before_its_first_fetch(
    db_url: str, imap_account: Any, clock: FrozenClock, monkeypatch: Any
) -> None:
    """Started as soon as the search finds mail, the workers come up while the first batch is
    fetched; once, for every batch of the round."""
    events: list[str] = []
    record_starts(monkeypatch, events)
    settings = settings_for(db_url, mailboxes=[imap_account.mailbox_settings(batch_size=2)],
                            inbound={"parse_workers": 2})
    for mail in attempts(5):
        imap_account.append(mail)
    async with open_world(settings, clock) as app:
        daemon = Daemon(app, transport=MemoryTransport())
        summary = await daemon.run_once()
        assert summary.inbound.decided == 5
        assert events == ["workers", "fetch", "fetch", "fetch"]
        assert daemon.pool is not None and daemon.pool.replaced == 0
