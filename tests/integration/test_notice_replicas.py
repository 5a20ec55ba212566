"""Two schedulers on one database (two replicas), and a fan-out repeated after a restart,
never queue one notice mail twice to one address; on both databases."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from gateway import directory
from gateway.app import App
from gateway.clock import FrozenClock
from gateway.models import NoticeUpdate, Outbox
from gateway.notices import lists, mails
from gateway.notices.incidents import Incidents
from gateway.notices.maintenance import Maintenance, Window
from gateway.notices.sources import notice_sources
from gateway.schedule.scheduler import Scheduler
from testkit.world import open_world, settings_for

ADDRESSES = [f"list{n}@acme.example" for n in range(40)]


@pytest.fixture
async def app(db_url: str, clock: FrozenClock) -> AsyncIterator[App]:
    async with open_world(settings_for(db_url), clock) as app:
        async with app.sessions.begin() as session:
            await directory.add_organisation(session, clock, name="Acme Corp", timezone="Europe/Berlin",
                                             country="DE")
            for address in ADDRESSES:
                await lists.add(session, clock.now(), address=address, organisation="Acme Corp",
                                timezone=None, kinds=None)
        yield app


async def queued(app: App) -> Counter[tuple[str, str]]:
    async with app.sessions() as session:
        rows = (await session.execute(select(Outbox.kind, Outbox.dedupe_key))).all()
    return Counter((kind, key.rsplit(":", 1)[1]) for kind, key in rows)


async def test_two_replicas_send_each_due_mail_once(app: App, clock: FrozenClock) -> None:
    now = clock.now()
    async with app.sessions.begin() as session:
        await Maintenance(app.settings, app.renderer).schedule(
            session, now, Window(now + timedelta(days=20), now + timedelta(days=20, hours=1), impact="i"),
            orgs="Acme Corp", everyone=False, emergency=False)
        await Incidents(app.settings, app.renderer).open(
            session, now, orgs="Acme Corp", everyone=False, summary="s", impact="i", services=None,
            recommendation=None)
    replicas = [Scheduler(app.sessions, clock, notice_sources(app.settings), batch=1) for _ in range(2)]
    later = now + timedelta(days=6, minutes=1)  # the held notice and an incident update are due
    handled = await asyncio.gather(*(r.run_pass(later) for r in replicas))
    assert sum(handled) == 2  # the held notice and one 30-minute update (no stale warning)
    counts = await queued(app)
    assert set(counts.values()) == {1}
    kinds = Counter(kind for kind, _ in counts)
    assert kinds == {"maintenance_planned": 40, "incident_alert": 40, "incident_update": 40}


async def test_a_repeated_fan_out_queues_nothing_new(app: App, clock: FrozenClock) -> None:
    async with app.sessions.begin() as session:
        notice = await Incidents(app.settings, app.renderer).open(
            session, clock.now(), orgs="Acme Corp", everyone=False, summary="s", impact="i",
            services=None, recommendation=None)
    async with app.sessions.begin() as session:  # as if a restart took the same mail again
        update = await session.scalar(select(NoticeUpdate).where(NoticeUpdate.notice_id == notice.id))
        assert update is not None
        again = await mails.deliver(session, app.settings, app.renderer, notice, update, clock.now())
    assert again == 0
    assert sum((await queued(app)).values()) == 40
