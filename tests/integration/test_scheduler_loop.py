"""The scheduler's loop and its extension point, with sources of our own, on both databases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.clock import FrozenClock
from gateway.models import InstanceSecret
from gateway.schedule.scheduler import Scheduler, Upcoming
from tests.cli_helpers import Gateway

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class Counter:
    """Due work kept in memory: ``pending`` items due at ``due``; each taken item writes a row,
    so the transaction the scheduler gives it is seen to commit."""

    def __init__(self, name: str, pending: int, due: datetime | None = T0) -> None:
        self.name = name
        self.pending = pending
        self.due = due
        self.calls: list[tuple[datetime, int]] = []
        self.called = asyncio.Event()

    async def next_due(self, session: AsyncSession) -> datetime | None:
        return self.due if self.pending else None

    async def run_due(self, session: AsyncSession, now: datetime, limit: int) -> int:
        self.calls.append((now, limit))
        self.called.set()
        if self.due is None or self.due > now:
            return 0
        taken = min(limit, self.pending)
        self.pending -= taken
        if taken:
            name = f"{self.name}-{len(self.calls)}"
            session.add(InstanceSecret(name=name, value=str(taken), created_at=now))
        return taken

    async def upcoming(self, session: AsyncSession, until: datetime, org: str | None) -> list[Upcoming]:
        if self.due is None or self.due > until:
            return []
        return [Upcoming(self.due, self.name, f"{self.name}-ref", "x@example.org", org or "Acme", "UTC")]


class Broken(Counter):
    async def run_due(self, session: AsyncSession, now: datetime, limit: int) -> int:
        raise RuntimeError("broken source")


async def test_a_pass_takes_batches_until_nothing_is_due(sessions: async_sessionmaker[AsyncSession]) -> None:
    work = Counter("reminders", pending=25)
    scheduler = Scheduler(sessions, FrozenClock(T0), [work], batch=10)
    assert await scheduler.run_pass() == 25
    assert work.calls == [(T0, 10), (T0, 10), (T0, 10)]  # 10, 10, 5: the third batch is short
    async with sessions() as session:
        taken = (await session.scalars(select(InstanceSecret.value).order_by(InstanceSecret.name))).all()
    assert sorted(map(int, taken)) == [5, 10, 10]  # every batch committed


async def test_a_pass_runs_as_the_instant_given(sessions: async_sessionmaker[AsyncSession]) -> None:
    later = Counter("later", pending=3, due=T0 + timedelta(days=3))
    scheduler = Scheduler(sessions, FrozenClock(T0), [later])
    assert await scheduler.run_pass() == 0
    assert await scheduler.run_pass(T0 + timedelta(days=3)) == 3
    assert later.calls[-1][0] == T0 + timedelta(days=3)


async def test_a_failing_source_does_not_hold_up_the_others(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    broken, work = Broken("broken", pending=1), Counter("reminders", pending=2)
    done: list[bool] = []
    scheduler = Scheduler(sessions, FrozenClock(T0), [broken, work], on_work=lambda: done.append(True))
    with pytest.raises(RuntimeError, match="broken source"):
        await scheduler.run_pass()
    assert work.pending == 0 and done == [True]


async def test_next_due_is_the_earliest_over_the_sources(sessions: async_sessionmaker[AsyncSession]) -> None:
    soon = Counter("soon", pending=1, due=T0 + timedelta(hours=1))
    late = Counter("late", pending=1, due=T0 + timedelta(days=1))
    idle = Counter("idle", pending=0)
    scheduler = Scheduler(sessions, FrozenClock(T0), [late, idle, soon])
    assert await scheduler.next_due() == T0 + timedelta(hours=1)
    assert await Scheduler(sessions, FrozenClock(T0), [idle]).next_due() is None
    listed = await scheduler.upcoming(T0 + timedelta(hours=2), "Acme")
    assert [u.kind for u in listed] == ["idle", "soon"]  # 'late' is after the horizon


async def test_the_loop_wakes_when_told_and_stops(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Nothing due for an hour: the loop sleeps until woken (no sleeping in the test)."""
    work = Counter("reminders", pending=1, due=T0 + timedelta(hours=1))
    scheduler = Scheduler(sessions, FrozenClock(T0), [work], poll_seconds=3600)
    stop = asyncio.Event()
    loop = asyncio.create_task(scheduler.run_forever(stop))
    await asyncio.wait_for(work.called.wait(), 10)
    work.called.clear()
    scheduler.wake()
    await asyncio.wait_for(work.called.wait(), 10)
    assert len(work.calls) == 2
    stop.set()
    await asyncio.wait_for(loop, 10)


async def test_the_loop_sleeps_until_the_next_due_time(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Due in 50 ms on the real clock: the loop, told to poll hourly, comes back for it."""
    clock = FrozenClock(datetime.now(UTC))

    class Real(Counter):
        async def run_due(self, session: AsyncSession, now: datetime, limit: int) -> int:
            clock.set(datetime.now(UTC))
            return await super().run_due(session, clock.now(), limit)

    work = Real("reminders", pending=1, due=clock.now() + timedelta(milliseconds=50))
    scheduler = Scheduler(sessions, clock, [work], poll_seconds=3600)
    stop = asyncio.Event()
    loop = asyncio.create_task(scheduler.run_forever(stop))
    while work.pending:
        work.called.clear()
        await asyncio.wait_for(work.called.wait(), 10)
    stop.set()
    await asyncio.wait_for(loop, 10)
    assert len(work.calls) >= 2


def test_run_now_needs_once_and_an_offset(db_url: str) -> None:
    gw = Gateway(db_url, FrozenClock(T0))
    refused = gw("run", "--now", "2026-11-04T09:00:00+01:00")
    assert refused.code == 2 and "--now needs --once" in refused.err
    naive = gw("run", "--once", "--now", "2026-11-04T09:00:00")
    assert naive.code == 2 and "has no offset" in naive.err
    assert gw("run", "--once", "--now", "next tuesday").code == 2
    done = gw.ok("run", "--once", "--now", "2026-11-04T09:00:00+01:00")
    assert "scheduler: 0 due items" in done.out


async def test_sources_share_one_database_transaction_per_batch(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A batch that raises leaves nothing behind: the scheduler's transaction rolls back."""

    class Half(Counter):
        async def run_due(self, session: AsyncSession, now: datetime, limit: int) -> int:
            await super().run_due(session, now, limit)
            await session.flush()
            raise RuntimeError("after writing")

    scheduler = Scheduler(sessions, FrozenClock(T0), [Half("half", pending=2)])
    with pytest.raises(RuntimeError):
        await scheduler.run_pass()
    async with sessions() as session:
        assert (await session.execute(text("SELECT count(*) FROM instance_secrets"))).scalar() == 0
