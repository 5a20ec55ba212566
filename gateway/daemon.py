"""The daemon: IMAP intake for every configured mailbox, the scheduler and the outbox sender, in
one asyncio process. ``once`` processes what is there, runs one scheduler pass and sends what is
due, then returns (tests, cron);
otherwise it runs until :meth:`Daemon.stop` (SIGINT/SIGTERM), finishing the message in hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import structlog

from gateway.app import App
from gateway.config import MailboxSettings
from gateway.inbound.imap.client import connect as imap_connect
from gateway.inbound.imap.mailbox import Mailbox
from gateway.inbound.loop.batch import BatchDecider
from gateway.inbound.loop.round import RoundStats
from gateway.inbound.loop.runner import MailboxRunner
from gateway.inbound.loop.workers import WorkerPool
from gateway.inbound.policy.context import Services
from gateway.operations.health import HealthRecorder
from gateway.operations.metrics import Metrics
from gateway.outbound.sender import Sender, SendStats
from gateway.outbound.transport import SmtpTransport, Transport
from gateway.schedule.scheduler import Scheduler
from gateway.schedule.sources import default_sources

log = structlog.get_logger(__name__)


YOUNG_GENERATION_THRESHOLD = 10_000
"""Allocations between two collections of the youngest generation (Python's default: 700)."""


def tune_collector() -> None:
    """Set the garbage collector up for a long-running daemon process (the ``run`` command
    calls this once, with the program loaded and the app built).

    Every message allocates thousands of short-lived objects (ORM rows, SQL parameters, parse
    results) and the collector walks every tracked object of a generation it collects, the
    program's modules, classes and mappers included. Those live as long as the process:
    :func:`gc.freeze` takes them out of every later collection; and the youngest generation is
    collected every :data:`YOUNG_GENERATION_THRESHOLD` allocations rather than 700, so it
    pauses far less often. Reference cycles are still collected, only in fewer, larger
    sweeps."""
    gc.collect()  # what is garbage now must not be frozen with the rest
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, oldest)


@dataclass
class RunSummary:
    inbound: RoundStats
    outbound: SendStats
    scheduled: int = 0
    """Due items the scheduler pass handled (follow-up steps, notices)."""
    stopped: bool = False
    """SIGINT/SIGTERM came: the batch in hand was finished, the rest left for the next run."""
    failures: list[str] = field(default_factory=list)
    """What could not be reached (a mailbox's server, the SMTP relay), one line each."""
    held_elsewhere: list[str] = field(default_factory=list)
    """Mailboxes another process reads (PostgreSQL): left to it."""


class Daemon:
    def __init__(
        self,
        app: App,
        *,
        open_mailbox: Callable[[MailboxSettings], Awaitable[Mailbox]] | None = None,
        transport: Transport | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        """Counted into while running (``[metrics] enabled``: the ``run`` command serves them)."""
        self.open_mailbox = open_mailbox or (lambda settings: imap_connect(settings))
        self.transport = transport or SmtpTransport(app.settings.smtp)
        self.stopping = asyncio.Event()
        self.mail_due = asyncio.Event()
        self.runners: list[MailboxRunner] = []
        self.pool: WorkerPool | None = None
        self.scheduler = Scheduler(
            app.sessions, app.clock, default_sources(app.settings, app.clock),
            batch=app.settings.scheduler.batch_size, poll_seconds=app.settings.scheduler.poll_seconds,
            on_work=self.mail_due.set,
        )

    def our_addresses(self) -> frozenset[str]:
        mail = self.app.settings.mail
        boxes = [m.username for m in self.app.settings.mailboxes if "@" in m.username]
        return frozenset(a.lower() for a in (mail.from_address, mail.reply_to, *boxes))

    async def _build(self) -> Sender:
        settings = self.app.settings
        mailer = await self.app.mailer()
        workers, timeout = settings.inbound.parse_workers, settings.inbound.parse_timeout_seconds
        if workers > 0:  # no process yet: they start when a round first finds mail
            self.pool = WorkerPool(workers, timeout, preload=["gateway.inbound.mail.analysis"],
                                   nice=settings.inbound.parse_worker_nice)
        services = Services(settings, self.app.clock, mailer, mailer.keys, self.our_addresses())
        decider = BatchDecider(self.app.engine, self.app.sessions, services, self.pool,
                              observe=self.metrics.decided if self.metrics is not None else None)
        self.runners = [
            MailboxRunner(box, decider, self.open_mailbox, self.app.clock,
                          max_message_bytes=settings.limits.max_message_bytes,
                          on_decided=self.mail_due.set,
                          health=HealthRecorder(self.app.engine, self.metrics))
            for box in settings.mailboxes
        ]
        return Sender(self.app.engine, self.transport, settings.outbox, self.app.clock,
                      concurrency=settings.smtp.pool_size)

    async def run_once(self) -> RunSummary:
        """Every mailbox until empty, then the due mail; after a stop, what is in hand gets
        ``run.drain_seconds`` to finish, then it is cancelled."""
        sender = await self._build()
        summary = RunSummary(RoundStats(), SendStats())
        work = asyncio.ensure_future(self._once(sender, summary))
        stopper = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not work.done():
                await self._drain([work])
                summary.stopped = True
            if not work.cancelled():
                work.result()  # its error, if it failed
            return summary
        finally:
            stopper.cancel()
            await self._close()

    async def _once(self, sender: Sender, summary: RunSummary) -> None:
        for runner in self.runners:
            if self.stopping.is_set():
                break
            runner.give_up_seconds = self.app.settings.run.give_up_seconds
            stats = await runner.run_until_empty()
            summary.inbound.seen += stats.seen
            summary.inbound.decided += stats.decided
            summary.inbound.moved += stats.moved
            if stats.held_elsewhere:
                summary.held_elsewhere.append(runner.settings.name)
            if runner.failure is not None:
                summary.failures.append(runner.failure)
        if self.stopping.is_set():  # stopped: what is queued goes out with the next run
            summary.stopped = True
            return
        summary.scheduled = await self.scheduler.run_pass()
        summary.outbound = await sender.run_until_empty()
        if self.metrics is not None:
            self.metrics.sent(summary.outbound)
            await self.metrics.refresh(self.app.engine, self.app.clock.now(), await self.scheduler.next_due())
        if sender.relay_failure is not None:
            summary.failures.append(sender.relay_failure)

    async def _drain(self, tasks: Sequence[asyncio.Future[None]]) -> None:
        """Give ``tasks`` ``run.drain_seconds`` to finish after a stop, then cancel them."""
        seconds = self.app.settings.run.drain_seconds
        _, pending = await asyncio.wait(tasks, timeout=seconds)
        if pending:
            log.warning("daemon.drain_timeout", seconds=seconds, cancelled=len(pending))
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def run_forever(self) -> None:
        sender = await self._build()
        tasks = [asyncio.create_task(r.run_forever(), name=f"imap:{r.settings.name}") for r in self.runners]
        tasks.append(asyncio.create_task(self._send_loop(sender), name="outbox"))
        tasks.append(asyncio.create_task(self.scheduler.run_forever(self.stopping), name="scheduler"))
        if self.metrics is not None:
            tasks.append(asyncio.create_task(self._refresh_metrics(self.metrics), name="metrics"))
        log.info("daemon.started", mailboxes=[r.settings.name for r in self.runners])
        try:
            await self.stopping.wait()
        finally:
            for runner in self.runners:
                runner.stop()
            await self._drain(tasks)
            for task in tasks:
                if not task.cancelled() and task.exception() is not None:
                    log.error("daemon.task_failed", task=task.get_name(), error=str(task.exception()))
            await self._close()

    async def _send_loop(self, sender: Sender) -> None:
        failing = False
        while not self.stopping.is_set():
            try:
                stats = await sender.run_until_empty()
                if self.metrics is not None:
                    self.metrics.sent(stats)
                if stats.handled:
                    log.info("outbox.round", sent=stats.sent, retrying=stats.retrying,
                             failed=stats.failed, expired=stats.expired)
                if failing:
                    log.info("outbox.recovered")
                failing = False
            except Exception:  # the sender must outlive a database hiccup
                failing = True
                log.exception("outbox.round_failed",
                              retry_in_seconds=self.app.settings.outbox.poll_seconds)
            await self._wait_for_mail()

    async def _refresh_metrics(self, metrics: Metrics) -> None:
        """The gauges of shared state, every ``metrics.refresh_seconds`` until the stop."""
        while not self.stopping.is_set():
            try:
                await metrics.refresh(self.app.engine, self.app.clock.now(), await self.scheduler.next_due())
            except Exception:  # a scrape shows stale gauges rather than the daemon dying
                log.exception("metrics.refresh_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.app.settings.metrics.refresh_seconds)

    async def _wait_for_mail(self) -> None:
        """Until inbound work may have queued mail, the daemon stops, or the poll interval ends."""
        waiters = [asyncio.ensure_future(self.stopping.wait()), asyncio.ensure_future(self.mail_due.wait())]
        try:
            await asyncio.wait(waiters, timeout=self.app.settings.outbox.poll_seconds,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        self.mail_due.clear()

    def stop(self) -> None:
        """Finish the message in hand (``run`` and ``run --once`` alike), then return."""
        self.stopping.set()
        for runner in self.runners:
            runner.stop()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)

    async def _close(self) -> None:
        for runner in self.runners:
            await runner.drop()
            await runner.lock.release()
        await self.transport.close()
        if self.pool is not None:
            self.pool.shutdown()
