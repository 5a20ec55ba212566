"""Business hours per organisation, the targets in `case show` and `report slt`, and the one
re-open rule, through the real CLI on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.clock import FrozenClock
from testkit.servers.smtp import RecordingSmtpServer
from testkit.world import SECRET
from tests.cli_helpers import Gateway
from tests.plugins.smtp import smtp_settings

FRIDAY_EVENING = datetime(2026, 11, 6, 15, 30, tzinfo=UTC)  # 16:30 in Berlin


@pytest.fixture
def gw(db_url: str, smtp_server_thread: RecordingSmtpServer) -> Gateway:
    smtp = smtp_settings(smtp_server_thread)  # run --once sends what is due (and fails without a relay)
    gw = Gateway(db_url, FrozenClock(FRIDAY_EVENING), GATEWAY_REFERENCE__SECRET=SECRET,
                 GATEWAY_SMTP__HOST=smtp.host, GATEWAY_SMTP__PORT=str(smtp.port), GATEWAY_SMTP__TLS="none")
    gw.ok("org", "add", "Acme Corp", "--tz", "Europe/Berlin", "--country", "DE", "--subdivision", "BE")
    gw.ok("org", "add", "Globex", "--tz", "America/New_York", "--country", "US", "--hours", "08:00-18:00")
    gw.ok("contact", "add", "ana@acme.example", "--org", "Acme Corp")
    gw.ok("contact", "add", "gil@globex.example", "--org", "Globex")
    return gw


def open_case(gw: Gateway, org: str, contact: str, severity: str) -> str:
    return gw.ok("case", "open", "--org", org, "--contact", contact, "--subject", "Calls drop",
                 "--severity", severity).out.strip()


def test_business_hours_are_set_per_organisation(gw: Gateway) -> None:
    hours = {o["name"]: o["hours"] for o in gw.ok("org", "list", "--json").json()}
    assert hours == {"Acme Corp": "09:00-17:00", "Globex": "08:00-18:00"}
    updated = gw.ok("org", "update", "Acme Corp", "--hours", "7:30-16:00", "--json").json()
    assert updated["hours"] == "07:30-16:00"
    refused = gw("org", "update", "Acme Corp", "--hours", "18:00-08:00")
    assert refused.code == 1 and "start before" in refused.err
    assert gw("org", "add", "Initech", "--tz", "UTC", "--country", "US", "--hours", "nine to five").code == 1
    assert "no organisation" in gw("org", "update", "Nobody", "--hours", "08:00-17:00").err


def test_case_show_and_report_slt(gw: Gateway, tmp_path: Path) -> None:
    assert isinstance(gw.clock, FrozenClock)
    acme = open_case(gw, "Acme Corp", "ana@acme.example", "high")
    globex = open_case(gw, "Globex", "gil@globex.example", "critical")
    shown = gw.ok("case", "show", acme, "--json").json()
    assert shown["targets"]["response"] == {
        "target": "2 business hours", "state": "running", "by": "2d 18h00m",
        "due_at": "2026-11-09T09:30:00+00:00"}  # 30 min on Friday, then Monday 09:00-10:30 Berlin
    assert shown["targets"]["resolution"]["target"] == "2 business days"
    assert shown["followup"]["running"] is False
    text = gw.ok("case", "show", globex).out
    assert "response     by phone" in text and "resolution   24 hours: running" in text
    gw.clock.set(datetime(2026, 11, 9, 10, 0, tzinfo=UTC))  # Monday 11:00 in Berlin
    report = gw.ok("report", "slt", "--json").json()
    assert [(r["case"], r["response"]["state"]) for r in report] == [(acme, "breached"), (globex, "by_phone")]
    assert report[0]["response"]["by"] == "0h30m"
    assert report[1]["resolution"] == {"target": "24 hours", "state": "breached", "by": "1d 18h30m",
                                       "due_at": "2026-11-07T15:30:00+00:00"}
    gw.ok("case", "close", globex)
    breached = gw.ok("report", "slt", "--breached", "--org", "Acme Corp", "--json").json()
    assert [r["case"] for r in breached] == [acme]
    assert gw.ok("report", "slt", "--org", "Globex", "--json").json()[0]["case"] == globex
    assert "breached by 0h30m" in gw.ok("report", "slt").out
    note = tmp_path / "note.txt"
    note.write_text("Please send the logs.", encoding="utf-8")
    gw.ok("case", "request-info", acme, "--message-file", str(note))
    shown = gw.ok("case", "show", acme, "--json").json()
    assert shown["targets"]["response"]["state"] == "breached"  # answered, 30 minutes late
    assert shown["targets"]["resolution"]["state"] == "paused"  # waiting for the customer
    assert shown["followup"] | {"started_at": None} == {
        "running": True, "cycle": 1, "step": 0, "started_at": None, "next_step": "reminder 1",
        "due_at": "2026-11-11T10:00:00+00:00", "due_local": "2026-11-11T11:00:00+01:00"}
    assert "cycle 1: reminder 1 due 2026-11-11T11:00:00+01:00" in gw.ok("case", "show", acme).out


def test_an_automatically_closed_case_reopens_within_30_days_only(gw: Gateway, tmp_path: Path) -> None:
    """`case reopen` and the inbound policy share cases.reopenable; the closing mail names the
    same deadline."""
    assert isinstance(gw.clock, FrozenClock)
    number = open_case(gw, "Acme Corp", "ana@acme.example", "low")
    note = tmp_path / "note.txt"
    note.write_text("Does the fix work?", encoding="utf-8")
    gw.ok("case", "propose-solution", number, "--message-file", str(note))
    gw.ok("run", "--once", "--now", "2026-11-30T12:00:00+01:00")  # 10 business days have passed
    shown = gw.ok("case", "show", number, "--json").json()
    assert shown["close_reason"] == "auto_followup"
    closed_at = datetime.fromisoformat(shown["closed_at"])
    gw.clock.set(closed_at + timedelta(days=30))
    assert "cannot be re-opened" in gw("case", "reopen", number).err
    gw.clock.set(closed_at + timedelta(days=30) - timedelta(seconds=1))
    assert gw.ok("case", "reopen", number, "--json").json()["status"] == "in_progress"
