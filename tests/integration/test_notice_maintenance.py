"""Planned and emergency maintenance through the real CLI, the real SMTP fixture and the
notices' scheduler sources, on both databases."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from icalendar import Calendar

from gateway.clock import FrozenClock
from testkit.servers.smtp import RecordingSmtpServer
from tests.cli_helpers import Gateway
from tests.notices_world import T0, flat_text, notices_gateway, parsed, scheduler_pass, to_of

ALL = {"noc@acme.example", "ops@acme.example", "alerts@globex.example", "it@initech.example"}


@pytest.fixture
def gw(db_url: str, smtp_server_thread: RecordingSmtpServer) -> Gateway:
    return notices_gateway(db_url, smtp_server_thread, FrozenClock(T0))


def schedule(gw: Gateway, start: datetime, *extra: str, hours: int = 2) -> tuple[int, str]:
    result = gw("maintenance", "schedule", "--start", start.isoformat(),
                "--end", (start + timedelta(hours=hours)).isoformat(), "--impact", "Calls may drop",
                *(extra or ("--all",)))
    return result.code, result.out.strip() or result.err.strip()


def test_the_7_day_rule_at_its_edge(gw: Gateway, smtp_server_thread: RecordingSmtpServer) -> None:
    code, message = schedule(gw, T0 + timedelta(days=7) - timedelta(minutes=1))
    assert code == 1
    assert message == ("error: planned maintenance must start at least 7 days ahead; "
                       "for shorter notice use `maintenance emergency`")
    assert gw.ok("maintenance", "list", "--json").json() == []  # nothing half-written
    code, message = schedule(gw, T0 + timedelta(days=7))
    assert (code, message) == (0, "MNT-2026-00001 sent")
    gw.ok("outbox", "send")
    assert {to_of(m) for m in parsed(smtp_server_thread)} == ALL


def test_14_days_sent_at_once_and_later_held_until_exactly_14_days_before(
    gw: Gateway, db_url: str, smtp_server_thread: RecordingSmtpServer
) -> None:
    assert schedule(gw, T0 + timedelta(days=14)) == (0, "MNT-2026-00001 sent")
    just_over = T0 + timedelta(days=14, minutes=1)
    assert schedule(gw, just_over, "--orgs", "Initech") == (
        0, f"MNT-2026-00002 held until {(T0 + timedelta(minutes=1)).isoformat()}")
    start = T0 + timedelta(days=30)
    held_until = start - timedelta(days=14)
    assert schedule(gw, start) == (0, f"MNT-2026-00003 held until {held_until.isoformat()}")
    gw.ok("outbox", "send")
    assert len(smtp_server_thread.messages) == 4
    states = {r["reference"]: r["state"] for r in gw.ok("maintenance", "list", "--json").json()}
    assert states == {"MNT-2026-00001": "sent", "MNT-2026-00002": "held", "MNT-2026-00003": "held"}
    scheduler_pass(gw, T0 + timedelta(minutes=1))
    assert to_of(parsed(smtp_server_thread)[-1]) == "it@initech.example"
    scheduler_pass(gw, held_until - timedelta(seconds=1))
    assert len(smtp_server_thread.messages) == 5
    scheduler_pass(gw, held_until)
    held = [m for m in parsed(smtp_server_thread) if "MNT-2026-00003" in str(m["Subject"])]
    assert {to_of(m) for m in held} == ALL
    scheduler_pass(gw, held_until + timedelta(hours=1))  # a second pass sends nothing
    assert len(smtp_server_thread.messages) == 9


def test_change_and_cancel_reach_exactly_the_first_recipients(
    gw: Gateway, smtp_server_thread: RecordingSmtpServer
) -> None:
    start = T0 + timedelta(days=10)
    schedule(gw, start, "--orgs", "Acme Corp,Globex")
    gw.ok("dl", "add", "late@acme.example", "--org", "Acme Corp")  # after the first notice
    new_start = start + timedelta(hours=3)
    assert gw.ok("maintenance", "change", "mnt-2026-00001", "--start", new_start.isoformat(),
                 "--end", (new_start + timedelta(hours=1)).isoformat(),
                 "--reason", "Moved to a quieter hour.").out.strip() == "MNT-2026-00001 changed"
    assert gw.ok("maintenance", "cancel", "MNT-2026-00001").out.strip() == "MNT-2026-00001 cancelled"
    gw.ok("outbox", "send")
    first = {"noc@acme.example", "ops@acme.example", "alerts@globex.example"}
    by_subject: dict[str, set[str]] = {}
    for message in parsed(smtp_server_thread):
        by_subject.setdefault(str(message["Subject"]).split(":")[0], set()).add(to_of(message))
    assert by_subject == {
        "[MNT-2026-00001] Planned maintenance": first,
        "[MNT-2026-00001] Maintenance changed": first,
        "[MNT-2026-00001] Maintenance cancelled": first,
    }
    changed = next(m for m in parsed(smtp_server_thread) if "changed" in str(m["Subject"]))
    assert "Moved to a quieter hour." in flat_text(changed)
    again = gw("maintenance", "cancel", "MNT-2026-00001")
    assert (again.code, again.err.strip()) == (1, "error: MNT-2026-00001 is already cancelled")
    assert gw.ok("maintenance", "list", "--json").json()[0]["state"] == "cancelled"


def calendars(server: RecordingSmtpServer) -> dict[str, Calendar]:
    """The iCalendar part of each mail, by the mail's kind in its subject (the sender's
    connections deliver in any order)."""
    found = {}
    for message in parsed(server):
        kind = str(message["Subject"]).split("] ", 1)[1].split(":")[0]
        for part in message.walk():
            if part.get_content_type() == "text/calendar":
                found[kind] = Calendar.from_ical(part.get_payload(decode=True))
    return found


def test_the_invitation_moves_and_drops_the_event(
    gw: Gateway, smtp_server_thread: RecordingSmtpServer
) -> None:
    start = T0 + timedelta(days=10)
    schedule(gw, start, "--orgs", "Globex")
    later = start + timedelta(days=1)
    gw.ok("maintenance", "change", "MNT-2026-00001", "--start", later.isoformat(),
          "--end", (later + timedelta(hours=2)).isoformat())
    gw.ok("maintenance", "cancel", "MNT-2026-00001")
    gw.ok("outbox", "send")
    found = calendars(smtp_server_thread)
    first, moved, dropped = (found[k] for k in ("Planned maintenance", "Maintenance changed",
                                                 "Maintenance cancelled"))
    events = [c.walk("VEVENT")[0] for c in (first, moved, dropped)]
    assert len({str(e["UID"]) for e in events}) == 1
    assert [int(e["SEQUENCE"]) for e in events] == [0, 1, 2]
    assert [str(c["METHOD"]) for c in (first, moved, dropped)] == ["PUBLISH", "PUBLISH", "CANCEL"]
    assert str(events[2]["STATUS"]) == "CANCELLED"
    assert events[0].decoded("DTSTART") == start and events[0].decoded("DTSTART").utcoffset() == timedelta(0)
    assert f"DTSTART:{start:%Y%m%dT%H%M%S}Z".encode() in first.to_ical()  # UTC, no zone table
    assert events[0].decoded("DTEND") == start + timedelta(hours=2)
    assert events[1].decoded("DTSTART") == later


def test_reminder_before_the_start_then_states(
    gw: Gateway, db_url: str, smtp_server_thread: RecordingSmtpServer
) -> None:
    start = T0 + timedelta(days=8)
    schedule(gw, start, "--orgs", "Initech")
    gw.ok("outbox", "send")
    scheduler_pass(gw, start - timedelta(hours=24, seconds=1))
    assert len(smtp_server_thread.messages) == 1
    scheduler_pass(gw, start - timedelta(hours=24))
    subjects = [str(m["Subject"]) for m in parsed(smtp_server_thread)]
    assert subjects[1].startswith("[MNT-2026-00001] Reminder: maintenance")
    assert gw.ok("maintenance", "list", "--json").json()[0]["state"] == "reminded"
    gw.clock.set(start)  # type: ignore[union-attr]
    assert gw.ok("maintenance", "list", "--json").json()[0]["state"] == "in progress"
    gw.clock.set(start + timedelta(hours=2))  # type: ignore[union-attr]
    assert gw.ok("maintenance", "list", "--json").json()[0]["state"] == "completed"
    late = gw("maintenance", "change", "MNT-2026-00001", "--impact", "none")
    assert late.code == 1 and "is over" in late.err


def test_a_held_notice_whose_window_passed_is_reported_not_sent(
    gw: Gateway, db_url: str, smtp_server_thread: RecordingSmtpServer
) -> None:
    start = T0 + timedelta(days=20)
    schedule(gw, start)
    scheduler_pass(gw, start + timedelta(days=1))  # the daemon was down all along
    assert smtp_server_thread.messages == []
    [row] = gw.ok("maintenance", "list", "--json").json()
    assert row["state"] == "missed"
    shown = gw.ok("notice", "show", "MNT-2026-00001", "--json").json()
    assert shown["mails"][0]["outcome"] == "not sent: the window had passed when it was due"


def test_emergency_goes_out_at_once(gw: Gateway, smtp_server_thread: RecordingSmtpServer) -> None:
    start = T0 + timedelta(hours=5)
    result = gw.ok("maintenance", "emergency", "--start", "2026-03-02T15:00", "--end", "2026-03-02T16:00",
                   "--tz", "Europe/Berlin", "--orgs", "Acme Corp", "--impact", "Chat unavailable")
    assert result.out.strip() == "MNT-2026-00001 sent"
    gw.ok("outbox", "send")
    messages = parsed(smtp_server_thread)
    assert {to_of(m) for m in messages} == {"noc@acme.example", "ops@acme.example"}
    assert str(messages[0]["Subject"]).startswith("[MNT-2026-00001] Emergency maintenance")
    assert "Mon 2 Mar 2026, 15:00 CET (14:00 UTC)" in flat_text(messages[0])
    assert start.hour == 14


@pytest.mark.parametrize(("args", "error"), [
    (["--start", "2026-03-20T10:00+00:00", "--end", "2026-03-20T09:00+00:00", "--all"],
     "error: the end must come after the start"),
    (["--start", "2026-03-20T10:00", "--end", "2026-03-20T11:00", "--all"],
     "error: --start: '2026-03-20T10:00' has no UTC offset; add one or give --tz"),
    (["--start", "2026-03-20T10:00", "--end", "2026-03-20T11:00", "--tz", "Mars/Base", "--all"],
     "error: unknown time zone 'Mars/Base' (use an IANA name like Europe/Berlin)"),
    (["--start", "2026-03-29T02:30", "--end", "2026-03-29T05:00", "--tz", "Europe/Berlin", "--all"],
     "error: --start: 2026-03-29T02:30 does not exist in Europe/Berlin (clocks go forward)"),
    (["--start", "2026-03-20T10:00Z", "--end", "2026-03-20T11:00Z", "--orgs", "Acme Corp,Nobody"],
     "error: no organisation named 'Nobody'"),
    (["--start", "2026-03-20T10:00Z", "--end", "2026-03-20T11:00Z"],
     "error: give either --orgs A,B or --all"),
    (["--start", "tomorrow", "--end", "2026-03-20T11:00Z", "--all"],
     "error: --start: not an ISO 8601 time: 'tomorrow' (like 2026-12-01T22:00+01:00)"),
])
def test_bad_input_is_one_line_and_writes_nothing(gw: Gateway, args: list[str], error: str) -> None:
    result = gw("maintenance", "schedule", "--impact", "x", *args)
    assert (result.code, result.err.strip()) == (1, error)
    assert gw.ok("maintenance", "list", "--json").json() == []
    assert gw.ok("outbox", "list", "--json").json() == []


def test_unknown_references(gw: Gateway) -> None:
    missing = gw("notice", "show", "MNT-2026-00099")
    assert missing.err.strip() == "error: no notice with reference MNT-2026-00099"
    assert gw("maintenance", "cancel", "bogus").err.strip() == (
        "error: not a notice reference: 'bogus' (like MNT-2026-00042)")
    gw.ok("incident", "open", "--all", "--summary", "s", "--impact", "i")
    assert gw("maintenance", "cancel", "INC-2026-00001").err.strip() == (
        "error: no maintenance with reference INC-2026-00001")


def test_schedule_lists_the_notices_to_come(gw: Gateway) -> None:
    start = T0 + timedelta(days=30)
    schedule(gw, start, "--orgs", "Globex")
    gw.ok("incident", "open", "--orgs", "Initech", "--summary", "s", "--impact", "i")
    until = (start + timedelta(days=1)).isoformat()
    rows = gw.ok("schedule", "--until", until, "--json").json()
    got = [(r["due_utc"], r["kind"], r["case"], r["recipient"]) for r in rows]
    assert got == [
        ((T0 + timedelta(minutes=30)).isoformat(), "incident_update", "INC-2026-00001", "it@initech.example"),
        ((start - timedelta(days=14)).isoformat(), "maintenance_planned", "MNT-2026-00001",
         "alerts@globex.example"),
        ((start - timedelta(hours=24)).isoformat(), "maintenance_reminder", "MNT-2026-00001",
         "alerts@globex.example"),
    ]
    assert rows[1]["due_local"] == "2026-03-18T05:00:00-04:00"  # New York, after its DST change
    assert gw.ok("schedule", "--until", until, "--org", "Initech", "--json").json()[0]["case"] == (
        "INC-2026-00001")
