"""Times in notices: each list's zone with its UTC offset and the UTC time beside it, right
across three daylight-saving changes (New York 8 March, Berlin 29 March, Sydney 5 April 2026);
and the availability report for hand-computed months."""

from __future__ import annotations

from datetime import datetime

import pytest

from gateway.clock import FrozenClock
from testkit.servers.smtp import RecordingSmtpServer
from tests.cli_helpers import Gateway
from tests.notices_world import T0, flat_text, notices_gateway, parsed, scheduler_pass, to_of


@pytest.fixture
def gw(db_url: str, smtp_server_thread: RecordingSmtpServer) -> Gateway:
    return notices_gateway(db_url, smtp_server_thread, FrozenClock(T0))


def texts(server: RecordingSmtpServer, reference: str) -> dict[str, str]:
    return {to_of(m): flat_text(m) for m in parsed(server) if reference in str(m["Subject"])}


def test_a_window_across_europes_change_in_three_zones(
    gw: Gateway, smtp_server_thread: RecordingSmtpServer
) -> None:
    gw.ok("maintenance", "schedule", "--start", "2026-03-28T23:00Z", "--end", "2026-03-29T03:00Z",
          "--all", "--impact", "Calls may drop")
    scheduler_pass(gw, datetime.fromisoformat("2026-03-14T23:00Z"))
    sent = texts(smtp_server_thread, "MNT-2026-00001")
    berlin, new_york = sent["noc@acme.example"], sent["alerts@globex.example"]
    sydney = sent["it@initech.example"]
    assert "Start: Sun 29 Mar 2026, 00:00 CET (Sat 28 Mar 2026, 23:00 UTC)" in berlin
    assert "End: Sun 29 Mar 2026, 05:00 CEST (03:00 UTC)" in berlin
    assert "The clocks change during this window: CET at the start, CEST at the end." in berlin
    assert "Start: Sat 28 Mar 2026, 19:00 EDT (23:00 UTC)" in new_york
    assert "End: Sat 28 Mar 2026, 23:00 EDT (Sun 29 Mar 2026, 03:00 UTC)" in new_york
    assert "Start: Sun 29 Mar 2026, 10:00 AEDT (Sat 28 Mar 2026, 23:00 UTC)" in sydney
    assert "End: Sun 29 Mar 2026, 14:00 AEDT (03:00 UTC)" in sydney
    assert "clocks change" not in new_york and "clocks change" not in sydney


def test_an_incident_across_new_yorks_change(gw: Gateway, smtp_server_thread: RecordingSmtpServer) -> None:
    gw.clock.set(datetime.fromisoformat("2026-03-08T06:50Z"))  # type: ignore[union-attr]
    gw.ok("incident", "open", "--all", "--summary", "Chat down", "--impact", "No chats")
    gw.clock.set(datetime.fromisoformat("2026-03-08T07:20Z"))  # type: ignore[union-attr]
    gw.ok("incident", "restore", "INC-2026-00001", "--notes", "Reload the desktop", "--affected-agents", "5",
          "--started", "2026-03-08T01:50", "--restored", "2026-03-08T03:10", "--tz", "America/New_York")
    gw.ok("outbox", "send")
    def text(to: str, kind: str) -> str:
        [found] = [flat_text(m) for m in parsed(smtp_server_thread)
                   if to_of(m) == to and kind in str(m["Subject"])]
        return found

    assert "Detected: Sun 8 Mar 2026, 01:50 EST (06:50 UTC)" in text("alerts@globex.example", "alert")
    restored = text("alerts@globex.example", "restored")
    assert "Incident started: Sun 8 Mar 2026, 01:50 EST (06:50 UTC)" in restored
    assert "Service restored: Sun 8 Mar 2026, 03:10 EDT (07:10 UTC)" in restored
    assert "Service restored: Sun 8 Mar 2026, 08:10 CET (07:10 UTC)" in text("noc@acme.example", "restored")


def test_a_window_across_sydneys_change(gw: Gateway, smtp_server_thread: RecordingSmtpServer) -> None:
    gw.clock.set(datetime.fromisoformat("2026-04-03T09:00Z"))  # type: ignore[union-attr]
    gw.ok("maintenance", "emergency", "--start", "2026-04-04T15:30Z", "--end", "2026-04-04T16:30Z",
          "--orgs", "Initech", "--impact", "Voice restarts")
    gw.ok("outbox", "send")
    [sydney] = texts(smtp_server_thread, "MNT-2026-00001").values()
    assert "Start: Sun 5 Apr 2026, 02:30 AEDT (Sat 4 Apr 2026, 15:30 UTC)" in sydney
    assert "End: Sun 5 Apr 2026, 02:30 AEST (Sat 4 Apr 2026, 16:30 UTC)" in sydney
    assert "The clocks change during this window: AEDT at the start, AEST at the end." in sydney
    refused = gw("maintenance", "emergency", "--start", "2026-04-05T02:30", "--end", "2026-04-05T04:00",
                 "--tz", "Australia/Sydney", "--orgs", "Initech", "--impact", "x")
    assert refused.err.strip() == ("error: --start: 2026-04-05T02:30 happens twice in Australia/Sydney "
                                   "(clocks go back); give an offset")


def restore(gw: Gateway, reference: str, agents: int, started: str, restored: str) -> None:
    gw.ok("incident", "restore", reference, "--notes", "n", "--affected-agents", str(agents),
          "--started", started, "--restored", restored)


def test_availability_for_hand_computed_months(gw: Gateway) -> None:
    gw.clock.set(datetime.fromisoformat("2026-05-01T00:00Z"))  # type: ignore[union-attr]
    for _ in range(3):
        gw.ok("incident", "open", "--orgs", "Acme Corp", "--summary", "s", "--impact", "i")
    gw.ok("incident", "open", "--orgs", "Globex", "--summary", "s", "--impact", "i")
    restore(gw, "INC-2026-00001", 50, "2026-02-10T10:00Z", "2026-02-10T12:00Z")  # 50 x 120 min
    restore(gw, "INC-2026-00002", 200, "2026-02-20T08:00Z", "2026-02-20T08:30Z")  # 200 x 30 min
    restore(gw, "INC-2026-00003", 10, "2026-02-28T23:00Z", "2026-03-01T01:00Z")  # 60 min in each month
    restore(gw, "INC-2026-00004", 200, "2026-02-11T00:00Z", "2026-02-11T10:00Z")  # Globex: not Acme's
    report = gw.ok("report", "availability", "--org", "Acme Corp", "--month", "2026-02", "--json").json()
    lost = 50 * 120 + 200 * 30 + 10 * 60  # 12,600 agent-minutes, 200 agents
    assert report["agent_minutes_lost"] == lost
    assert report["availability_guide_percent"] == round(100 - 100 * lost / (200 * 43_200), 4)  # 99.8542
    assert report["calendar_month_minutes"] == 28 * 1440
    assert report["availability_calendar_percent"] == round(100 - 100 * lost / (200 * 40_320), 4)  # 99.8438
    assert [i["reference"] for i in report["incidents"]] == [
        "INC-2026-00001", "INC-2026-00002", "INC-2026-00003"]
    march = gw.ok("report", "availability", "--org", "Acme Corp", "--month", "2026-03", "--json").json()
    assert march["agent_minutes_lost"] == 600 and march["calendar_month_minutes"] == 31 * 1440
    text = gw.ok("report", "availability", "--org", "Acme Corp", "--month", "2026-02").out
    assert "availability (43,200-minute month, the guide's): 99.8542%" in text
    assert "availability (40,320-minute calendar month): 99.8438%" in text
    assert gw("report", "availability", "--org", "Acme Corp", "--month", "2026-13").err.strip() == (
        "error: not a month: '2026-13' (like 2026-11)")
    gw.ok("org", "add", "Tiny", "--tz", "UTC", "--country", "US")
    assert gw("report", "availability", "--org", "Tiny", "--month", "2026-02").err.strip() == (
        "error: Tiny has no total agent count (org add --agents N)")
