"""Distribution lists through the real CLI, on both databases: add, list, remove, resume,
kinds, and suspension after permanent failures on several notices."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from gateway.clock import FrozenClock
from testkit.servers.smtp import RecordingSmtpServer
from tests.cli_helpers import Gateway
from tests.notices_world import T0, flat_text, notices_gateway, parsed, to_of


@pytest.fixture
def gw(db_url: str, smtp_server_thread: RecordingSmtpServer) -> Gateway:
    return notices_gateway(db_url, smtp_server_thread, FrozenClock(T0))


def advisory(gw: Gateway, tmp_path: Path, title: str, *targets: str) -> str:
    details = tmp_path / "details.txt"
    details.write_text("A defect in the softphone drops calls on transfer.", encoding="utf-8")
    return gw.ok("advisory", "send", "--kind", "product", "--title", title, "--details-file",
                 str(details), "--link", "https://status.vendor.example/a",
                 *(targets or ("--all",))).out.strip()


def test_add_list_remove_and_their_errors(gw: Gateway) -> None:
    gw.ok("dl", "add", "NOC-Night@Acme.example", "--org", "acme corp", "--tz", "Asia/Tokyo",
          "--kinds", "incident,maintenance")
    rows = {r["address"]: r for r in gw.ok("dl", "list", "--org", "Acme Corp", "--json").json()}
    assert rows["noc-night@acme.example"]["timezone"] == "Asia/Tokyo"
    assert rows["noc-night@acme.example"]["kinds"] == "incident,maintenance"
    assert rows["noc@acme.example"]["timezone"] == "Europe/Berlin"  # the organisation's zone
    assert {r["suspended"] for r in rows.values()} == {False}
    errors = {
        ("dl", "add", "noc@acme.example", "--org", "Acme Corp"):
            "error: noc@acme.example is already a distribution list of Acme Corp",
        ("dl", "add", "x@acme.example", "--org", "Nobody"): "error: no organisation named 'Nobody'",
        ("dl", "add", "x@acme.example", "--org", "Acme Corp", "--tz", "Europe/Atlantis"):
            "error: unknown time zone 'Europe/Atlantis' (use an IANA name like Europe/Berlin)",
        ("dl", "add", "x@acme.example", "--org", "Acme Corp", "--kinds", "gossip"):
            "error: unknown notice kind 'gossip' (use maintenance, incident, advisory)",
        ("dl", "add", "not an address", "--org", "Acme Corp"):
            "error: not an email address: 'not an address'",
        ("dl", "add", "jörg@acme.example", "--org", "Acme Corp"):
            "error: not a deliverable email address: 'jörg@acme.example'",
        ("dl", "remove", "x@acme.example", "--org", "Acme Corp"):
            "error: x@acme.example is not a distribution list of Acme Corp",
        ("dl", "resume", "noc@acme.example"): "error: noc@acme.example is not suspended",
    }
    for args, error in errors.items():
        result = gw(*args)
        assert (result.code, result.err.strip()) == (1, error), args
    gw.ok("dl", "remove", "noc@acme.example", "--org", "Acme Corp")
    assert "noc@acme.example" not in gw.ok("dl", "list").out


def test_kinds_choose_what_a_list_receives(
    gw: Gateway, tmp_path: Path, smtp_server_thread: RecordingSmtpServer
) -> None:
    gw.ok("dl", "add", "incidents-only@globex.example", "--org", "Globex", "--kinds", "incident")
    advisory(gw, tmp_path, "Softphone defect", "--orgs", "Globex")
    gw.ok("outbox", "send")
    assert [to_of(m) for m in parsed(smtp_server_thread)] == ["alerts@globex.example"]


def test_suspended_after_permanent_failures_then_resumed(
    gw: Gateway, tmp_path: Path, smtp_server_thread: RecordingSmtpServer
) -> None:
    smtp_server_thread.refuse_recipient("alerts@globex.example", "550 5.1.1 no such user")
    for n in range(3):
        assert advisory(gw, tmp_path, f"Defect {n}", "--orgs", "Globex") == f"ADV-2026-0000{n + 1} sent"
        assert "failed 1" in gw.ok("outbox", "send").out
    [row] = gw.ok("dl", "list", "--org", "Globex", "--json").json()
    assert (row["failures"], row["suspended"]) == (3, False)
    advisory(gw, tmp_path, "Defect 3", "--orgs", "Globex")
    gw.ok("outbox", "send")
    [row] = gw.ok("dl", "list", "--org", "Globex", "--json").json()
    assert row["suspended"] is True and row["suspended_at"] == T0.isoformat()
    last = parsed(smtp_server_thread)[-1]
    assert to_of(last) == "care-management@vendor.example"
    assert str(last["Subject"]) == "Distribution list suspended: alerts@globex.example (Globex)"
    assert "550 5.1.1 no such user" in flat_text(last)
    shown = gw.ok("notice", "show", "ADV-2026-00004", "--json").json()
    assert shown["deliveries"] == [] and shown["mails"][0]["outcome"] == "no recipient"
    failed = gw.ok("notice", "show", "ADV-2026-00001", "--json").json()["deliveries"]
    assert [(d["address"], d["status"], d["code"]) for d in failed] == [
        ("alerts@globex.example", "failed", 550)]
    smtp_server_thread.reset_failures()
    gw.clock.advance(days=2)  # type: ignore[union-attr]
    assert gw.ok("dl", "resume", "alerts@globex.example").out.strip() == (
        "distribution list alerts@globex.example resumed")
    advisory(gw, tmp_path, "Defect 4", "--orgs", "Globex")
    assert gw.clock.now() == T0 + timedelta(days=2)  # type: ignore[union-attr]
    gw.ok("outbox", "send")
    assert to_of(parsed(smtp_server_thread)[-1]) == "alerts@globex.example"
    [row] = gw.ok("dl", "list", "--org", "Globex", "--json").json()
    assert (row["failures"], row["suspended"]) == (0, False)


def test_advisory_bad_input(gw: Gateway, tmp_path: Path) -> None:
    missing = gw("advisory", "send", "--kind", "security", "--title", "t", "--details-file",
                 str(tmp_path / "nope.txt"), "--link", "https://x.example", "--all")
    assert missing.code == 1 and missing.err.startswith("error: --details-file: cannot read")
    details = tmp_path / "d.txt"
    details.write_text("d", encoding="utf-8")
    bad_link = gw("advisory", "send", "--kind", "security", "--title", "t", "--details-file",
                  str(details), "--link", "javascript:alert(1)", "--all")
    assert bad_link.err.strip() == "error: --link must be an http(s) URL: 'javascript:alert(1)'"
    assert gw.ok("outbox", "list", "--json").json() == []
