"""Each mailbox's intake health, written by the replica that polls it and read by ``status``
(so any replica, or a cron job on another host, sees the same)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.models import MailboxHealth

if TYPE_CHECKING:
    from gateway.operations.metrics import Metrics

log = structlog.get_logger(__name__)

MAX_ERROR_CHARS = 500
"""An error is kept to one line of at most this many characters."""


def _upsert(dialect: str, values: dict[str, Any]) -> Any:
    module: Any = postgresql if dialect == "postgresql" else sqlite
    stmt = module.insert(MailboxHealth).values(**values)
    changed = {k: v for k, v in values.items() if k != "mailbox"}
    return stmt.on_conflict_do_update(index_elements=["mailbox"], set_=changed)


def one_line(error: BaseException | str) -> str:
    text = error if isinstance(error, str) else (str(error) or type(error).__name__)
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


class HealthRecorder:
    """Writes a mailbox's health in a transaction of its own: one row per mailbox, updated
    once per round, so the cost is one statement per round, not per message."""

    def __init__(self, engine: AsyncEngine, metrics: Metrics | None = None) -> None:
        self.engine = engine
        self.metrics = metrics

    def connected(self, mailbox: str) -> None:
        """A login succeeded (counted; written with the round that follows)."""
        if self.metrics is not None:
            self.metrics.imap_connects.labels(mailbox).inc()

    async def polled(self, mailbox: str, now: datetime, waiting: int) -> None:
        """A round searched the folder without error and found ``waiting`` messages."""
        await self._write({"mailbox": mailbox, "connected": True, "last_poll_at": now,
                           "waiting": waiting, "updated_at": now})

    async def failed(self, mailbox: str, now: datetime, error: BaseException | str) -> None:
        """A connection or a round failed; the last successful poll stays as it was."""
        if self.metrics is not None:
            self.metrics.imap_failures.labels(mailbox).inc()
        await self._write({"mailbox": mailbox, "connected": False, "last_error": one_line(error),
                           "last_error_at": now, "updated_at": now})

    async def _write(self, values: dict[str, Any]) -> None:
        """A database that cannot take it only costs a log line: the intake goes on."""
        try:
            async with self.engine.begin() as conn:
                await conn.execute(_upsert(self.engine.dialect.name, values))
        except (SQLAlchemyError, OSError) as exc:
            log.warning("imap.health_not_recorded", mailbox=values["mailbox"], error=str(exc))
