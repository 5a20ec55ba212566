"""Statements of the inbound path stay cheap on a PostgreSQL table without statistics (a new
deployment taking a backlog), and the gateway analyses its tables during such a burst.

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
from structlog.testing import capture_logs

from gateway.clock import FrozenClock
from gateway.daemon import Daemon
from gateway.db import PlannerStatistics
from gateway.inbound.loop.store import known_query, moved_insert, store_raw
from gateway.outbound.transport import MemoryTransport
from testkit.mails import new_mail
from testkit.world import open_world, settings_for

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


async def _without_autovacuum(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for table in PlannerStatistics.TABLES:
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
    assert await _rows_read(engine, known_query("care", 7, batch, "postgresql")) <= 150
    assert await _rows_read(engine, moved_insert("care", 7, batch, "postgresql")) <= 150


async def test_a_burst_into_a_young_table_is_analysed_a_large_table_is_not(engine: AsyncEngine) -> None:
    await _without_autovacuum(engine)
    statistics = PlannerStatistics(engine, check_every=300)
    await _store(engine, range(1, 300))
    assert not await statistics.wrote(299)  # not time to look yet
    assert await _reltuples(engine) == -1
    await _store(engine, range(300, 301))
    assert await statistics.wrote(1)  # never analysed: analysed now
    assert await _reltuples(engine) == 300
    await _store(engine, range(301, 1501))
    assert await statistics.wrote(1200)  # grown fourfold since
    assert await _reltuples(engine) == 1500
    await _store(engine, range(1501, 1801))
    assert not await statistics.wrote(300)  # 20% more: the statistics still describe it
    assert await _reltuples(engine) == 1500


async def test_an_analyze_that_fails_is_logged_and_intake_goes_on(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(PlannerStatistics, "TABLES", ("inbound_messages", "no_such_table"))
    statistics = PlannerStatistics(engine, check_every=1)
    with capture_logs() as logs:
        assert not await statistics.wrote(1)
    assert [entry["event"] for entry in logs] == ["db.analyze_failed"]
    assert "no_such_table" in logs[0]["error"]


async def test_the_gateway_analyses_while_it_stores_a_burst(
    db_url: str, engine: AsyncEngine, imap_account: Any, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(PlannerStatistics, "CHECK_EVERY", 3)
    await _without_autovacuum(engine)
    for n in range(3):
        imap_account.append(new_mail(sender=f"someone{n}@example.org", subject=f"Hello {n}", text="Open one"))
    settings = settings_for(db_url, mailboxes=[imap_account.mailbox_settings()])
    async with open_world(settings, clock) as app:
        assert (await Daemon(app, transport=MemoryTransport()).run_once()).inbound.decided == 3
    assert await _reltuples(engine) == 3
