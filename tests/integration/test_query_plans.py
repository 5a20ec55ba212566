"""Statements of the inbound path stay cheap on a PostgreSQL table without statistics (a new
deployment taking a backlog).

Autovacuum is switched off on the tables here, so that it cannot analyse them behind the
test's back (it would, within a minute, in production).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.inbound.store import known_query, moved_update, store_raw

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


async def _without_autovacuum(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for table in ("inbound_messages",):
            await conn.execute(text(f"ALTER TABLE {table} SET (autovacuum_enabled = false)"))


async def _store(engine: AsyncEngine, uids: range) -> None:
    for start in range(uids.start, uids.stop, 150):
        batch = range(start, min(start + 150, uids.stop))
        await store_raw(engine, mailbox="care", uidvalidity=7, received_at=NOW,
                        items=[(uid, b"Subject: %d\r\n\r\nbody\r\n" % uid, 24) for uid in batch])


async def _rows_read(engine: AsyncEngine, statement: Any) -> int:
    """Rows the statement's scans read (returned or filtered out), by EXPLAIN ANALYZE, rolled back."""
    sql = str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    async with engine.connect() as conn:
        plan = await conn.scalar(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}"))
        await conn.rollback()

    def walk(node: dict[str, Any]) -> int:
        read = 0
        if "Scan" in node["Node Type"]:
            read += node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
        return read + sum(walk(child) for child in node.get("Plans", []))

    return walk((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"])


async def _reltuples(engine: AsyncEngine) -> float:
    async with engine.connect() as conn:
        found = await conn.scalar(text("SELECT reltuples FROM pg_class WHERE relname = 'inbound_messages'"))
        return float(found)


async def test_a_batch_lookup_reads_only_its_uid_range_on_a_table_never_analysed(engine: AsyncEngine) -> None:
    await _without_autovacuum(engine)
    await _store(engine, range(1, 1201))
    assert await _reltuples(engine) == -1  # never analysed: the planner guesses
    batch = [uid for uid in range(1001, 1151) if uid % 3]  # 100 UIDs spread over 150
    assert await _rows_read(engine, known_query("care", 7, batch)) <= 150
    assert await _rows_read(engine, moved_update("care", 7, batch)) <= 150
