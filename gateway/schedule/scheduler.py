"""The one scheduler: timed work (follow-up reminders, notices) found by indexed due times.

Each kind of timed work is a :class:`DueWork` source (listed in :mod:`gateway.schedule.sources`).
A pass asks every source to take what is due, a batch per transaction, until nothing is due;
the daemon's loop then sleeps until the earliest due time, a :meth:`Scheduler.wake`, or at most
``scheduler.poll_seconds`` (care may start a timer from another process). There is never a
sleeping task per item, so a restart loses nothing: the due times are in the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.clock import Clock

log = structlog.get_logger(__name__)

IDLE_RETRY_SECONDS = 1.0
"""A pass that handled nothing while work is due (another replica holds it) waits this long."""


@dataclass(frozen=True)
class Upcoming:
    """One automatic mail the gateway will send (for ``case-gateway schedule``)."""

    due_at: datetime
    kind: str
    subject_ref: str
    """Case number or notice reference."""
    recipient: str
    org: str
    timezone: str
    """The organisation's (or list's) IANA zone, to show ``due_at`` in."""


class DueWork(Protocol):
    """One kind of timed work. Due times live in indexed columns; never a sleeping task per item."""

    name: str

    async def next_due(self, session: AsyncSession) -> datetime | None:
        """Earliest due instant of pending work (an indexed MIN/ORDER BY ... LIMIT 1), None if none."""
        ...

    async def run_due(self, session: AsyncSession, now: datetime, limit: int) -> int:
        """Take up to ``limit`` items due at or before ``now`` in the caller's transaction (the
        scheduler commits). Every effect is idempotent: outbox rows by dedupe key, state advanced
        by a conditional UPDATE; on PostgreSQL rows are claimed with FOR UPDATE SKIP LOCKED.
        Returns how many items were handled."""
        ...


@runtime_checkable
class Previewable(Protocol):
    """A :class:`DueWork` that can also list what it will send (``case-gateway schedule``)."""

    async def upcoming(self, session: AsyncSession, until: datetime, org: str | None) -> list[Upcoming]:
        ...


class Scheduler:
    """Runs every source's due work; one per daemon (and one pass per ``run --once``)."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        clock: Clock,
        sources: Sequence[DueWork],
        *,
        batch: int = 500,
        poll_seconds: float = 60.0,
        on_work: Callable[[], None] | None = None,
    ) -> None:
        self.sessions = session_factory
        self.clock = clock
        self.sources = list(sources)
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.on_work = on_work
        """Called after a pass that handled something (the daemon wakes its outbox sender)."""
        self._woken = asyncio.Event()

    async def run_pass(self, now: datetime | None = None) -> int:
        """Take everything due at ``now`` (default: the clock's time) from every source; how many
        items were handled. A failing source does not hold up the others; its error is raised
        once they have run."""
        now = now or self.clock.now()
        handled = 0
        failure: BaseException | None = None
        for source in self.sources:
            try:
                handled += await self._drain(source, now)
            except Exception as exc:
                log.exception("scheduler.source_failed", source=source.name)
                failure = failure or exc
        if handled and self.on_work is not None:
            self.on_work()
        if failure is not None:
            raise failure
        return handled

    async def _drain(self, source: DueWork, now: datetime) -> int:
        total = 0
        while True:
            async with self.sessions.begin() as session:
                handled = await source.run_due(session, now, self.batch)
            total += handled
            if handled < self.batch:
                return total

    async def next_due(self) -> datetime | None:
        """The earliest due time over every source; None when nothing is pending."""
        async with self.sessions() as session:
            times = [await source.next_due(session) for source in self.sources]
        pending = [t for t in times if t is not None]
        return min(pending) if pending else None

    async def upcoming(self, until: datetime, org: str | None = None) -> list[Upcoming]:
        """Everything the sources that can tell will send until ``until``, soonest first."""
        found: list[Upcoming] = []
        async with self.sessions() as session:
            for source in self.sources:
                if isinstance(source, Previewable):
                    found.extend(await source.upcoming(session, until, org))
        return sorted(found, key=lambda u: (u.due_at, u.subject_ref, u.kind))

    def wake(self) -> None:
        """Something changed (care started a timer): look for due work now."""
        self._woken.set()

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Pass, then sleep until the next due time, a wake or ``stop``; until ``stop`` is set."""
        while not stop.is_set():
            self._woken.clear()
            delay = self.poll_seconds
            try:
                handled = await self.run_pass()
                due = await self.next_due()
                if due is not None:
                    wait = (due - self.clock.now()).total_seconds()
                    delay = min(delay, max(0.0 if handled else IDLE_RETRY_SECONDS, wait))
            except Exception:  # the loop must outlive a database hiccup
                log.exception("scheduler.pass_failed")
            await self._sleep(stop, delay)

    async def _sleep(self, stop: asyncio.Event, delay: float) -> None:
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._woken.wait())]
        try:
            await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
