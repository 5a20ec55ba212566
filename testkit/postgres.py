"""Scratch PostgreSQL databases for the benchmarks: made through an admin DSN
(``postgresql://user@host:port/db``), dropped afterwards."""

from __future__ import annotations

import uuid

import asyncpg  # type: ignore[import-untyped]


async def admin_execute(admin_dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_scratch(admin_dsn: str, prefix: str = "gw_bench") -> tuple[str, str]:
    """A new empty database on the admin DSN's server: (its SQLAlchemy URL, its name)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    await admin_execute(admin_dsn, f'CREATE DATABASE "{name}"')
    url = admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"
    return url, name


async def drop_scratch(admin_dsn: str, name: str) -> None:
    await admin_execute(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
