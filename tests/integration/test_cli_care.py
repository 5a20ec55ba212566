"""Care's case commands and the outbox commands through the real CLI, on both databases."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email import policy
from pathlib import Path

import pytest

from gateway.clock import FrozenClock
from testkit.servers.smtp import RecordingSmtpServer
from testkit.world import SECRET
from tests.cli_helpers import Gateway
from tests.plugins.smtp import smtp_settings

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def gw(db_url: str, smtp_server_thread: RecordingSmtpServer) -> Gateway:
    smtp = smtp_settings(smtp_server_thread)
    gw = Gateway(
        db_url,
        GATEWAY_REFERENCE__SECRET=SECRET,
        GATEWAY_SMTP__HOST=smtp.host,
        GATEWAY_SMTP__PORT=str(smtp.port),
        GATEWAY_SMTP__TLS="none",
        GATEWAY_MAIL__FROM_ADDRESS="care@vendor.example",
    )
    gw.ok("org", "add", "Acme Corp", "--tz", "Europe/Berlin", "--country", "DE")
    gw.ok("contact", "add", "ana@acme.example", "--org", "Acme Corp", "--name", "Ana Alves")
    return gw


def open_case(gw: Gateway, subject: str, severity: str) -> str:
    """``case open`` for Ana; the new case's number."""
    return gw.ok(
        "case",
        "open",
        "--org",
        "Acme Corp",
        "--contact",
        "ana@acme.example",
        "--subject",
        subject,
        "--severity",
        severity,
    ).out.strip()


def message(tmp_path: Path, text: str) -> str:
    path = tmp_path / f"message-{len(list(tmp_path.glob('message-*')))}.txt"
    path.write_text(text, encoding="utf-8")
    return str(path)


def sent_subjects(server: RecordingSmtpServer) -> list[str]:
    return [str(email.message_from_bytes(m.data, policy=policy.default)["Subject"]) for m in server.messages]


def test_case_lifecycle_sends_each_mail(
    gw: Gateway, tmp_path: Path, smtp_server_thread: RecordingSmtpServer
) -> None:
    number = open_case(gw, "Calls drop", "high")
    steps = [
        (
            ["case", "reply", number, "--message-file", message(tmp_path, "We are looking into it.")],
            "in_progress",
        ),
        (
            [
                "case",
                "request-info",
                number,
                "--message-file",
                message(tmp_path, "Please send the SIP logs."),
            ],
            "awaiting_info",
        ),
        (
            ["case", "propose-solution", number, "--message-file", message(tmp_path, "Update the trunk.")],
            "solution_proposed",
        ),
        (["case", "close", number], "closed"),
        (["case", "reopen", number], "in_progress"),
    ]
    for args, status in steps:
        data = gw.ok(*args, "--json").json()
        assert data["status"] == status
    shown = gw.ok("case", "show", number, "--json").json()
    assert [e["kind"] for e in shown["timeline"]] == [
        "opened",
        "care_reply",
        "info_requested",
        "solution_proposed",
        "closed",
        "reopened",
    ]
    assert shown["timeline"][2]["body"] == "Please send the SIP logs."
    queued = gw.ok("outbox", "list", "--json").json()
    assert [r["kind"] for r in reversed(queued)] == [
        "case_received",
        "care_reply",
        "info_requested",
        "solution_proposed",
        "case_closed",
        "case_reopened",
    ]
    assert all(r["status"] == "pending" for r in queued)
    assert "sent 6," in gw.ok("outbox", "send").out
    subjects = sent_subjects(smtp_server_thread)
    assert len(subjects) == 6 and all(f"[REF:{number}." in s for s in subjects)
    assert {r["status"] for r in gw.ok("outbox", "list", "--json").json()} == {"sent"}
    assert gw.ok("outbox", "list", "--status", "pending", "--json").json() == []


def test_reopen_refused_after_30_days(db_url: str, gw: Gateway) -> None:
    clock = FrozenClock(T0)
    gw.clock = clock
    number = open_case(gw, "Old", "low")
    gw.ok("case", "close", number)
    clock.advance(days=30)
    result = gw("case", "reopen", number)
    assert result.code == 1
    assert "closed 30 or more days ago and cannot be re-opened" in result.err
    clock.advance(seconds=-1)
    assert gw.ok("case", "reopen", number, "--json").json()["status"] == "in_progress"


def test_care_action_errors(gw: Gateway, tmp_path: Path) -> None:
    empty = message(tmp_path, "   ")
    assert "no case 00000042" in gw("case", "reply", "42", "--message-file", message(tmp_path, "hi")).err
    number = open_case(gw, "x", "low")
    assert gw("case", "reply", number, "--message-file", empty).err.strip() == "error: the message is empty"
    assert "is not closed" in gw("case", "reopen", number).err
    gw.ok("case", "close", number)
    closed = gw("case", "request-info", number, "--message-file", message(tmp_path, "logs?"))
    assert closed.code == 1 and "is closed; re-open it first" in closed.err


def test_outbox_retry(gw: Gateway, smtp_server_thread: RecordingSmtpServer) -> None:
    smtp_server_thread.refuse_recipient("ana@acme.example", "550 5.1.1 unknown user", times=1)
    open_case(gw, "x", "low")
    assert "failed 1" in gw.ok("outbox", "send").out
    [row] = gw.ok("outbox", "list", "--status", "failed", "--json").json()
    assert row["recipients"][0]["code"] == 550
    assert "queued again" in gw.ok("outbox", "retry", str(row["id"])).out
    assert "sent 1," in gw.ok("outbox", "send").out
    assert gw("outbox", "retry", str(row["id"])).err.strip().endswith("is sent; nothing to retry")
    assert "no outbox row 999" in gw("outbox", "retry", "999").err


def test_no_config_generates_and_keeps_a_reference_key(db_url: str) -> None:
    gw = Gateway(db_url)
    gw.ok("org", "add", "Acme Corp", "--tz", "UTC", "--country", "US")
    gw.ok("contact", "add", "ana@acme.example", "--org", "Acme Corp")
    open_case(gw, "a", "low")
    open_case(gw, "b", "low")
    subjects = [r["subject"] for r in gw.ok("outbox", "list", "--json").json()]
    tokens = sorted(s.split("]")[0] for s in subjects)
    assert tokens[0].startswith("[REF:00000001.") and tokens[1].startswith("[REF:00000002.")
