"""Engine and session factory; the caller owns the transaction.

SQLite (the embedded default) gets WAL, a busy timeout and foreign keys on every
connection. :class:`UTCDateTime` stores timezone-aware UTC datetimes on both engines and
always hands back aware UTC values (SQLite would otherwise return naive ones).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from sqlalchemy import DateTime, any_, bindparam, event, insert, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.types import TypeDecorator

log = structlog.get_logger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
IN_LIST_MAX = 500
"""Keys per ``IN`` list (SQLite allows 32,766 parameters; PostgreSQL 65,535)."""
_K = TypeVar("_K")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that must be timezone-aware going in and is aware UTC coming out."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """An async engine for ``url``; remember to ``await engine.dispose()`` at the end. Its
    errors and logs never show statement parameters: they hold mail text and keys."""
    kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
    if is_sqlite(url):
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    else:
        kwargs["pool_pre_ping"] = True
        # pg_stat_activity and pg_locks then say which process holds what (a mailbox's lock).
        kwargs["connect_args"] = {"server_settings": {"application_name": f"case-gateway {os.getpid()}"}}
    engine = create_async_engine(url, **kwargs)
    if is_sqlite(url):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def insert_ignoring_conflicts(dialect_name: str, table: Any, index_elements: list[str]) -> Any:
    """``INSERT ... ON CONFLICT (index_elements) DO NOTHING`` for SQLite and PostgreSQL."""
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=index_elements)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing(index_elements=index_elements)


_QUEUED_ROWS = "gateway.db.queued_rows"
"""``session.info`` key: the rows :func:`queue_insert` queued, by model."""


def queue_insert(session: AsyncSession, model: type[Any], **values: Any) -> None:
    """Queue a row of ``model`` for :func:`insert_queued`, instead of adding an object to the
    session: for rows that nothing in the transaction reads back or points to (they get no id
    before they are inserted). A group of inbound messages writes a hundred timeline events at
    a time; the unit of work would insert them one statement each on SQLite (which cannot
    return the ids of a multi-row INSERT in order), and an ORM object built only to be taken
    apart again cost more of the daemon's CPU than its insert."""
    session.info.setdefault(_QUEUED_ROWS, {}).setdefault(model, []).append(values)


async def insert_queued(session: AsyncSession) -> None:
    """Insert what :func:`queue_insert` queued in this session, one statement per model, each
    model's rows in the order they were queued."""
    queued: dict[type[Any], list[dict[str, Any]]] = session.info.pop(_QUEUED_ROWS, {})
    for model, rows in queued.items():
        # render_nulls: a None goes in as NULL rather than splitting the batch by key set
        await session.execute(insert(model).execution_options(render_nulls=True), rows)


def among(column: Any, values: Iterable[Any], dialect: str) -> Any:
    """``column IN (values)``; on PostgreSQL ``column = ANY($1)``, the values one array.

    SQLAlchemy renders an ``IN`` list as a parameter per value, each cast on PostgreSQL, at
    every execution, which costs the daemon's CPU on every inbound group; an array is one
    parameter and one statement text whatever the number of values, so asyncpg prepares it
    once. SQLite has no arrays."""
    values = list(values)
    if dialect == "postgresql":
        return column == any_(bindparam(None, values, type_=ARRAY(column.type)))
    return column.in_(values)


def chunks(keys: Iterable[_K]) -> Iterator[list[_K]]:
    """The distinct ``keys``, in order, in lists of at most :data:`IN_LIST_MAX` for ``IN``."""
    items = list(dict.fromkeys(keys))
    for start in range(0, len(items), IN_LIST_MAX):
        yield items[start : start + IN_LIST_MAX]


class PlannerStatistics:
    """Keeps PostgreSQL's table statistics up with a burst of inbound mail.

    PostgreSQL plans from statistics that autovacuum refreshes at most once a minute. A burst
    into a young table (a new deployment, a backlog after downtime) is planned as if the
    table were still as small as at its last ANALYZE (or, never analysed, with default
    guesses): an ``IN`` list of a hundred Message-IDs then looks like most of the table and
    is read as a sequential scan, one per group of messages, each longer as the table grows.
    So every :data:`CHECK_EVERY` messages written, if the messages written since this
    process last analysed the tables are more than :data:`GROWTH` of the messages table's
    size as of its last ANALYZE (by anyone, autovacuum included), the tables the inbound path
    queries are analysed. On a large table that is rarely the case. An ANALYZE that fails is
    logged and the intake goes on: it only makes queries cheaper. SQLite plans without
    statistics (its queries are written for that); nothing is done there."""

    CHECK_EVERY = 1000
    GROWTH = 0.2
    TABLES = ("inbound_messages", "outbox", "outbox_recipients")

    def __init__(self, engine: AsyncEngine, check_every: int | None = None) -> None:
        self.engine = engine
        self.check_every = check_every or self.CHECK_EVERY
        self._written = 0
        """Rows written since the last check."""
        self._since_analyze = 0
        """Rows written since this process last analysed the tables."""

    async def wrote(self, rows: int) -> bool:
        """``rows`` inbound messages were written; returns whether the tables were analysed."""
        if self.engine.dialect.name != "postgresql" or rows <= 0:
            return False
        self._written += rows
        self._since_analyze += rows
        if self._written < self.check_every:
            return False
        self._written = 0
        try:
            async with self.engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                known = await conn.scalar(text(
                    "SELECT reltuples FROM pg_class WHERE oid = to_regclass('inbound_messages')"))
                if known is not None and known >= 0 and self._since_analyze <= self.GROWTH * known:
                    return False
                await conn.execute(text(f"ANALYZE (SKIP_LOCKED) {', '.join(self.TABLES)}"))
        except SQLAlchemyError as exc:
            log.warning("db.analyze_failed", error=f"{type(exc).__name__}: {exc}"[:500])
            return False
        self._since_analyze = 0
        return True
