"""Database fixtures: every test that asks for ``engine`` runs on SQLite and on PostgreSQL,
each with a schema made by the real Alembic migrations.

The migrations run once per session into a template (a SQLite file; a PostgreSQL template
database); each test then gets a copy, so tests are isolated and cheap. PostgreSQL is found at
``GATEWAY_TEST_PG_URL`` (default ``postgresql+asyncpg://postgres@127.0.0.1:5432/postgres``).
Where it cannot be reached the PostgreSQL half is skipped locally and FAILS in CI.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway import migrate
from gateway.clock import FrozenClock
from gateway.db import create_engine, session_factory

PG_URL = os.environ.get(
    "GATEWAY_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
DB_KINDS = ["sqlite", "postgresql"]


def unavailable(what: str) -> None:
    """Skip locally, fail in CI: a skipped test in CI is a failing test."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI", pytrace=False)
    pytest.skip(f"{what} not available")


def pg_url(database: str) -> str:
    return make_url(PG_URL).set(database=database).render_as_string(hide_password=False)


def _asyncpg_dsn(database: str) -> str:
    return pg_url(database).replace("postgresql+asyncpg://", "postgresql://")


async def pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(make_url(PG_URL).database or "postgres"), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _migrate_url(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


class Templates:
    """Migrated templates made lazily, once per test session."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.sqlite_file: Path | None = None
        self.pg_name: str | None = None
        self.pg_error: str | None = None

    def build(self) -> None:
        """Run the migrations into both templates (outside any event loop)."""
        path = self.folder / "template.db"
        asyncio.run(_migrate_url(f"sqlite+aiosqlite:///{path}"))
        self.sqlite_file = path
        name = f"gw_template_{uuid.uuid4().hex[:10]}"
        try:
            asyncio.run(pg_admin(f'CREATE DATABASE "{name}"'))
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            self.pg_error = f"PostgreSQL at {PG_URL} ({exc})"
            return
        self.pg_name = name
        asyncio.run(_migrate_url(pg_url(name)))

    def sqlite(self) -> Path:
        assert self.sqlite_file is not None
        return self.sqlite_file

    def postgresql(self) -> str:
        if self.pg_name is None:
            unavailable(self.pg_error or "PostgreSQL")
        assert self.pg_name is not None
        return self.pg_name

    def drop(self) -> None:
        if self.pg_name is not None:
            asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def db_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    templates = Templates(tmp_path_factory.mktemp("db-templates"))
    templates.build()
    yield templates
    templates.drop()


@pytest.fixture(params=DB_KINDS)
async def db_url(
    request: pytest.FixtureRequest, db_templates: Templates, tmp_path: Path
) -> AsyncIterator[str]:
    """A migrated, empty database of each kind; its URL."""
    if request.param == "sqlite":
        path = tmp_path / "gateway.db"
        shutil.copyfile(db_templates.sqlite(), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    template = db_templates.postgresql()
    name = f"gw_test_{uuid.uuid4().hex[:12]}"
    await pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield pg_url(name)
    finally:
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=DB_KINDS)
async def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database of each kind with no schema at all (for migration tests)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"gw_empty_{uuid.uuid4().hex[:12]}"
    try:
        await pg_admin(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        unavailable(f"PostgreSQL at {PG_URL} ({exc})")
    try:
        yield pg_url(name)
    finally:
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(db_url)
    try:
        yield eng
    finally:
        await eng.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()
