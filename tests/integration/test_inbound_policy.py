"""DESIGN.md's "Policy on inbound mail", row by row, end to end: mail APPENDed to a real Dovecot,
one daemon run (IMAP, pipeline, outbox, a real SMTP server), then the case, the inbound row,
the answers as the SMTP server got them, and the IMAP folder each message ended in.

Forged, tampered or ambiguous references, the same mail delivered twice, hostile input and
the ways a reply finds its case: test_inbound_adversarial.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.app import App
from gateway.cases import get_case, timeline
from gateway.clock import FrozenClock
from gateway.daemon import Daemon, RunSummary
from gateway.identity import REPLY_MARKER
from gateway.inbound.loop.release import release
from gateway.inbound.policy.context import Services
from gateway.models import Attachment, Case, CaseEvent, Outbox, OutboxRecipient, SecurityEvent
from testkit.mails import (
    answers,
    bounce,
    delivered,
    inbound_rows,
    new_mail,
    out_of_office,
    parse,
    reply,
    sent_mail,
    stored_raw,
    text_of,
    token_of,
)
from testkit.servers.smtp import RecordingSmtpServer
from testkit.world import ANA, BOB, STRANGER, add_customer, open_case, open_world, settings_for
from tests.plugins.smtp import smtp_settings

TRUSTED_MX = "mx.vendor.example"


@asynccontextmanager
async def world(db_url: str, imap_account: Any, smtp_server: RecordingSmtpServer, clock: FrozenClock,
                **limits: Any) -> AsyncIterator[App]:
    settings = settings_for(
        db_url, mailboxes=[imap_account.mailbox_settings()], smtp=smtp_settings(smtp_server),
        inbound={"parse_workers": 0, "trusted_authserv_ids": [TRUSTED_MX]}, limits=limits,
    )
    async with open_world(settings, clock) as app:
        await add_customer(app)
        yield app


@pytest.fixture
async def app(db_url: str, imap_account: Any, smtp_server: RecordingSmtpServer,
              clock: FrozenClock) -> AsyncIterator[App]:
    async with world(db_url, imap_account, smtp_server, clock) as app:
        yield app


async def run(app: App) -> RunSummary:
    """One daemon pass over the real servers (the transport is SMTP, from the settings)."""
    return await Daemon(app).run_once()


def folders(imap_account: Any) -> dict[str, int]:
    """How many messages each of the gateway's folders holds."""
    return {f: len(imap_account.messages(f)) for f in ("INBOX", "Processed", "Refused", "Quarantine")}


async def case_state(app: App, number: str) -> tuple[Case, list[CaseEvent]]:
    async with app.sessions() as session:
        case = await get_case(session, number)
        return case, list(await timeline(session, case))


async def security_events(app: App) -> list[SecurityEvent]:
    async with app.sessions() as session:
        return list((await session.scalars(select(SecurityEvent).order_by(SecurityEvent.id))).all())


def body_of(data: bytes) -> str:
    text = text_of(parse(data))
    assert text, "no text part"
    return text


async def one_answer(app: App, smtp_server: RecordingSmtpServer, inbound_id: int, kind: str,
                     to: str) -> tuple[Outbox, bytes]:
    """The single answer to an inbound message: its row, and the bytes the SMTP server got."""
    rows = await answers(app, inbound_id)
    assert [r.kind for r in rows] == [kind]
    got = delivered(smtp_server, rows[0])
    assert got.rcpt_tos == (to,)
    assert rows[0].status == "sent"
    return rows[0], got.data


# --- no valid reference ----------------------------------------------------------------------


async def test_new_case_attempt_is_refused_with_one_polite_reply(app: App, imap_account, smtp_server) -> None:
    attempt = new_mail(sender=ANA, subject="IVR menu is down for all callers",
                       text="Please open a case: our IVR plays silence since 08:00.")
    imap_account.append(attempt)
    await run(app)

    (row,) = await inbound_rows(app)
    assert row.disposition == "refused_new_case", row.trail
    assert await stored_raw(app, row) == attempt
    assert row.case_id is None
    async with app.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Case)) == 0
    _, data = await one_answer(app, smtp_server, row.id, "new_case_refused", ANA)
    msg = parse(data)
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["In-Reply-To"] == parse(attempt)["Message-ID"]
    assert "did not open a case" in msg["Subject"]
    body = body_of(data)
    assert "https://support.vendor.example" in body  # the portal
    assert "+1-555-0100" in body  # the phone numbers
    assert "cannot be opened by email" in body
    assert folders(imap_account) == {"INBOX": 0, "Processed": 0, "Refused": 1, "Quarantine": 0}


async def test_new_case_replies_are_rate_limited_per_sender(
    db_url: str, imap_account, smtp_server, clock: FrozenClock
) -> None:
    async with world(db_url, imap_account, smtp_server, clock, auto_replies_per_sender_per_day=2) as app:
        imap_account.append_many(
            new_mail(sender=STRANGER, subject=f"Attempt {n}", text="Open a case for me.") for n in range(3)
        )
        await run(app)
        rows = await inbound_rows(app)
        assert [r.disposition for r in rows] == ["refused_new_case"] * 3
        assert [len(await answers(app, r.id)) for r in rows] == [1, 1, 0]
        assert "rate limit" in rows[2].trail[-1]["detail"], rows[2].trail
        assert [m.rcpt_tos for m in smtp_server.messages] == [(STRANGER,)] * 2

        clock.advance(hours=24)
        imap_account.append(new_mail(sender=STRANGER, subject="Attempt 4", text="Open a case for me."))
        await run(app)
        latest = (await inbound_rows(app))[-1]
        assert latest.disposition == "refused_new_case"
        await one_answer(app, smtp_server, latest.id, "new_case_refused", STRANGER)
        assert len(smtp_server.messages) == 3
        assert folders(imap_account) == {"INBOX": 0, "Processed": 0, "Refused": 4, "Quarantine": 0}


# --- a designated contact's reply to an open case --------------------------------------------


async def test_designated_reply_is_applied_without_quotes_and_with_attachments(
    app: App, imap_account, smtp_server
) -> None:
    case = await open_case(app)
    original = await sent_mail(app, case.id)
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    text = "Here are the logs you asked for. The drops start at 30.0 seconds exactly."
    mail = reply(original, sender=ANA, text=text, attachments=[("sip-trace.pdf", "application/pdf", pdf)])
    imap_account.append(mail)
    await run(app)

    (row,) = await inbound_rows(app)
    assert row.disposition == "applied", row.trail
    assert row.case_id == case.id
    assert await stored_raw(app, row) == mail  # the raw message is kept beside the stripped text
    _, events = await case_state(app, case.number)
    update = events[-1]
    assert update.kind == "customer_reply"
    assert update.actor == ANA
    assert update.inbound_message_id == row.id
    assert update.body == text
    assert row.new_text == text
    for quoted in (REPLY_MARKER, "wrote:", token_of(original), "Dear Ana", ">"):
        assert quoted not in update.body
    assert update.data == {"attachments": 1}
    async with app.sessions() as session:
        (stored,) = (await session.scalars(select(Attachment))).all()
    assert (stored.filename, stored.content_type, stored.content) == ("sip-trace.pdf", "application/pdf", pdf)
    assert (stored.case_id, stored.inbound_message_id, stored.size) == (case.id, row.id, len(pdf))
    assert await answers(app, row.id) == []
    assert [m.rcpt_tos for m in smtp_server.messages] == [(ANA,)]  # the acknowledgement only
    assert folders(imap_account) == {"INBOX": 0, "Processed": 1, "Refused": 0, "Quarantine": 0}


@pytest.mark.parametrize("action", ["request_info", "propose_solution"])
async def test_reply_to_a_waiting_case_puts_it_back_in_progress(
    app: App, imap_account, smtp_server, clock: FrozenClock, action: str
) -> None:
    case = await open_case(app)
    async with app.sessions.begin() as session:
        care = await app.care(session)
        await getattr(care, action)(session, case.number, "Please send a SIP trace of a dropped call.")
    waiting, _ = await case_state(app, case.number)
    assert waiting.followup_started_at == clock.now()
    clock.advance(hours=3)
    imap_account.append(reply(await sent_mail(app, case.id), sender=ANA, text="Trace attached above."))
    await run(app)

    (row,) = await inbound_rows(app)
    assert row.disposition == "applied", row.trail
    after, events = await case_state(app, case.number)
    assert after.status == "in_progress"
    assert after.followup_started_at is None
    assert after.updated_at == clock.now()
    assert events[-1].kind == "customer_reply"
    assert events[-1].body == "Trace attached above."
    assert await answers(app, row.id) == []
    assert folders(imap_account)["Processed"] == 1


async def test_escalation_request_flags_the_case_and_mails_care_management(
    app: App, imap_account, smtp_server, clock: FrozenClock
) -> None:
    case = await open_case(app)
    text = "Escalation Request\nAll 120 agents are affected and we are losing orders."
    imap_account.append(reply(await sent_mail(app, case.id), sender=ANA, text=text))
    await run(app)

    (row,) = await inbound_rows(app)
    assert row.disposition == "applied", row.trail
    after, events = await case_state(app, case.number)
    assert after.escalated is True
    assert after.escalated_at == clock.now()
    assert [e.kind for e in events][-2:] == ["customer_reply", "escalated"]
    assert events[-1].body == text
    _, data = await one_answer(app, smtp_server, row.id, "escalation_to_management",
                               "care-management@vendor.example")
    msg = parse(data)
    assert case.number in msg["Subject"]
    assert msg["Subject"].startswith("Escalation Request")
    assert "losing orders" in body_of(data)
    assert folders(imap_account)["Processed"] == 1


# --- closed cases ------------------------------------------------------------------------------


async def _closed_case(app: App) -> tuple[Case, bytes]:
    case = await open_case(app)
    async with app.sessions.begin() as session:
        await (await app.care(session)).close(session, case.number, "Fixed by the carrier.")
    return case, await sent_mail(app, case.id, kind="case_closed")


async def test_reply_to_a_case_closed_less_than_30_days_ago_gets_reopen_guidance(
    app: App, imap_account, smtp_server, clock: FrozenClock
) -> None:
    case, closed_mail = await _closed_case(app)
    clock.advance(days=29, hours=23)
    imap_account.append(reply(closed_mail, sender=ANA, text="It is happening again since this morning."))
    await run(app)

    (row,) = await inbound_rows(app)
    assert row.disposition == "refused_closed_case", row.trail
    after, events = await case_state(app, case.number)
    assert after.status == "closed"
    assert events[-1].kind == "reopen_requested"
    assert events[-1].body == "It is happening again since this morning."
    assert "customer_reply" not in [e.kind for e in events]
    _, data = await one_answer(app, smtp_server, row.id, "closed_case_reply", ANA)
    msg = parse(data)
    assert msg["Auto-Submitted"] == "auto-replied"
    assert case.number in msg["Subject"]
    body = body_of(data)
    assert "Request to Re-open" in body
    assert f"https://support.vendor.example/cases/{case.number}" in body  # the portal
    assert "+1-555-0100" in body  # or the phone
    assert folders(imap_account) == {"INBOX": 0, "Processed": 0, "Refused": 1, "Quarantine": 0}


async def test_reply_to_a_case_closed_30_days_ago_is_told_it_cannot_be_reopened(
    app: App, imap_account, smtp_server, clock: FrozenClock
) -> None:
    case, closed_mail = await _closed_case(app)
    clock.advance(days=30)
    imap_account.append(reply(closed_mail, sender=ANA, text="It is happening again."))
    await run(app)

    (row,) = await inbound_rows(app)
    assert row.disposition == "refused_not_reopenable", row.trail
    after, events = await case_state(app, case.number)
    assert after.status == "closed"
    assert "reopen_requested" not in [e.kind for e in events]
    assert "customer_reply" not in [e.kind for e in events]
    _, data = await one_answer(app, smtp_server, row.id, "not_reopenable", ANA)
    assert parse(data)["Auto-Submitted"] == "auto-replied"
    body = body_of(data)
    assert "cannot be re-opened" in body
    assert "open a new case" in body
    assert "https://support.vendor.example" in body
    assert folders(imap_account) == {"INBOX": 0, "Processed": 0, "Refused": 1, "Quarantine": 0}


# --- senders who may not update the case -------------------------------------------------------


async def assert_refused_without_a_trace(
    app: App, imap_account, smtp_server, case: Case, sent: bytes, to: str, events_before: int
) -> None:
    (row,) = await inbound_rows(app)
    assert row.disposition == "refused_unauthorized", row.trail
    assert await stored_raw(app, row) == sent  # kept for care to review
    after, events = await case_state(app, case.number)
    assert (after.status, after.updated_at, len(events)) == (case.status, case.updated_at, events_before)
    _, data = await one_answer(app, smtp_server, row.id, "unauthorized_sender", to)
    assert parse(data)["Auto-Submitted"] == "auto-replied"
    token = token_of(await sent_mail(app, case.id, kind="case_received"))
    lowered = data.lower()
    for secret in (case.number, case.subject, token, token.split(".")[1], "calls drop"):
        assert secret.lower().encode() not in lowered, f"the refusal reveals {secret!r}"
    assert [e.kind for e in await security_events(app)] == ["unauthorized_sender"]
    assert folders(imap_account) == {"INBOX": 0, "Processed": 0, "Refused": 1, "Quarantine": 0}


@pytest.mark.parametrize("sender", [BOB, STRANGER], ids=["non-designated-contact", "stranger"])
async def test_sender_who_is_not_a_designated_contact_is_refused(
    app: App, imap_account, smtp_server, sender: str
) -> None:
    case = await open_case(app)
    _, events = await case_state(app, case.number)
    mail = reply(await sent_mail(app, case.id), sender=sender, text="Any news? We need this fixed.")
    imap_account.append(mail)
    await run(app)
    await assert_refused_without_a_trace(app, imap_account, smtp_server, case, mail, sender, len(events))


# --- automatic mail: never a customer response, never answered ---------------------------------


async def test_out_of_office_is_recorded_and_keeps_the_follow_up_timer(
    app: App, imap_account, smtp_server, clock: FrozenClock
) -> None:
    case = await open_case(app)
    async with app.sessions.begin() as session:
        await (await app.care(session)).request_info(session, case.number, "Which SBC version?")
    before, events_before = await case_state(app, case.number)
    clock.advance(minutes=5)
    imap_account.append(out_of_office(await sent_mail(app, case.id, kind="info_requested"), sender=ANA))
    await run(app)

    (row,) = await inbound_rows(app)
    assert row.disposition == "auto_reply_ignored", row.trail
    after, events = await case_state(app, case.number)
    assert after.status == "awaiting_info"
    assert after.followup_started_at == before.followup_started_at is not None
    assert after.updated_at == before.updated_at
    assert len(events) == len(events_before)
    assert await answers(app, row.id) == []
    assert sorted(m.rcpt_tos for m in smtp_server.messages) == [(ANA,), (ANA,)]  # ack and request only
    assert folders(imap_account) == {"INBOX": 0, "Processed": 1, "Refused": 0, "Quarantine": 0}


async def test_bounce_marks_the_recipient_and_the_case(app: App, imap_account, smtp_server) -> None:
    case = await open_case(app)
    await run(app)  # the acknowledgement goes out first
    assert len(smtp_server.messages) == 1
    original = await sent_mail(app, case.id)
    imap_account.append(bounce(original, recipient=ANA, status="5.1.1"))
    await run(app)

    (row,) = await inbound_rows(app)
    assert row.disposition == "bounce", row.trail
    original_id = parse(original)["Message-ID"]
    async with app.sessions() as session:
        recipient = (await session.scalars(
            select(OutboxRecipient).join(Outbox).where(Outbox.message_id == original_id)
        )).one()
    assert recipient.address == ANA
    assert recipient.status == "bounced"
    assert recipient.bounced_at is not None
    assert "5.1.1" in (recipient.last_reply or "")
    _, events = await case_state(app, case.number)
    assert events[-1].kind == "delivery_failed"
    assert events[-1].inbound_message_id == row.id
    assert "5.1.1" in (events[-1].body or "")
    assert await answers(app, row.id) == []
    assert len(smtp_server.messages) == 1
    assert folders(imap_account) == {"INBOX": 0, "Processed": 1, "Refused": 0, "Quarantine": 0}


async def test_our_own_mail_coming_back_is_dropped(app: App, imap_account, smtp_server) -> None:
    case = await open_case(app)
    imap_account.append(await sent_mail(app, case.id))
    await run(app)

    (row,) = await inbound_rows(app)
    assert row.disposition == "loop_dropped", row.trail
    _, events = await case_state(app, case.number)
    assert [e.kind for e in events] == ["opened"]
    assert await answers(app, row.id) == []
    assert [m.rcpt_tos for m in smtp_server.messages] == [(ANA,)]
    assert folders(imap_account) == {"INBOX": 0, "Processed": 1, "Refused": 0, "Quarantine": 0}


async def test_robots_lists_and_ourselves_are_never_answered(app: App, imap_account, smtp_server) -> None:
    """No backscatter: mail without a reference that a person would get a new-case refusal for
    gets nothing when a program, a list, a null sender or we ourselves sent it."""
    robots = {
        "auto_reply_ignored": [
            {"Auto-Submitted": "auto-generated"},
            {"X-Autoreply": "yes"},
            {"Precedence": "bulk"},
            {"Precedence": "junk"},
            {"Precedence": "list"},
            {"List-Id": "<announce.lists.acme.example>"},
            {"Return-Path": "<>"},
            {"Subject": "Out of Office: Calls drop after 30 seconds"},
        ],
        "loop_dropped": [{"From": "care@vendor.example"}],
    }
    mails = []
    for disposition, variants in robots.items():
        for headers in variants:
            sender = headers.pop("From", STRANGER)
            subject = headers.pop("Subject", "Hello")
            mails.append((disposition, new_mail(sender=sender, subject=subject, text="Hello.",
                                                extra_headers=headers)))
    mails.append(("auto_reply_ignored", new_mail(sender="no-reply@acme.example", subject="Your invoice",
                                                 text="Attached.")))
    imap_account.append_many(raw for _, raw in mails)
    await run(app)

    rows = await inbound_rows(app)
    assert [r.disposition for r in rows] == [d for d, _ in mails], [r.trail for r in rows]
    async with app.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Outbox)) == 0
    assert smtp_server.messages == []
    assert folders(imap_account) == {"INBOX": 0, "Processed": len(mails), "Refused": 0, "Quarantine": 0}


async def test_a_quarantined_reply_released_is_applied_with_its_attachment(
    db_url: str, imap_account: Any, smtp_server: RecordingSmtpServer, clock: FrozenClock
) -> None:
    """Over a limit (here: no attachment allowed), a designated contact's reply is quarantined;
    released once the operator has raised the limit, it is applied: its timeline event and
    its attachment are stored in the release's transaction."""
    async with world(db_url, imap_account, smtp_server, clock, max_attachments=0) as app:
        case = await open_case(app)
        pdf = b"%PDF-1.4\n%%EOF\n"
        imap_account.append(reply(await sent_mail(app, case.id), sender=ANA, text="The trace.",
                                  attachments=[("trace.pdf", "application/pdf", pdf)]))
        await run(app)
        (row,) = await inbound_rows(app)
        assert row.disposition == "quarantined" and "attachments" in (row.error or "")
        raised = app.settings.model_copy(
            update={"limits": app.settings.limits.model_copy(update={"max_attachments": 5})})
        async with app.sessions.begin() as session:
            mailer = await app.mailer(session)
            services = Services(raised, app.clock, mailer, mailer.keys, frozenset())
            released = await release(session, services, row.id)
        assert released.row.disposition == "applied", released.trail
        (row,) = await inbound_rows(app)
        assert (row.disposition, row.moved) == ("applied", True)  # its copy stays in Quarantine
        _, events = await case_state(app, case.number)
        assert (events[-1].kind, events[-1].inbound_message_id, events[-1].body) == (
            "customer_reply", row.id, "The trace.")
        async with app.sessions() as session:
            (stored,) = (await session.scalars(select(Attachment))).all()
        assert (stored.inbound_message_id, stored.case_id, stored.content) == (row.id, case.id, pdf)
