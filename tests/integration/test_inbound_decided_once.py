"""A decision is made once, whatever runs: a decider that finds the message decided by another
when it comes to record its own rolls back its effects (both databases); a second `run` or
`run --once` on one SQLite database refuses to start; a message moved but not marked moved
(the process ended between the two) is marked on the next round."""

from __future__ import annotations

import asyncio
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from gateway.app import App
from gateway.clock import FrozenClock
from gateway.inbound.imap.fetching import Fetched
from gateway.inbound.loop.batch import BatchDecider
from gateway.inbound.mail.analysis import parse_chunk
from gateway.inbound.policy.context import Services
from gateway.models import CaseEvent, InboundMessage, InboundMoved
from testkit.mails import inbound_rows, new_mail, reply, sent_mail
from testkit.servers.smtp import RecordingSmtpServer
from testkit.world import ANA, add_customer, open_case, open_world, settings_for, write_config
from tests.integration.test_daemon_process import gateway_process, read_until
from tests.integration.test_inbound_policy import folders, run, world
from tests.plugins.database import Templates
from tests.plugins.smtp import smtp_settings


@pytest.fixture
async def app(db_url: str, imap_account: Any, smtp_server: RecordingSmtpServer,
              clock: FrozenClock) -> AsyncIterator[App]:
    async with world(db_url, imap_account, smtp_server, clock) as app:
        yield app


async def _decider(app: App) -> BatchDecider:
    mailer = await app.mailer()
    services = Services(app.settings, app.clock, mailer, mailer.keys, frozenset())
    return BatchDecider(app.engine, app.sessions, services)


async def test_the_decider_that_comes_second_rolls_back(app: App) -> None:
    """Both deciders saw the message undecided; the second to record its decision finds it
    decided and leaves nothing of its own (no second timeline entry, no second answer)."""
    case = await open_case(app)
    mail = reply(await sent_mail(app, case.id), sender=ANA, text="The logs you asked for.")
    mailbox, batch = app.settings.mailboxes[0], [Fetched(1, mail, len(mail))]
    first, second = await _decider(app), await _decider(app)
    stale = await first.store(mailbox, 9, batch)  # what each saw: undecided
    assert await second.start_round(mailbox, 9).decide(batch) == {1: mailbox.processed_folder}

    loser = first.parser.start(batch)
    assert await first.process(mailbox, batch, stale, loser, lambda: False) == {}

    (row,) = await inbound_rows(app)
    assert (row.disposition, row.error) == ("applied", None)
    async with app.sessions() as session:
        kinds = list(await session.scalars(select(CaseEvent.kind).order_by(CaseEvent.id)))
    assert kinds == ["opened", "customer_reply"]


async def test_on_postgresql_the_second_decider_waits_and_then_rolls_back(app: App) -> None:
    """PostgreSQL: the second decider's claim waits for the first's transaction, then sees its
    decision (the row lock, not only the mailbox's advisory lock)."""
    if app.engine.dialect.name != "postgresql":
        assert app.engine.dialect.name == "sqlite"  # one writer at a time: the test above holds
        return
    case = await open_case(app)
    mail = reply(await sent_mail(app, case.id), sender=ANA, text="Racing.")
    mailbox, batch = app.settings.mailboxes[0], [Fetched(1, mail, len(mail))]
    decider = await _decider(app)
    stored = await decider.store(mailbox, 9, batch)
    row_id = stored[1].id
    async with app.engine.connect() as other:
        transaction = await other.begin()
        await other.execute(InboundMessage.__table__.update().where(InboundMessage.id == row_id)
                            .values(disposition="applied", trail=[]))  # a decider mid-commit
        parsing = {1: asyncio.get_running_loop().create_future()}
        parsing[1].set_result(parse_chunk([mail], decider.parser.limits, decider.services.keys)[0])
        deciding = asyncio.ensure_future(decider.process(mailbox, batch, stored, parsing, lambda: False))
        await asyncio.sleep(0)
        done, _ = await asyncio.wait([deciding], timeout=0.5)
        assert not done  # waiting on the row lock
        await transaction.commit()
    assert await deciding == {}
    async with app.sessions() as session:
        events = await session.scalar(select(func.count()).select_from(CaseEvent))
    assert events == 1  # "opened" only: the loser's customer_reply rolled back


async def test_a_move_not_marked_is_reconciled_on_the_next_round(app: App, imap_account) -> None:
    imap_account.append(new_mail(sender="someone@example.org", subject="Hello", text="Open a case"))
    await run(app)
    async with app.sessions.begin() as session:
        await session.execute(delete(InboundMoved))  # as if the process died after the MOVE
    (row,) = await inbound_rows(app)
    assert not row.moved
    await run(app)
    (row,) = await inbound_rows(app)
    assert row.moved
    assert folders(imap_account)["Refused"] == 1


async def test_a_second_run_on_one_sqlite_database_is_refused(
    db_templates: Templates, imap_account, smtp_server_thread: RecordingSmtpServer, clock: FrozenClock,
    tmp_path: Path,
) -> None:
    path = tmp_path / "gateway.db"
    shutil.copyfile(db_templates.sqlite(), path)
    settings = settings_for(f"sqlite+aiosqlite:///{path}", mailboxes=[imap_account.mailbox_settings()],
                            smtp=smtp_settings(smtp_server_thread))
    config = write_config(tmp_path / "gateway.toml", settings)
    async with open_world(settings, clock) as app:
        await add_customer(app)
    daemon = await gateway_process(config, "run")
    try:
        await read_until(daemon.stderr, b"daemon.started")
        for args in (["run", "--once"], ["run"]):
            second = await gateway_process(config, *args)
            out, err = await asyncio.wait_for(second.communicate(), 60)
            assert second.returncode == 1, (out, err)
            lines = err.decode().strip().splitlines()
            assert len(lines) == 1
            assert lines[0].startswith(f"error: another case-gateway run (pid {daemon.pid})")
            assert "gateway.db" in lines[0]
    finally:
        daemon.send_signal(signal.SIGTERM)
        await asyncio.wait_for(daemon.communicate(), 60)
    assert daemon.returncode == 0
    after = await gateway_process(config, "run", "--once")  # the lock went with the daemon
    await asyncio.wait_for(after.communicate(), 60)
    assert after.returncode == 0


async def test_run_once_beside_a_running_daemon_says_so(
    db_url: str, imap_account, smtp_server_thread: RecordingSmtpServer, clock: FrozenClock, tmp_path: Path,
) -> None:
    """SQLite: refused (one run per database). PostgreSQL: the mailbox is left to the daemon
    that reads it, and the summary line says so."""
    settings = settings_for(db_url, mailboxes=[imap_account.mailbox_settings()],
                            smtp=smtp_settings(smtp_server_thread))
    config = write_config(tmp_path / "gateway.toml", settings)
    async with open_world(settings, clock) as app:
        await add_customer(app)
    imap_account.append(new_mail(sender="someone@example.org", subject="Hello", text="Open a case"))
    daemon = await gateway_process(config, "run")
    try:
        await read_until(daemon.stderr, b"inbound.decided")  # it holds the mailbox now
        beside = await gateway_process(config, "run", "--once")
        out, err = await asyncio.wait_for(beside.communicate(), 60)
    finally:
        daemon.send_signal(signal.SIGTERM)
        await asyncio.wait_for(daemon.communicate(), 60)
    if db_url.startswith("sqlite"):
        assert beside.returncode == 1
        assert err.decode().strip().startswith("error: another case-gateway run (pid")
    else:
        assert beside.returncode == 0, err
        assert "left to the process that is reading them: mailbox test" in out.decode()
