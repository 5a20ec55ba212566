"""A sender renews the leases of the rows in hand while it lives, so a slow send is never
taken over by another replica; a dead sender's rows are taken within ``lease_seconds``."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from gateway.app import App
from gateway.clock import FrozenClock
from gateway.domain import OutboxStatus
from gateway.models import Outbox
from gateway.outbound.sender import Sender
from gateway.outbound.transport import MemoryTransport
from testkit.world import add_customer, open_case, open_world, settings_for


async def lease_of(app: App) -> tuple[str, object]:
    async with app.sessions() as session:
        row = (await session.execute(select(Outbox.status, Outbox.lease_until))).one()
    return row.status, row.lease_until


async def test_leases_are_renewed_while_the_sender_lives(db_url: str, clock: FrozenClock) -> None:
    async with open_world(settings_for(db_url, outbox={"lease_seconds": 30}), clock) as app:
        await add_customer(app)
        await open_case(app)
        sending, release = asyncio.Event(), asyncio.Event()
        ticks: asyncio.Queue[None] = asyncio.Queue()
        renewals_waiting = asyncio.Queue[float]()

        async def slow_send(_message: object) -> None:
            sending.set()
            await release.wait()

        async def tick(seconds: float) -> None:
            renewals_waiting.put_nowait(seconds)
            await ticks.get()

        sender = Sender(app.engine, MemoryTransport(before_send=slow_send), app.settings.outbox, clock,
                        sleep=tick)
        task = asyncio.create_task(sender.run_until_empty())
        await asyncio.wait_for(sending.wait(), 10)
        assert await asyncio.wait_for(renewals_waiting.get(), 10) == 10  # a third of the lease
        assert await lease_of(app) == (OutboxStatus.SENDING, clock.now() + timedelta(seconds=30))

        clock.advance(seconds=25)  # the send takes long: the renewal comes before the lease ends
        ticks.put_nowait(None)
        await asyncio.wait_for(renewals_waiting.get(), 10)  # renewed, waiting for the next turn
        assert await lease_of(app) == (OutboxStatus.SENDING, clock.now() + timedelta(seconds=30))
        clock.advance(seconds=25)  # past the first lease: another replica still finds nothing
        other = Sender(app.engine, MemoryTransport(), app.settings.outbox, clock)
        assert await other.claim(10) == []

        release.set()
        stats = await asyncio.wait_for(task, 10)
        assert stats.sent == 1
        assert await lease_of(app) == (OutboxStatus.SENT, None)


async def test_a_dead_senders_rows_are_taken_after_the_lease(db_url: str, clock: FrozenClock) -> None:
    async with open_world(settings_for(db_url, outbox={"lease_seconds": 30}), clock) as app:
        await add_customer(app)
        await open_case(app)
        dead = Sender(app.engine, MemoryTransport(), app.settings.outbox, clock)
        assert len(await dead.claim(10)) == 1  # and then its process dies: nothing renews
        clock.advance(seconds=29)
        other = Sender(app.engine, MemoryTransport(), app.settings.outbox, clock)
        assert await other.claim(10) == []
        clock.advance(seconds=2)
        assert (await other.run_until_empty()).sent == 1
