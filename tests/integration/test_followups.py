"""The auto follow-up end to end: `run --once --now` passes through the real CLI, with real
Dovecot for the customer's mail and the recording SMTP server for ours, on both databases.

Acme's zone is Europe/Berlin (holidays of Bavaria). Care asks on Monday 2 November 2026 at 10:00
local time: reminder 1 is due Wednesday 4 November 10:00, reminder 2 Monday 9 November 10:00,
the closure Monday 16 November 10:00 (no holiday in between)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.clock import FrozenClock
from testkit.mails import bounce, out_of_office, parse, reply, text_of
from testkit.servers.smtp import Received, RecordingSmtpServer
from testkit.world import ANA, settings_for, write_config
from tests.cli_helpers import Gateway
from tests.plugins.smtp import smtp_settings

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
BEFORE_STEP_1 = "2026-11-04T09:59:00+01:00"
STEP_1, STEP_2, STEP_3 = "2026-11-04T10:00:00+01:00", "2026-11-09T10:00:00+01:00", "2026-11-16T10:00:00+01:00"
ASKED = "Please send the SIP logs of the dropped calls."
CARL = "carl@acme.example"  # a contact of Acme's, not designated: his mail is refused


class World:
    def __init__(self, gw: Gateway, smtp: RecordingSmtpServer, imap, tmp_path: Path) -> None:
        self.gw, self.smtp, self.imap, self.tmp_path = gw, smtp, imap, tmp_path

    def request_info(self, number: str, text: str = ASKED) -> None:
        path = self.tmp_path / f"request-{len(list(self.tmp_path.glob('request-*')))}.txt"
        path.write_text(text, encoding="utf-8")
        self.gw.ok("case", "request-info", number, "--message-file", str(path))

    def run(self, now: str) -> str:
        return self.gw.ok("run", "--once", "--now", now).out

    def mails(self, subject_part: str) -> list[Received]:
        return [m for m in self.smtp.messages if subject_part in str(parse(m.data)["Subject"])]

    def case(self, number: str) -> dict:
        return self.gw.ok("case", "show", number, "--json").json()


@pytest.fixture
def world(db_url: str, imap_account, smtp_server_thread: RecordingSmtpServer, tmp_path: Path) -> World:
    settings = settings_for(db_url, mailboxes=[imap_account.mailbox_settings()],
                            smtp=smtp_settings(smtp_server_thread))
    gw = Gateway(db_url, FrozenClock(T0))
    gw.env["GATEWAY_CONFIG"] = str(write_config(tmp_path / "gateway.toml", settings))
    gw.ok("org", "add", "Acme Corp", "--tz", "Europe/Berlin", "--country", "DE", "--subdivision", "BY")
    gw.ok("contact", "add", ANA, "--org", "Acme Corp", "--name", "Ana Alves")
    gw.ok("contact", "add", CARL, "--org", "Acme Corp", "--not-designated")
    return World(gw, smtp_server_thread, imap_account, tmp_path)


def open_case(world: World, contact: str = ANA) -> str:
    return world.gw.ok("case", "open", "--org", "Acme Corp", "--contact", contact, "--subject",
                       "Calls drop after 30 seconds", "--severity", "high").out.strip()


def test_reminders_and_closure_each_once_to_the_contact_with_the_token(world: World) -> None:
    number = open_case(world)
    world.request_info(number)
    assert "scheduler: 0 due items" in world.run(BEFORE_STEP_1)
    assert len(world.smtp.messages) == 2  # the acknowledgement and the request
    for when, subject, step in ((STEP_1, "Reminder - your response", 1),
                                (STEP_2, "Second reminder", 2), (STEP_3, "Closed automatically", 3)):
        assert "scheduler: 1 due items" in world.run(when)
        assert "scheduler: 0 due items" in world.run(when)  # the same instant again: nothing new
        [mail] = world.mails(subject)
        message = parse(mail.data)
        assert mail.rcpt_tos == (ANA,)
        assert f"[REF:{number}." in str(message["Subject"])
        assert message["Auto-Submitted"] == "auto-generated"
        body = text_of(message)
        assert ASKED in body and f"REF:{number}." in body
        assert f"https://support.vendor.example/cases/{number}" in body
        assert parse(mail.data)["Date"] is not None
        shown = world.case(number)
        assert shown["followup"]["step"] == step
    assert len(world.smtp.messages) == 5
    shown = world.case(number)
    assert shown["status"] == "closed" and shown["close_reason"] == "auto_followup"
    assert shown["closed_at"] == "2026-11-16T09:00:00+00:00"
    kinds = [e["kind"] for e in shown["timeline"]]
    assert kinds[-4:] == ["followup_sent", "followup_sent", "followup_sent", "closed"]
    assert shown["followup"]["running"] is False


def test_a_customer_reply_stops_the_timer_an_out_of_office_does_not(world: World) -> None:
    """Neither an out-of-office nor a refused mail (from a contact who is not designated) is a
    customer response; the designated contact's reply is."""
    number = open_case(world)
    world.request_info(number)
    world.run(STEP_1)
    [reminder] = world.mails("Reminder - your response")
    world.imap.append(out_of_office(reminder.data, sender=ANA))
    world.imap.append(reply(reminder.data, sender=CARL, text="Ana is away, here is something."))
    assert "2 decided" in world.run("2026-11-04T11:00:00+01:00")
    dispositions = sorted(r["disposition"] for r in world.gw.ok("inbound", "list", "--json").json())
    assert dispositions == ["auto_reply_ignored", "refused_unauthorized"]
    assert world.case(number)["status"] == "awaiting_info"
    world.run(STEP_2)
    [second] = world.mails("Second reminder")
    world.imap.append(reply(second.data, sender=ANA, text="Here are the logs you asked for."))
    assert "1 decided" in world.run("2026-11-09T12:00:00+01:00")
    shown = world.case(number)
    assert shown["status"] == "in_progress" and shown["followup"]["running"] is False
    assert "scheduler: 0 due items" in world.run(STEP_3)
    assert world.mails("Closed automatically") == []
    assert world.gw.ok("schedule", "--until", "2026-12-31T00:00:00+00:00", "--json").json() == []
    # care asks again: a second cycle, counted from the new request, with keys of its own
    world.gw.clock.set(datetime(2026, 11, 10, 9, 0, tzinfo=UTC))
    world.request_info(number, "Please also send the trunk configuration.")
    world.run("2026-11-12T10:00:00+01:00")
    reminders = world.mails("Reminder - your response")
    assert len(reminders) == 2 and "trunk configuration" in text_of(parse(reminders[1].data))
    assert world.case(number)["followup"]["cycle"] == 2


def test_catch_up_after_an_outage_sends_only_the_closing_mail(world: World) -> None:
    number = open_case(world)
    world.request_info(number)
    world.run(BEFORE_STEP_1)
    assert "scheduler: 1 due items" in world.run("2026-11-18T10:00:00+01:00")  # 12 business days on
    assert world.mails("Reminder") == [] and len(world.mails("Closed automatically")) == 1
    shown = world.case(number)
    assert shown["status"] == "closed"
    assert [e["kind"] for e in shown["timeline"]].count("followup_sent") == 1


def test_a_reminder_to_a_bounced_address_is_not_sent(world: World) -> None:
    number = open_case(world)
    world.request_info(number)
    world.run(BEFORE_STEP_1)
    [request] = [m for m in world.smtp.messages if "Information" in str(parse(m.data)["Subject"])
                 or ASKED in text_of(parse(m.data))]
    world.imap.append(bounce(request.data, recipient=ANA))
    world.run("2026-11-03T10:00:00+01:00")
    assert "scheduler: 1 due items" in world.run(STEP_1)
    assert world.mails("Reminder") == []
    timeline = world.case(number)["timeline"]
    assert timeline[-1]["kind"] == "followup_not_sent"
    assert f"{ANA} bounced permanently" in timeline[-1]["body"]


def test_schedule_lists_what_later_passes_send(world: World) -> None:
    number = open_case(world)
    world.request_info(number)
    listed = world.gw.ok("schedule", "--until", "2026-11-30T00:00:00+01:00", "--json").json()
    assert [(r["kind"], r["case"], r["recipient"], r["due_local"], r["due_utc"]) for r in listed] == [
        ("followup_1", number, ANA, "2026-11-04T10:00:00+01:00", "2026-11-04T09:00:00+00:00"),
        ("followup_2", number, ANA, "2026-11-09T10:00:00+01:00", "2026-11-09T09:00:00+00:00"),
        ("followup_3_closed", number, ANA, "2026-11-16T10:00:00+01:00", "2026-11-16T09:00:00+00:00"),
    ]
    short = world.gw.ok("schedule", "--until", STEP_2, "--org", "Acme Corp").out
    assert "followup_1" in short and "followup_2" in short and "followup_3_closed" not in short
    assert world.gw.ok("schedule", "--org", "Nobody Inc", "--json").json() == []
    for when in (STEP_1, STEP_2, STEP_3):  # what the listing said is what the passes send
        world.run(when)
    sent = [str(parse(m.data)["Subject"]) for m in world.smtp.messages][2:]
    assert [s.split(": ", 1)[1].split(" - ")[0] for s in sent] == [
        "Reminder", "Second reminder", "Closed automatically"]
