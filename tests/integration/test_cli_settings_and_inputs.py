"""Settings and inputs checked up front: a bad database URL or a short reference key is one
line and exit 2 for every command, naming the key; `contact add` takes exactly one plain
address and a one-line name; the engine never logs statement parameters (the generated
reference key among them), with `database.echo` on too."""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy import select

from gateway.db import create_engine
from gateway.keys import GENERATED_KEY
from gateway.models import InstanceSecret
from tests.cli_helpers import Gateway

COMMANDS = [["db", "status"], ["db", "upgrade"], ["org", "list"], ["contact", "list"], ["case", "show", "1"],
            ["outbox", "list"], ["inbound", "list"], ["quarantine", "list"], ["run", "--once"]]


@pytest.mark.parametrize("env, key", [
    ({"GATEWAY_DATABASE__URL": "mysql+pymysql://u@h/db"}, "database.url: unknown driver 'mysql+pymysql'"),
    ({"GATEWAY_DATABASE__URL": "not a url"}, "database.url: not a database URL"),
    ({"GATEWAY_DATABASE__URL": "sqlite:///gateway.db"}, "database.url: unknown driver 'sqlite'"),
    ({"GATEWAY_REFERENCE__SECRET": "short"}, "reference.secret: must be at least 16 characters"),
    ({"GATEWAY_REFERENCE__OLD_SECRETS": '["0123456789abcdef", "short"]'}, "reference.old_secrets:"),
], ids=["unknown-driver", "unparsable", "sync-driver", "short-secret", "short-old-secret"])
@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_bad_settings_are_one_line_and_exit_2_for_every_command(
    tmp_path, command: list[str], env: dict[str, str], key: str
) -> None:
    gw = Gateway(f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}")
    gw.env.update(env)
    result = gw(*command)
    assert result.code == 2, result
    (line,) = result.err.strip().splitlines()
    assert line.startswith(f"config error: {key}")
    assert result.out == ""


@pytest.fixture
def acme(db_url: str) -> Gateway:
    gw = Gateway(db_url)
    gw.ok("org", "add", "Acme Corp", "--tz", "Europe/Berlin", "--country", "DE")
    return gw


@pytest.mark.parametrize("address", ["<c@acme.example>", "e@@acme.example", "f@acme.example,g@acme.example",
                                     "Ana <ana@acme.example>", "ana@acme.example\r\nBcc: x@evil.example",
                                     "jörg@acme.example"])
def test_contact_add_takes_exactly_one_plain_address(acme: Gateway, address: str) -> None:
    result = acme("contact", "add", address, "--org", "Acme Corp")
    assert result.code == 1 and "not" in result.err and len(result.err.strip().splitlines()) == 1
    assert acme.ok("contact", "list", "--json").json() == []


@pytest.mark.parametrize("name", ["Ana\r\nBcc: x@evil.example", "Ana\nAlves", "Ana\x00", "Ana\u2028Alves"])
def test_contact_add_refuses_a_name_of_several_lines(acme: Gateway, name: str) -> None:
    result = acme("contact", "add", "ana@acme.example", "--org", "Acme Corp", "--name", name)
    assert result.code == 1 and "one line" in result.err
    assert acme.ok("contact", "list", "--json").json() == []


async def _stored_key(db_url: str) -> str | None:
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            return await conn.scalar(select(InstanceSecret.value).where(InstanceSecret.name == GENERATED_KEY))
    finally:
        await engine.dispose()


def test_the_engine_never_logs_the_generated_reference_key(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    gw = Gateway(db_url, GATEWAY_DATABASE__ECHO="true")
    gw.ok("org", "add", "Acme Corp", "--tz", "Europe/Berlin", "--country", "DE")
    gw.ok("contact", "add", "ana@acme.example", "--org", "Acme Corp")
    with caplog.at_level(logging.INFO, logger="sqlalchemy.engine"):
        gw.ok("case", "open", "--org", "Acme Corp", "--contact", "ana@acme.example", "--subject", "S",
              "--severity", "low")
    key = asyncio.run(_stored_key(db_url))
    assert key and "INSERT INTO instance_secrets" in caplog.text  # the statements were logged...
    assert key not in caplog.text  # ...their parameters were not
