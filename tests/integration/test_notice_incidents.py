"""Incidents through the real CLI and ``run --once --now``, on both databases: the alert, a
mail to every recipient at least every 30 minutes, the warning to ops, the all-clear, and
one current update after an outage."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest

from gateway.clock import FrozenClock
from testkit.servers.smtp import RecordingSmtpServer
from tests.cli_helpers import Gateway
from tests.notices_world import T0, flat_text, notices_gateway, parsed, scheduler_pass, to_of

OPS = "care-management@vendor.example"
RECIPIENTS = {"noc@acme.example", "ops@acme.example", "alerts@globex.example"}


@pytest.fixture
def gw(db_url: str, smtp_server_thread: RecordingSmtpServer) -> Gateway:
    gw = notices_gateway(db_url, smtp_server_thread, FrozenClock(T0))
    opened = gw.ok("incident", "open", "--orgs", "Acme Corp,Globex", "--summary", "Calls drop",
                   "--impact", "Agents are disconnected", "--services", "Voice",
                   "--recommendation", "Use the Emergency Desktop")
    assert opened.out.strip() == "INC-2026-00001 opened"
    return gw


def minutes(at: datetime) -> int:
    return int((at - T0).total_seconds() // 60)


def timeline(server: RecordingSmtpServer) -> dict[str, list[tuple[int, str]]]:
    """Recipient -> [(minutes after T0, subject kind)] in the order sent."""
    found: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for message in parsed(server):
        kind = str(message["Subject"]).split("] ", 1)[1].split(":")[0]
        found[to_of(message)].append((minutes(parsedate_to_datetime(str(message["Date"]))), kind))
    return found


def run_incident(gw: Gateway, until: int, posts: dict[int, str]) -> None:
    """Passes every 5 minutes up to ``until``; ops post ``posts[minute]`` before that pass;
    the all-clear at ``until``."""
    for minute in range(5, until + 1, 5):
        at = T0 + timedelta(minutes=minute)
        gw.clock.set(at)  # type: ignore[union-attr]
        if minute in posts:
            gw.ok("incident", "update", "INC-2026-00001", "--status", "identified",
                  "--message", posts[minute])
        if minute == until:
            gw.ok("incident", "restore", "INC-2026-00001", "--notes", "Log agents in again",
                  "--affected-agents", "40", "--started", T0.isoformat(), "--restored", at.isoformat())
        scheduler_pass(gw, at)


def test_every_30_minutes_without_news_for_three_hours(
    gw: Gateway, smtp_server_thread: RecordingSmtpServer
) -> None:
    run_incident(gw, 180, {})
    mails = timeline(smtp_server_thread)
    expected = [(0, "Incident alert"), *[(m, "Incident update #" + str(m // 30)) for m in range(30, 180, 30)],
                (180, "Service restored")]
    for recipient in RECIPIENTS:
        assert mails[recipient] == expected
    assert [m for m, _ in mails[OPS]] == [25, 55, 85, 115, 145, 175]
    assert set(mails) == RECIPIENTS | {OPS}
    warning = next(m for m in parsed(smtp_server_thread) if to_of(m) == OPS)
    assert "incident update INC-2026-00001" in flat_text(warning)
    update = next(m for m in parsed(smtp_server_thread) if "#1" in str(m["Subject"]))
    assert "no new information since the last update" in flat_text(update)
    scheduler_pass(gw, T0 + timedelta(hours=5))  # the all-clear ended it
    assert len(smtp_server_thread.messages) == 3 * 7 + 6


def test_ops_updates_restart_the_clock(gw: Gateway, smtp_server_thread: RecordingSmtpServer) -> None:
    run_incident(gw, 180, {20: "A faulty load balancer", 70: "Failing over"})
    mails = timeline(smtp_server_thread)
    for recipient in RECIPIENTS:
        assert [m for m, _ in mails[recipient]] == [0, 20, 50, 70, 100, 130, 160, 180]
        gaps = [b - a for (a, _), (b, _) in zip(mails[recipient], mails[recipient][1:], strict=False)]
        assert max(gaps) <= 30
    assert [m for m, _ in mails[OPS]] == [45, 95, 125, 155]
    repeated = [m for m in parsed(smtp_server_thread) if "#5" in str(m["Subject"])]
    assert repeated and all("No new information since our last update. The latest status: Failing over"
                            in flat_text(m) for m in repeated)
    assert "Status: Identified" in flat_text(repeated[0])


def test_a_daemon_that_was_down_sends_one_current_update(
    gw: Gateway, smtp_server_thread: RecordingSmtpServer
) -> None:
    scheduler_pass(gw, T0)
    scheduler_pass(gw, T0 + timedelta(minutes=130))  # down from 0 to 130
    scheduler_pass(gw, T0 + timedelta(minutes=135))
    mails = timeline(smtp_server_thread)
    for recipient in RECIPIENTS:
        assert mails[recipient] == [(0, "Incident alert"), (130, "Incident update #1")]
    assert OPS not in mails  # no stale warning either
    [row] = gw.ok("incident", "list", "--json").json()
    assert row["next_mail_at"] == (T0 + timedelta(minutes=160)).isoformat()


def test_restore_records_the_impact_and_the_rca_date(gw: Gateway) -> None:
    friday = datetime.fromisoformat("2026-03-06T16:00:00+00:00")
    gw.clock.set(friday + timedelta(hours=1))  # type: ignore[union-attr]
    result = gw.ok("incident", "restore", "INC-2026-00001", "--notes", "n", "--affected-agents", "40",
                   "--started", "2026-03-06T15:00", "--restored", "2026-03-06T17:00", "--tz", "Europe/Berlin")
    assert result.out.strip() == (
        "INC-2026-00001 restored; root cause analysis due 2026-03-13 15:00 UTC")
    [row] = gw.ok("incident", "list", "--json").json()
    assert row["state"] == "restored" and row["next_mail_at"] is None
    shown = gw.ok("incident", "show", "INC-2026-00001", "--json").json()
    # 5 business days: Friday 17:00 in Berlin -> Friday 13 March 17:00 CET (16:00 UTC); in
    # New York 11:00 EST -> 11:00 EDT after the clocks went forward (15:00 UTC), the earlier
    assert shown["rca_due_at"] == "2026-03-13T15:00:00+00:00"
    assert [m["kind"] for m in shown["mails"]] == ["first", "restored"]
    assert shown["starts_at"] == "2026-03-06T14:00:00+00:00"  # 15:00 in Berlin
    assert "state: restored" in gw.ok("incident", "show", "INC-2026-00001").out
    again = gw("incident", "update", "INC-2026-00001", "--status", "monitoring", "--message", "x")
    assert (again.code, again.err.strip()) == (1, "error: INC-2026-00001 is already restored")


@pytest.mark.parametrize(("args", "error"), [
    (["update", "INC-2026-00001", "--status", "fixed", "--message", "x"],
     "error: unknown status 'fixed' (use investigating, identified, monitoring; "
     "`incident restore` gives the all-clear)"),
    (["update", "INC-2026-00077", "--status", "identified", "--message", "x"],
     "error: no incident with reference INC-2026-00077"),
    (["restore", "INC-2026-00001", "--notes", "n", "--affected-agents", "1",
      "--started", "2026-03-02T10:00Z", "--restored", "2026-03-02T09:30Z"],
     "error: --restored must come after --started"),
    (["open", "--orgs", "Umbrella", "--summary", "s", "--impact", "i"],
     "error: no organisation named 'Umbrella'"),
])
def test_bad_input(gw: Gateway, args: list[str], error: str) -> None:
    before = len(gw.ok("outbox", "list", "--json").json())
    result = gw("incident", *args)
    assert (result.code, result.err.strip()) == (1, error)
    assert len(gw.ok("outbox", "list", "--json").json()) == before
