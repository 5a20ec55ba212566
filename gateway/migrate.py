"""Apply and check the Alembic migrations from inside the gateway (no alembic.ini needed)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

import migrations
from gateway.errors import SchemaOutOfDate

MIGRATIONS_DIR = Path(migrations.__file__).parent


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    await _run(engine, lambda cfg: command.upgrade(cfg, revision))


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    await _run(engine, lambda cfg: command.downgrade(cfg, revision))


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


async def check_schema(engine: AsyncEngine) -> None:
    """Raise :class:`SchemaOutOfDate` unless the database is at the head revision."""
    current = await current_revision(engine)
    head = head_revision()
    if current != head:
        found = current or "no schema"
        raise SchemaOutOfDate(
            f"database schema is {found}, the gateway needs {head}: run `case-gateway db upgrade`"
        )


async def _run(engine: AsyncEngine, action: object) -> None:
    cfg = alembic_config()

    def go(connection: Connection) -> None:
        cfg.attributes["connection"] = connection
        action(cfg)  # type: ignore[operator]

    async with engine.begin() as conn:
        await conn.run_sync(go)
