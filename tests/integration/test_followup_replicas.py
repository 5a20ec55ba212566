"""Exactly once: two schedulers on one database (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite:
one writer), and a pass that dies in the middle, then runs again."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from gateway.app import App
from gateway.clock import FrozenClock
from gateway.db import create_engine, session_factory
from gateway.domain import EventKind
from gateway.models import Case, CaseEvent, Outbox
from gateway.schedule.followups import FollowupWork
from gateway.schedule.scheduler import Scheduler
from testkit.world import ANA, ORG, add_customer, open_world, settings_for

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # Monday 10:00 in Berlin
STEP_1 = datetime(2026, 11, 4, 9, 0, tzinfo=UTC)
CASES = 60


async def waiting_cases(app: App, count: int) -> list[str]:
    numbers = []
    async with app.sessions.begin() as session:
        care = await app.care(session)
        for i in range(count):
            case = await care.open_case(session, organisation=ORG, contact_email=ANA,
                                        subject=f"problem {i}", severity="medium")
            assert case.number is not None
            await care.request_info(session, case.number, "Please send the logs.")
            numbers.append(case.number)
    return numbers


async def followup_rows(app: App) -> Counter[str]:
    async with app.sessions() as session:
        keys = (await session.scalars(select(Outbox.dedupe_key).where(Outbox.kind == "followup_1"))).all()
    return Counter(keys)


async def test_two_schedulers_take_each_step_once(db_url: str) -> None:
    settings = settings_for(db_url)
    async with open_world(settings, FrozenClock(T0)) as app:
        await add_customer(app)
        await waiting_cases(app, CASES)
        other = create_engine(db_url)
        try:
            first = Scheduler(app.sessions, app.clock, [FollowupWork(settings)], batch=7)
            second = Scheduler(session_factory(other), app.clock, [FollowupWork(settings)], batch=7)
            handled = await asyncio.gather(first.run_pass(STEP_1), second.run_pass(STEP_1))
        finally:
            await other.dispose()
        assert sum(handled) == CASES
        if app.engine.dialect.name == "postgresql":
            assert all(handled)  # both took part: the rows were shared out, not queued behind a lock
        rows = await followup_rows(app)
        assert len(rows) == CASES and set(rows.values()) == {1}
        async with app.sessions() as session:
            sent = await session.scalar(select(func.count()).select_from(CaseEvent)
                                        .where(CaseEvent.kind == EventKind.FOLLOWUP_SENT))
            steps = set((await session.scalars(select(Case.followups_sent))).all())
        assert sent == CASES and steps == {1}


async def test_a_pass_that_dies_midway_runs_again_without_doubles(db_url: str) -> None:
    settings = settings_for(db_url)
    async with open_world(settings, FrozenClock(T0)) as app:
        await add_customer(app)
        numbers = await waiting_cases(app, 20)

        class Dying(FollowupWork):
            """Dies at the 13th case: the first batches are committed, the third is not."""

            def _mail(self, mailer, case, step, key, requested, now):  # type: ignore[no-untyped-def]
                if case.number == numbers[12]:
                    raise RuntimeError("killed mid-pass")
                return super()._mail(mailer, case, step, key, requested, now)

        with pytest.raises(RuntimeError, match="killed mid-pass"):
            await Scheduler(app.sessions, app.clock, [Dying(settings)], batch=5).run_pass(STEP_1)
        assert len(await followup_rows(app)) == 10  # two batches of five committed
        again = Scheduler(app.sessions, app.clock, [FollowupWork(settings)], batch=5)
        assert await again.run_pass(STEP_1) == 10
        rows = await followup_rows(app)
        assert len(rows) == 20 and set(rows.values()) == {1}
