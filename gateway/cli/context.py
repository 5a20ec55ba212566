"""What every command gets: validated settings, the clock, and a way to run async work with a
session whose transaction the command owns."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from gateway.clock import Clock, SystemClock

if TYPE_CHECKING:  # the program is imported when a command runs, not for --help
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

    from gateway.app import App
    from gateway.config import Settings

T = TypeVar("T")


@dataclass
class CliContext:
    settings: Settings
    clock: Clock = field(default_factory=SystemClock)

    @classmethod
    def load(cls, config_path: str | None, clock: Clock | None = None) -> CliContext:
        from gateway.config import load_settings  # pydantic: not for --help, nor for the workers

        return cls(settings=load_settings(config_path), clock=clock or SystemClock())

    def run(self, work: Callable[[AsyncEngine], Awaitable[T]], *, check_schema: bool = True) -> T:
        """Run ``work`` with an engine, refusing an out-of-date schema unless told not to."""

        from gateway.app import open_app

        async def go() -> T:
            async with open_app(self.settings, self.clock, check_schema=check_schema) as app:
                return await work(app.engine)

        return asyncio.run(go())

    def with_app(self, work: Callable[[App], Awaitable[T]]) -> T:
        """Run ``work`` with the wired application (schema checked first)."""

        from gateway.app import open_app

        async def go() -> T:
            async with open_app(self.settings, self.clock) as app:
                return await work(app)

        return asyncio.run(go())

    def transaction(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run ``work`` in one transaction: committed if it returns, rolled back if it raises."""

        async def go(app: App) -> T:
            async with app.sessions.begin() as session:
                return await work(session)

        return self.with_app(go)
