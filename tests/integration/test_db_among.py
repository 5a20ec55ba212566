"""``gateway.db.among``: the rows ``IN`` finds, on SQLite (an ``IN`` list) and on PostgreSQL
(one array parameter), whatever the values: strings, ids, duplicates, unknown ones, none."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db import among
from gateway.models import Organisation

NAMES = ["Acme", "Globex", "Initech", "O'Hara & Sons", "Ünïcode GmbH"]


@pytest.mark.parametrize("wanted", [
    ["Acme"], ["Acme", "Initech", "Acme"], ["nobody", "Globex"], NAMES, ["O'Hara & Sons", "Ünïcode GmbH"], [],
])
async def test_among_finds_what_in_finds(engine: AsyncEngine, wanted: list[str]) -> None:
    now = datetime(2026, 12, 6, tzinfo=UTC)
    async with engine.begin() as conn:
        await conn.execute(insert(Organisation), [
            {"name": n, "timezone": "UTC", "holiday_country": "DE", "created_at": now} for n in NAMES])
        ids = {n: i for i, n in (await conn.execute(select(Organisation.id, Organisation.name))).all()}
        dialect = engine.dialect.name
        by_name = set((await conn.scalars(
            select(Organisation.name).where(among(Organisation.name, wanted, dialect)))).all())
        assert by_name == set(wanted) & set(NAMES)
        wanted_ids = [ids[n] for n in wanted if n in ids] + [10_000]
        by_id = set((await conn.scalars(
            select(Organisation.id).where(among(Organisation.id, wanted_ids, dialect)))).all())
        assert by_id == {ids[n] for n in wanted if n in ids}


def test_on_postgresql_the_values_are_one_parameter() -> None:
    many = list(range(300))
    on_pg = select(Organisation.id).where(among(Organisation.id, many, "postgresql"))
    assert str(on_pg.compile(dialect=postgresql.asyncpg.dialect())).count("$") == 1
    on_sqlite = select(Organisation.id).where(among(Organisation.id, many, "sqlite"))
    compiled = on_sqlite.compile(dialect=sqlite.dialect(), compile_kwargs={"render_postcompile": True})
    assert str(compiled).count("?") == 300
