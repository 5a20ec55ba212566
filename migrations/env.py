"""Alembic environment. Run through :mod:`gateway.migrate`, which hands over a connection
in ``config.attributes["connection"]``; with the ``alembic`` CLI, the URL comes from
``GATEWAY_DATABASE__URL`` (or ``sqlalchemy.url``)."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from gateway.db import create_engine
from gateway.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_new_engine(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_configure)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    url = os.environ.get("GATEWAY_DATABASE__URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set GATEWAY_DATABASE__URL or sqlalchemy.url")
    asyncio.run(_run_with_new_engine(url))


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
