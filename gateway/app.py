"""Wiring: settings, clock, engine, renderer, mailer and the services built on them.

No globals: a CLI command or the daemon builds one :class:`App` and passes it down.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway import migrate
from gateway.cases.care import Care
from gateway.clock import Clock, SystemClock
from gateway.config import Settings
from gateway.db import create_engine, session_factory
from gateway.keys import reference_keys
from gateway.outbound.outbox import Mailer
from gateway.outbound.render import Renderer


@dataclass
class App:
    settings: Settings
    engine: AsyncEngine
    clock: Clock = field(default_factory=SystemClock)

    @cached_property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return session_factory(self.engine)

    @cached_property
    def renderer(self) -> Renderer:
        return Renderer(self.settings.branding, self.settings.templates.override_dir)

    async def mailer(self, session: AsyncSession | None = None) -> Mailer:
        """A mailer with the reference keys (made and stored on first use if none is set)."""
        if session is None:
            async with self.sessions.begin() as own:
                keys = await reference_keys(own, self.settings, self.clock)
        else:
            keys = await reference_keys(session, self.settings, self.clock)
        return Mailer(self.settings, self.renderer, self.clock, keys)

    async def care(self, session: AsyncSession) -> Care:
        return Care(await self.mailer(session), self.clock)


@asynccontextmanager
async def open_app(
    settings: Settings, clock: Clock | None = None, *, check_schema: bool = True
) -> AsyncIterator[App]:
    engine = create_engine(settings.database.url, echo=settings.database.echo)
    try:
        if check_schema:
            await migrate.check_schema(engine)
        yield App(settings, engine, clock or SystemClock())
    finally:
        await engine.dispose()
