"""Mail that the scheduler's sources write: dated and due at the instant a pass runs as."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.clock import FrozenClock
from gateway.config import Settings
from gateway.keys import reference_keys
from gateway.outbound.outbox import Mailer
from gateway.outbound.render import Renderer


async def mailer_at(session: AsyncSession, settings: Settings, renderer: Renderer, now: datetime) -> Mailer:
    """A mailer whose mail is dated and due at ``now``: the instant the pass runs as (which
    ``run --once --now`` sets), not the wall clock."""
    clock = FrozenClock(now)
    return Mailer(settings, renderer, clock, await reference_keys(session, settings, clock))
