"""The one list of timed work the scheduler runs. A new kind of due work is one line here."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.clock import FrozenClock
from gateway.config import Settings
from gateway.keys import reference_keys
from gateway.outbound.outbox import Mailer
from gateway.outbound.render import Renderer
from gateway.schedule.scheduler import DueWork


def default_sources(settings: Settings) -> list[DueWork]:
    """Every source of due work, in the order a pass runs them."""
    return []


async def mailer_at(session: AsyncSession, settings: Settings, renderer: Renderer, now: datetime) -> Mailer:
    """A mailer whose mail is dated and due at ``now``: the instant the pass runs as (which
    ``run --once --now`` sets), not the wall clock."""
    clock = FrozenClock(now)
    return Mailer(settings, renderer, clock, await reference_keys(session, settings, clock))
