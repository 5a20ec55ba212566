"""Outages that end and say so: with the IMAP server or the SMTP relay unreachable, `run --once`
gives up after `run.give_up_seconds` with one line naming the mailbox or relay and exits 1; the
daemon logs every failed attempt with the next one's time and the recovery, and SIGTERM ends
it within `run.drain_seconds` in an outage too. Real processes, a real closed port."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from structlog.testing import capture_logs

from gateway.app import App
from gateway.clock import FrozenClock
from gateway.errors import TemporaryTransportError
from gateway.outbound.sender import Sender
from gateway.outbound.transport import MemoryTransport
from testkit.mails import new_mail
from testkit.servers.smtp import RecordingSmtpServer
from testkit.world import add_customer, open_case, open_world, settings_for, write_config
from tests.integration.test_daemon_process import gateway_process, read_until
from tests.integration.test_inbound_reconnect import Server, fail_once, forever_until_decided, runner
from tests.integration.test_inbound_reconnect import app as app  # the memory mailbox's world
from tests.plugins.smtp import smtp_settings


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _settings(db_url: str, imap_account: Any, smtp_server: RecordingSmtpServer, *, imap_down: bool = False,
              smtp_down: bool = False) -> Any:
    box = imap_account.mailbox_settings(**({"port": closed_port()} if imap_down else {}))
    smtp = smtp_settings(smtp_server, **({"port": closed_port()} if smtp_down else {}))
    return settings_for(db_url, mailboxes=[box], smtp=smtp, run={"give_up_seconds": 3, "drain_seconds": 5})


async def test_run_once_gives_up_on_an_unreachable_imap_server(
    db_url: str, imap_account, smtp_server_thread: RecordingSmtpServer, clock: FrozenClock, tmp_path: Path
) -> None:
    settings = _settings(db_url, imap_account, smtp_server_thread, imap_down=True)
    config = write_config(tmp_path / "gateway.toml", settings)
    started = time.monotonic()
    proc = await gateway_process(config, "run", "--once")
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    elapsed = time.monotonic() - started
    assert proc.returncode == 1
    errors = [line for line in err.decode().splitlines() if line.startswith("error:")]
    port = settings.mailboxes[0].port
    assert len(errors) == 1
    assert errors[0].startswith(f"error: mailbox test (127.0.0.1:{port}): unreachable for ")
    assert err.decode().count("imap.connect_failed") >= 2  # each attempt logged
    assert elapsed < 3 + 10  # the bound, plus the interpreter's start


async def test_run_once_names_an_unreachable_smtp_relay(
    db_url: str, imap_account, smtp_server_thread: RecordingSmtpServer, clock: FrozenClock, tmp_path: Path
) -> None:
    settings = _settings(db_url, imap_account, smtp_server_thread, smtp_down=True)
    config = write_config(tmp_path / "gateway.toml", settings)
    async with open_world(settings, FrozenClock(datetime.now(UTC))) as app:  # the process's time
        await add_customer(app)
        await open_case(app)  # its acknowledgement is due
    proc = await gateway_process(config, "run", "--once")
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    assert "outbox: 0 sent, 1 retrying" in out.decode()
    errors = [line for line in err.decode().splitlines() if line.startswith("error:")]
    port = settings.smtp.port
    assert len(errors) == 1 and errors[0].startswith(f"error: SMTP relay: cannot connect to 127.0.0.1:{port}")
    assert "outbox.retry_scheduled" in err.decode() and "next_attempt_at=" in err.decode()


@pytest.mark.parametrize("command", [["run"], ["run", "--once"]])
async def test_sigterm_during_an_imap_outage_ends_at_once(
    db_url: str, imap_account, smtp_server_thread: RecordingSmtpServer, clock: FrozenClock, tmp_path: Path,
    command: list[str],
) -> None:
    settings = _settings(db_url, imap_account, smtp_server_thread, imap_down=True)
    settings = settings.model_copy(update={"run": settings.run.model_copy(update={"give_up_seconds": 600})})
    config = write_config(tmp_path / "gateway.toml", settings)
    proc = await gateway_process(config, *command)
    await read_until(proc.stderr, b"imap.connect_failed", count=2)
    proc.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert time.monotonic() - stopped < settings.run.drain_seconds
    assert proc.returncode == 0
    assert out.decode().strip().endswith("stopped" if command == ["run"] else "stopped before the end")


async def test_each_failed_connection_is_logged_with_the_next_attempt_and_the_recovery(app: App) -> None:
    server, waits = Server(), []
    server.mailbox.deliver(new_mail(sender="p@example.org", subject="Hello", text="Open one."))
    server.failures = [TemporaryTransportError("connection refused")] * 3
    logs = await forever_until_decided(app, server, waits)
    failed = [e for e in logs if e["event"] == "imap.connect_failed"]
    assert [e["attempt"] for e in failed] == [1, 2, 3]
    for event, wait in zip(failed, waits, strict=True):
        assert event["next_attempt_at"] and event["retry_in_seconds"] == round(wait, 1)
    (again,) = [e for e in logs if e["event"] == "imap.connected_again"]
    assert again["attempts"] == 4


async def test_a_failed_round_is_logged_with_its_retry_and_the_recovery(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, waits = Server(), []
    server.mailbox.deliver(new_mail(sender="p@example.org", subject="Hello", text="Open one."))
    fail_once(monkeypatch, OperationalError("SELECT 1", {}, ConnectionRefusedError("database down")))
    logs = await forever_until_decided(app, server, waits)
    events = [e["event"] for e in logs]
    assert events.index("inbound.round_failed") < events.index("inbound.retry_scheduled") \
        < events.index("inbound.recovered")
    (retry,) = [e for e in logs if e["event"] == "inbound.retry_scheduled"]
    assert retry["next_attempt_at"] and retry["retry_in_seconds"] == round(waits[0], 1)


async def test_a_stop_ends_the_wait_for_a_connection(app: App) -> None:
    """The daemon's stop ends a backoff at once (the sleep here would last an hour)."""
    server = Server()
    server.failures = [TemporaryTransportError("connection refused")] * 100
    waits: list[float] = []
    async with runner(app, server, waits) as run:
        run.sleep = lambda seconds: asyncio.sleep(3600)  # type: ignore[assignment]
        task = asyncio.ensure_future(run.run_forever())
        with capture_logs() as logs:
            while not any(e["event"] == "imap.connect_failed" for e in logs):
                await asyncio.sleep(0)
            run.stop()
            await asyncio.wait_for(task, 5)
    assert server.opens == 1


async def test_an_unreachable_relay_is_logged_per_message_with_its_retry_and_then_the_recovery(
    app: App, clock: FrozenClock
) -> None:
    await open_case(app)  # its acknowledgement is due
    transport = MemoryTransport()
    transport.fail(TemporaryTransportError("cannot connect to smtp.example:587: refused"))
    sender = Sender(app.engine, transport, app.settings.outbox, clock)
    failed_at = clock.now()
    with capture_logs() as logs:
        assert (await sender.run_until_empty()).retrying == 1
        assert sender.relay_failure == "SMTP relay: cannot connect to smtp.example:587: refused"
        clock.advance(timedelta(hours=2))
        assert (await sender.run_until_empty()).sent == 1
    events = [e["event"] for e in logs]
    assert events == ["outbox.send_failed", "outbox.retry_scheduled", "smtp.relay_recovered"]
    assert logs[1]["next_attempt_at"] > failed_at.isoformat()
    assert sender.relay_failure is None
