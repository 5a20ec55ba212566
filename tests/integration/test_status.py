"""``case-gateway status`` and ``status --check`` against a real Dovecot and SMTP server, on
both databases: never polled, polled, quarantine, outbox backlog, a mailbox that refuses the
login, servers that do not answer."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from gateway.clock import FrozenClock
from testkit.mails import DEEP_MAIL, new_mail
from testkit.servers.dovecot import free_port
from testkit.servers.smtp import RecordingSmtpServer
from testkit.world import settings_for, write_config
from tests.cli_helpers import Gateway
from tests.plugins.smtp import smtp_settings


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


def gateway(tmp_path: Path, db_url: str, clock: FrozenClock, mailbox, smtp) -> Gateway:
    settings = settings_for(db_url, mailboxes=[mailbox], smtp=smtp, limits={"max_mime_depth": 2})
    gw = Gateway(db_url, clock)
    gw.env["GATEWAY_CONFIG"] = str(write_config(tmp_path / "gateway.toml", settings))
    return gw


def test_status_through_a_mailbox_life(
    tmp_path: Path, db_url: str, clock: FrozenClock, imap_account, smtp_server_thread: RecordingSmtpServer,
) -> None:
    gw = gateway(tmp_path, db_url, clock, imap_account.mailbox_settings(), smtp_settings(smtp_server_thread))
    gw.ok("org", "add", "Acme Corp", "--tz", "UTC", "--country", "US")
    gw.ok("contact", "add", "ana@acme.example", "--org", "Acme Corp")

    fresh = gw.ok("status", "--json").json()
    assert fresh["mailboxes"] == [{"name": "test", "connected": None, "last_poll_at": None, "waiting": None,
                                   "last_error": None, "last_error_at": None}]
    assert fresh["quarantined"] == 0 and fresh["schema"]["up_to_date"] is True
    assert fresh["outbox"]["oldest_waiting_seconds"] is None
    check = gw("status", "--check")
    assert check.code == 1
    assert [line for line in check.out.splitlines() if line.startswith("problem:")] == [
        "problem: mailbox test: never polled"]

    imap_account.append(DEEP_MAIL)
    imap_account.append(new_mail(sender="someone@example.org", subject="Hello", text="Open a case"))
    gw.ok("run", "--once")
    polled = gw.ok("status", "--json").json()
    assert polled["mailboxes"][0]["connected"] is True
    assert polled["mailboxes"][0]["last_poll_at"] == clock.now().isoformat()
    assert polled["mailboxes"][0]["waiting"] == 0  # the last round found the folder empty
    assert polled["outbox"]["by_status"]["sent"] == 1 and polled["quarantined"] == 1
    check = gw("status", "--check", "--json")
    assert check.code == 1
    assert check.json()["problems"] == [
        "quarantine: 1 message(s) need review (case-gateway quarantine list)"]

    number = gw.ok("case", "open", "--org", "Acme Corp", "--contact", "ana@acme.example", "--subject",
                   "Drops", "--severity", "low").out.strip()  # its acknowledgement waits in the outbox
    (tmp_path / "ask.txt").write_text("Which version do you run?\n")
    gw.ok("case", "request-info", number, "--message-file", str(tmp_path / "ask.txt"))
    reminder, *later = gw.ok("status", "--json").json()["upcoming"]  # the follow-up timer's mails
    assert reminder["kind"] == "followup_1" and reminder["subject"] == number
    assert reminder["recipient"] == "ana@acme.example"
    assert reminder["due_at"] == (clock.now() + timedelta(days=2)).isoformat()  # Monday + 2 business days
    assert [r["kind"] for r in later] == ["followup_2"]  # 5 business days: the next Monday
    clock.advance(timedelta(minutes=20))
    problems = gw("status", "--check", "--json").json()["problems"]
    assert problems == [
        "mailbox test: not polled for 20 minutes",
        "outbox: mail waiting for 20 minutes (2 pending, 0 sending)",
        "quarantine: 1 message(s) need review (case-gateway quarantine list)",
    ]
    text = gw("status").out
    assert "test             connected, last poll" in text and "quarantine: 1" in text
    assert "oldest waiting 20 min 0 s" in text
    assert f"next: {reminder['due_at']}  followup_1  {number}  -> ana@acme.example" in text


def test_status_of_a_mailbox_that_refuses_the_login(
    tmp_path: Path, db_url: str, clock: FrozenClock, imap_account, smtp_server_thread: RecordingSmtpServer,
) -> None:
    box = imap_account.mailbox_settings(password="wrong")
    gw = gateway(tmp_path, db_url, clock, box, smtp_settings(smtp_server_thread))
    assert gw("run", "--once").code != 0
    [mailbox] = gw.ok("status", "--json").json()["mailboxes"]
    assert mailbox["connected"] is False and mailbox["last_poll_at"] is None
    assert mailbox["last_error_at"] == clock.now().isoformat()
    assert "authentication" in mailbox["last_error"].lower() or "login" in mailbox["last_error"].lower()
    check = gw("status", "--check")
    assert check.code == 1
    lines = [line for line in check.out.splitlines() if line.startswith("problem:")]
    assert lines[0].startswith(f"problem: mailbox test: cannot log in to {box.host}:{box.port}: ")
    assert lines[1].startswith("problem: mailbox test: never polled (last error: ")
    assert "NOT CONNECTED" in check.out


def test_status_check_servers_down(tmp_path: Path, db_url: str, clock: FrozenClock, imap_account) -> None:
    imap_port, smtp_port = free_port(), free_port()
    box = imap_account.mailbox_settings(port=imap_port, timeout_seconds=5.0)
    smtp = settings_for(db_url).smtp.model_copy(
        update={"host": "127.0.0.1", "port": smtp_port, "tls": "none"})
    gw = gateway(tmp_path, db_url, clock, box, smtp)
    check = gw("status", "--check", "--json")
    assert check.code == 1
    problems = check.json()["problems"]
    assert problems[0].startswith(f"mailbox test: cannot log in to {box.host}:{imap_port}: ")
    assert problems[1].startswith(f"relay 127.0.0.1:{smtp_port}: ")
    assert problems[2] == "mailbox test: never polled"
