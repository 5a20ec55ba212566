"""The mailbox runner over the in-memory IMAP twin: a dropped connection is replaced (with
randomised backoff while opening fails), a permanent error ends ``run --once`` but only slows
the daemon's loop down, nothing is skipped, and a UIDVALIDITY change does not make a message
take effect twice. (A real Dovecot restarted during IDLE: test_daemon_idle.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from structlog.testing import capture_logs

from gateway.app import App
from gateway.cases import get_case, timeline
from gateway.clock import FrozenClock
from gateway.config import MailboxSettings
from gateway.daemon import Daemon
from gateway.errors import PermanentTransportError, TemporaryTransportError
from gateway.inbound.imap.memory import MemoryMailbox
from gateway.inbound.loop import runner as runner_module
from gateway.inbound.loop import store
from gateway.inbound.loop.runner import MailboxRunner
from testkit.mails import answers, inbound_rows, new_mail, reply, sent_mail
from testkit.world import ANA, add_customer, open_case, open_world, settings_for

FOLDERS = ("INBOX", "Processed", "Refused", "Quarantine")


async def case_timeline(app: App, number: str | None) -> tuple[object, list[Any]]:
    async with app.sessions() as session:
        case = await get_case(session, number or "")
        return case, list(await timeline(session, case))


@pytest.fixture
async def app(db_url: str, clock: FrozenClock) -> AsyncIterator[App]:
    box = {"name": "memory", "host": "127.0.0.1", "tls": "none", "username": "care@vendor.example",
           "password": "x"}
    async with open_world(settings_for(db_url, mailboxes=[box]), clock) as app:
        await add_customer(app)
        yield app


class Server:
    """Hands out the twin as "a new connection", failing the opens it is told to."""

    def __init__(self) -> None:
        self.mailbox = MemoryMailbox(FOLDERS)
        self.opens = 0
        self.failures: list[Exception] = []

    async def open(self, settings: MailboxSettings) -> MemoryMailbox:
        self.opens += 1
        if self.failures:
            raise self.failures.pop(0)
        return self.mailbox.reopen()


@asynccontextmanager
async def runner(app: App, server: Server, waits: list[float]) -> AsyncIterator[MailboxRunner]:
    """The daemon's runner for the one mailbox, on ``server``, with backoff waits recorded."""
    daemon = Daemon(app)
    await daemon._build()
    made = daemon.runners[0]

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    run = MailboxRunner(made.settings, made.decider, server.open, app.clock,
                        max_message_bytes=made.max_message_bytes, sleep=sleep)
    try:
        yield run
    finally:
        await run.drop()
        await run.lock.release()


def fail_once(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    """The round's first database call (the UIDVALIDITY check) raises ``error`` once."""
    real = store.check_uidvalidity
    failures = [error]

    async def flaky(*args: Any, **kwargs: Any) -> int | None:
        if failures:
            raise failures.pop()
        return await real(*args, **kwargs)

    monkeypatch.setattr(store, "check_uidvalidity", flaky)


async def forever_until_decided(app: App, server: Server, waits: list[float]) -> list[dict[str, Any]]:
    """The daemon's loop until a batch is decided; the log events it wrote."""
    async with runner(app, server, waits) as run:
        run.on_decided = run.stop
        with capture_logs() as logs:
            await asyncio.wait_for(run.run_forever(), 30)
    return logs


async def test_a_dropped_connection_is_replaced_and_no_message_is_skipped(app: App) -> None:
    server, waits = Server(), []
    for n in range(3):
        server.mailbox.deliver(new_mail(sender=f"p{n}@example.org", subject=f"Attempt {n}", text="Open one."))
    async with runner(app, server, waits) as run:
        server.mailbox.fail_next("fetch")
        stats = await run.run_until_empty()
        assert (stats.decided, server.opens, run.client) == (0, 1, None)  # the broken one is dropped

        stats = await run.run_until_empty()
        assert (stats.decided, stats.moved, server.opens) == (3, 3, 2)
    assert waits == []  # opening worked at once: no backoff
    assert [r.disposition for r in await inbound_rows(app)] == ["refused_new_case"] * 3
    assert server.mailbox.messages("INBOX") == {} and len(server.mailbox.messages("Refused")) == 3


async def test_failing_opens_back_off_then_the_round_goes_on(app: App) -> None:
    server, waits = Server(), []
    server.mailbox.deliver(new_mail(sender="p@example.org", subject="Attempt", text="Open one."))
    server.failures = [TemporaryTransportError("connection refused")] * 3
    async with runner(app, server, waits) as run:
        stats = await run.run_until_empty()
    assert (stats.decided, server.opens) == (1, 4)
    assert len(waits) == 3 and all(0 <= w <= 60 for w in waits)


async def test_a_permanent_error_is_raised_without_retrying(app: App) -> None:
    server, waits = Server(), []
    server.failures = [PermanentTransportError("authentication failed")]
    async with runner(app, server, waits) as run:
        with pytest.raises(PermanentTransportError, match="authentication"):
            await run.run_until_empty()
    assert (server.opens, waits) == (1, [])


async def test_a_uidvalidity_change_does_not_apply_a_message_twice(app: App) -> None:
    case = await open_case(app)
    server, waits = Server(), []
    mail = reply(await sent_mail(app, case.id), sender=ANA, text="Logs attached.")
    server.mailbox.deliver(mail)
    async with runner(app, server, waits) as run:
        assert (await run.run_until_empty()).decided == 1
        # the server rebuilt its index: the same message is back in INBOX, new UIDVALIDITY
        server.mailbox.deliver(mail)
        server.mailbox.reset_uidvalidity()
        await run.drop()
        assert (await run.run_until_empty()).decided == 1
    rows = await inbound_rows(app)
    assert [(r.uidvalidity, r.disposition) for r in rows] == [(1, "applied"), (2, "duplicate")]
    assert await answers(app, rows[1].id) == []
    _, events = await case_timeline(app, case.number)
    assert [e.kind for e in events].count("customer_reply") == 1


async def test_the_daemon_loop_retries_a_failed_round_after_a_backoff(app: App) -> None:
    """Mail may be waiting: a failed round is tried again after a short randomised backoff,
    not after the poll interval, and never on a connection without a selected folder."""
    server, waits = Server(), []
    server.mailbox.deliver(new_mail(sender="p@example.org", subject="Attempt", text="Open one."))
    server.mailbox.fail_next("fetch", times=2)
    async with runner(app, server, waits) as run:
        run.on_decided = run.stop
        await asyncio.wait_for(run.run_forever(), 30)
    assert len(waits) == 2 and all(0 <= w <= 60 for w in waits)  # one backoff per failure
    assert run.settings.poll_seconds not in waits
    assert server.opens == 3
    assert [r.disposition for r in await inbound_rows(app)] == ["refused_new_case"]
    assert server.mailbox.messages("Refused") and server.mailbox.messages("INBOX") == {}


async def test_the_daemon_loop_waits_for_changes_on_the_rounds_connection(app: App) -> None:
    server, waits = Server(), []
    async with runner(app, server, waits) as run:
        waiting = asyncio.create_task(run.run_forever())
        while "wait_for_changes" not in server.mailbox.calls:
            await asyncio.sleep(0)  # a yield to the loop, not a wait for time
        run.stop()
        await asyncio.wait_for(waiting, 30)
    assert server.opens == 1 and waits == []
    assert server.mailbox.calls[:2] == ["ensure_folders", "select"]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_a_standby_replica_opens_no_connection_and_asks_again_within_standby_seconds(
    app: App,
) -> None:
    server, waits, other_waits = Server(), [], []
    server.mailbox.deliver(new_mail(sender="p@example.org", subject="Attempt", text="Open one."))
    async with runner(app, server, other_waits) as other, runner(app, server, waits) as run:
        assert await other.lock.hold()

        async def sleep(seconds: float) -> None:  # the other replica goes away meanwhile
            waits.append(seconds)
            assert server.opens == 0
            await other.lock.release()

        run.sleep = sleep
        run.on_decided = run.stop
        await asyncio.wait_for(run.run_forever(), 30)
    standby = min(run.settings.standby_seconds, run.settings.poll_seconds)
    assert len(waits) == 1 and standby / 2 <= waits[0] <= standby  # randomised: replicas do not ask in step
    assert server.opens == 1
    assert [r.disposition for r in await inbound_rows(app)] == ["refused_new_case"]


async def test_the_daemon_loop_outlives_a_database_error(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """The database went away for a moment: the round is tried again after a backoff, and
    the mail is decided once it is back (the loop does not die with the error)."""
    server, waits = Server(), []
    server.mailbox.deliver(new_mail(sender="p@example.org", subject="Attempt", text="Open one."))
    fail_once(monkeypatch, OperationalError("SELECT 1", {}, Exception("database is locked")))
    await forever_until_decided(app, server, waits)
    assert len(waits) == 1 and 0 <= waits[0] <= 60
    assert [r.disposition for r in await inbound_rows(app)] == ["refused_new_case"]


async def test_the_daemon_loop_outlives_a_permanent_error_with_a_longer_backoff(app: App) -> None:
    """A refused login ends ``run --once``; the daemon's loop logs it as an error and tries
    again, at most RETRY_PERMANENT_SECONDS apart, so a fixed password is picked up."""
    server, waits = Server(), []
    server.failures = [PermanentTransportError("authentication failed")]
    server.mailbox.deliver(new_mail(sender="p@example.org", subject="Attempt", text="Open one."))
    logs = await forever_until_decided(app, server, waits)
    assert len(waits) == 1 and 0 <= waits[0] <= runner_module.RETRY_PERMANENT_SECONDS
    failed = [e for e in logs if e["event"] == "imap.round_failed"]
    assert [(e["log_level"], e["temporary"]) for e in failed] == [("error", False)]
    assert [r.disposition for r in await inbound_rows(app)] == ["refused_new_case"]


async def test_the_daemon_loop_outlives_an_unexpected_error(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug that raises in a round is logged with its traceback and the round tried again
    later; the loop does not die with it (the mailbox would go unwatched)."""
    server, waits = Server(), []
    server.mailbox.deliver(new_mail(sender="p@example.org", subject="Attempt", text="Open one."))
    fail_once(monkeypatch, RuntimeError("a bug"))
    logs = await forever_until_decided(app, server, waits)
    assert len(waits) == 1 and 0 <= waits[0] <= runner_module.RETRY_PERMANENT_SECONDS
    failed = [e for e in logs if e["event"] == "inbound.round_failed_unexpectedly"]
    assert len(failed) == 1 and failed[0]["log_level"] == "error" and failed[0]["exc_info"]
    assert [r.disposition for r in await inbound_rows(app)] == ["refused_new_case"]
