"""`db upgrade` makes the schema; every other command refuses an out-of-date one."""

from __future__ import annotations

from tests.cli_helpers import Gateway


def test_commands_refuse_missing_schema_then_upgrade(empty_db_url: str) -> None:
    gw = Gateway(empty_db_url)
    refused = gw("org", "list")
    assert refused.code == 1
    assert "run `case-gateway db upgrade`" in refused.err
    assert "out of date" in gw.ok("db", "status").out
    assert "database at revision" in gw.ok("db", "upgrade").out
    assert gw.ok("org", "list", "--json").json() == []
    assert "database at revision" in gw.ok("db", "upgrade").out  # idempotent
