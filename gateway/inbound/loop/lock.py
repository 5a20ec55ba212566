"""One replica at a time reads a mailbox: on PostgreSQL, an advisory lock per mailbox, held
by a connection of its own for as long as the replica polls. SQLite has one writer process
anyway, so there the lock is always granted."""

from __future__ import annotations

import contextlib
import hashlib

import structlog
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = structlog.get_logger(__name__)


class MailboxLock:
    def __init__(self, engine: AsyncEngine, mailbox: str) -> None:
        self.engine = engine
        self.mailbox = mailbox
        self.connection: AsyncConnection | None = None
        """The connection whose session holds the lock, while it is held."""
        digest = hashlib.sha256(f"case-gateway:mailbox:{mailbox}".encode()).digest()
        self.key = int.from_bytes(digest[:8], "big", signed=True)

    async def hold(self) -> bool:
        """Take (or keep) the lock, on a connection of its own held until :meth:`release`.

        The lock lives as long as that connection's session: each round checks that it is
        still there. After a database restart it is not, another replica may hold the lock
        by now, and this one must ask again."""
        if self.engine.dialect.name != "postgresql":
            return True
        if self.connection is not None:
            try:
                await self.connection.execute(text("SELECT 1"))
                return True  # the session that holds the lock is alive: it is still ours
            except SQLAlchemyError as exc:
                log.warning("inbound.mailbox_lock_lost", mailbox=self.mailbox, error=str(exc))
                lost, self.connection = self.connection, None
                with contextlib.suppress(Exception):
                    await lost.invalidate()  # a dead connection must not go back to the pool
                    await lost.close()
        conn = await self.engine.connect()
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        if await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}):
            self.connection = conn
            return True
        await conn.close()
        return False

    async def release(self) -> None:
        """Give the lock back. If its session died (a database restart), the lock went with
        it: that is logged, and the dead connection is discarded, not pooled."""
        conn, self.connection = self.connection, None
        if conn is None:
            return
        try:
            await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
        except SQLAlchemyError as exc:
            log.warning("inbound.mailbox_lock_lost", mailbox=self.mailbox, error=str(exc)[:500])
            with contextlib.suppress(Exception):
                await conn.invalidate()
        finally:
            with contextlib.suppress(Exception):
                await conn.close()
