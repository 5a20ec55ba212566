"""The schema exists only through the migrations: up, down and up again on both engines,
and the models agree with what the migrations made."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text

from gateway import migrate
from gateway.db import create_engine, session_factory
from gateway.errors import SchemaOutOfDate
from gateway.models import Base, InboundMessage, Organisation


async def test_upgrade_downgrade_upgrade(empty_db_url: str) -> None:
    engine = create_engine(empty_db_url)
    try:
        with pytest.raises(SchemaOutOfDate, match="case-gateway db upgrade"):
            await migrate.check_schema(engine)
        await migrate.upgrade(engine)
        await migrate.check_schema(engine)
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert set(Base.metadata.tables) <= tables
        await migrate.downgrade(engine, "base")
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert tables <= {"alembic_version"}
        assert await migrate.current_revision(engine) is None
        await migrate.upgrade(engine)
        assert await migrate.current_revision(engine) == migrate.head_revision()
    finally:
        await engine.dispose()


async def test_models_match_migrations(engine) -> None:
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
        )
    assert diff == []


async def test_datetimes_round_trip_as_aware_utc(engine) -> None:
    sessions = session_factory(engine)
    berlin = timezone(timedelta(hours=1))
    stamp = datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=berlin)
    async with sessions.begin() as session:
        session.add(
            Organisation(name="Acme", timezone="Europe/Berlin", holiday_country="DE",
                         total_agents=5, created_at=stamp)
        )
    async with sessions() as session:
        got = (await session.execute(select(Organisation.created_at))).scalar_one()
    assert got == stamp
    assert got.tzinfo is not None and got.utcoffset() == timedelta(0)
    assert got.tzinfo == UTC


LZ4_COLUMNS = [("attachments", "content"), ("case_events", "body"), ("inbound_messages", "new_text"),
               ("inbound_raw", "raw"), ("outbox", "data")]


async def test_large_values_are_compressed_with_lz4_on_postgresql(engine) -> None:
    """Raw mail, attachments, the customer's new text (on its inbound row and its timeline
    event) and queued mail: lz4, not pglz (a fraction of the server's CPU per row)."""
    if engine.dialect.name != "postgresql":
        assert engine.dialect.name == "sqlite"  # nothing to set there
        return
    wanted = ", ".join(f"('{table}', '{column}')" for table, column in LZ4_COLUMNS)
    async with engine.begin() as conn:
        rows = await conn.execute(text(
            "SELECT c.relname, a.attname, a.attcompression::text FROM pg_attribute a "
            f"JOIN pg_class c ON c.oid = a.attrelid WHERE (c.relname, a.attname) IN ({wanted})"
        ))
        assert sorted(rows.all()) == [(table, column, "l") for table, column in LZ4_COLUMNS]
        # and a value written now is compressed that way
        await conn.execute(text("CREATE TEMP TABLE probe (LIKE case_events INCLUDING ALL)"))
        await conn.execute(text("INSERT INTO probe (case_id, at, kind, actor, body) "
                                "VALUES (1, now(), 'note', 'test', repeat('logs attached ', 500))"))
        assert await conn.scalar(text("SELECT pg_column_compression(body) FROM probe")) == "lz4"


async def test_raw_mail_moves_to_its_own_table_and_back(empty_db_url: str) -> None:
    """Migration 0003 keeps every stored message: out of inbound_messages on the way up,
    back into it on the way down."""
    engine = create_engine(empty_db_url)
    row = {"m": "care", "v": 1, "u": 7, "h": "", "s": 5, "r": b"raw\x00\xffbytes",
           "t": datetime(2026, 11, 26, tzinfo=UTC), "j": "[]"}
    try:
        await migrate.upgrade(engine, "0002")
        async with engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO inbound_messages (mailbox, uidvalidity, uid, content_hash, size, raw, "
                "received_at, trail, attempts, moved) VALUES (:m, :v, :u, :h, :s, :r, :t, :j, 0, false)"
            ), row)
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT raw FROM inbound_raw"))).scalars().all() == [row["r"]]
            columns = await conn.run_sync(lambda c: inspect(c).get_columns("inbound_messages"))
        assert "raw" not in {column["name"] for column in columns}
        await migrate.downgrade(engine, "0002")
        async with engine.connect() as conn:
            raws = (await conn.execute(text("SELECT raw FROM inbound_messages"))).scalars().all()
            assert raws == [row["r"]]
            assert "inbound_raw" not in await conn.run_sync(lambda c: inspect(c).get_table_names())
    finally:
        await engine.dispose()


async def test_the_moved_flag_moves_to_its_own_table_and_back(empty_db_url: str) -> None:
    """Migration 0007 keeps which messages were moved: a row in inbound_moved on the way up,
    the ``moved`` column on the way down."""
    engine = create_engine(empty_db_url)
    stamp = datetime(2026, 12, 6, tzinfo=UTC)
    try:
        await migrate.upgrade(engine, "0006")
        async with engine.begin() as conn:
            for uid, moved in [(1, True), (2, False), (3, True)]:
                await conn.execute(text(
                    "INSERT INTO inbound_messages (mailbox, uidvalidity, uid, content_hash, size, "
                    "received_at, trail, attempts, moved) VALUES ('care', 1, :u, '', 5, :t, '[]', 1, :m)"
                ), {"u": uid, "t": stamp, "m": moved})
        await migrate.upgrade(engine)
        async with session_factory(engine)() as session:
            rows = (await session.execute(select(InboundMessage.uid, InboundMessage.moved)
                                          .order_by(InboundMessage.uid))).all()
        assert [tuple(r) for r in rows] == [(1, True), (2, False), (3, True)]
        await migrate.downgrade(engine, "0006")
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT uid, moved FROM inbound_messages ORDER BY uid"))).all()
            assert [(uid, bool(moved)) for uid, moved in rows] == [(1, True), (2, False), (3, True)]
            assert "inbound_moved" not in await conn.run_sync(lambda c: inspect(c).get_table_names())
    finally:
        await engine.dispose()
