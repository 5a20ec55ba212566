"""DESIGN.md's "Policy on inbound mail", one test per row of its table (named after the row),
through the whole pipeline (:func:`~gateway.inbound.policy.pipeline.run_pipeline`) against the
in-memory world of tests/unit/policy_world.py: the disposition, the trail of stages, the IMAP
folder the message goes to, the answers queued (kind and recipient) and what became of the case.

The same rows end to end, on real servers: tests/integration/test_inbound_policy.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from gateway.config import MailboxSettings
from gateway.domain import CaseStatus, Disposition, EventKind, RecipientStatus
from gateway.inbound.policy.pipeline import folder_for, quarantine_after_failures
from gateway.inbound.policy.record import DecidedRow
from gateway.outbound.kinds import MailKind
from gateway.threading.token import make_token
from testkit.mails import (
    DEEP_MAIL,
    bounce,
    html_reply,
    new_mail,
    out_of_office,
    parse,
    reply,
    text_of,
    token_of,
    with_header,
)
from tests.unit.policy_world import (
    ANA,
    BOB,
    CARE_MANAGEMENT,
    OUR_ADDRESS,
    STRANGER,
    TRUSTED_MX,
    Decision,
    PolicyWorld,
    forged,
)

UP_TO_MATCH = [("parse", "continue"), ("dedupe", "continue"), ("classify", "continue"),
               ("identify", "continue")]
UP_TO_APPLY = [*UP_TO_MATCH, ("match", "continue"), ("authorise", "continue")]
ANSWERED = [("respond", "continue")]


@pytest.fixture
def world() -> PolicyWorld:
    return PolicyWorld()


def assert_decided(decision: Decision, disposition: Disposition, folder: str,
                   trail: list[tuple[str, str]], answered: list[tuple[str, list[str]]]) -> None:
    assert decision.row.disposition == disposition, decision.row.trail
    assert decision.row.target_folder == folder
    assert decision.trail == trail
    assert decision.answered == answered


def body_of(data: bytes) -> str:
    return text_of(parse(data))


# --- no valid reference ------------------------------------------------------------------------


@pytest.mark.parametrize("mail", ["new", "reply to mail that is not ours", "forged token"])
async def test_no_valid_reference_opens_no_case_and_gets_one_polite_reply(
    world: PolicyWorld, mail: str
) -> None:
    case = world.open_case()
    sent = await world.send(case)
    raw = {
        "new": new_mail(sender=STRANGER, subject="IVR is down", text="Please open a case."),
        "reply to mail that is not ours": reply(new_mail(sender=BOB, subject="Lunch", text="Lunch?"),
                                                sender=STRANGER, text="Please open a case."),
        "forged token": new_mail(sender=STRANGER, subject=f"RE: [{forged(token_of(sent))}] Calls drop",
                                 text="Let me in."),
    }[mail]
    decided = await world.decide(raw)

    assert_decided(decided, Disposition.REFUSED_NEW_CASE, "Refused",
                   [*UP_TO_MATCH, ("match", "refused_new_case"), *ANSWERED],
                   [("new_case_refused", [STRANGER])])
    assert world.tables.cases == [case] and decided.row.case_id is None
    assert decided.events == [] and case.status == CaseStatus.NEW
    (answer,) = decided.answers
    assert answer.case_id is None
    body = body_of(answer.data)
    assert "https://support.vendor.example" in body and "cannot be opened by email" in body


async def test_no_valid_reference_the_reply_is_rate_limited_per_sender() -> None:
    world = PolicyWorld(limits={"auto_replies_per_sender_per_day": 2})
    attempts = [new_mail(sender=STRANGER, subject=f"Attempt {n}", text="Open a case.") for n in range(3)]
    decided = await world.decide_group(attempts)
    assert [d.row.disposition for d in decided] == ["refused_new_case"] * 3
    assert [d.answered for d in decided] == [[("new_case_refused", [STRANGER])]] * 2 + [[]]
    assert decided[2].row.trail[-1]["detail"] == f"new_case_refused: not sent (rate limit for {STRANGER})"

    world.clock.advance(hours=24)
    later = await world.decide(new_mail(sender=STRANGER, subject="Attempt 4", text="Open a case."))
    assert later.answered == [("new_case_refused", [STRANGER])]


# --- a designated contact's mail about an open case --------------------------------------------


@pytest.mark.parametrize("reference", ["in-reply-to", "subject token", "body token", "html body token"])
async def test_reference_to_an_open_case_by_a_designated_contact_adds_the_new_text_and_attachments(
    world: PolicyWorld, reference: str
) -> None:
    case = world.open_case(status=CaseStatus.IN_PROGRESS)
    sent = await world.send(case)
    text = "Here are the logs. The drops start at 30.0 seconds exactly."
    signed = f"{text}\n\n-- \nAna Alves\nAcme Corp, IT"
    pdf = b"%PDF-1.4\n%%EOF\n"
    attachments = [("sip-trace.pdf", "application/pdf", pdf)]
    raw = {
        "in-reply-to": reply(sent, sender=ANA, text=signed, keep_subject=False, attachments=attachments),
        "subject token": reply(sent, sender=ANA, text=signed, keep_threading=False, quote=False,
                               attachments=attachments),
        "body token": reply(sent, sender=ANA, text=signed, keep_threading=False, keep_subject=False,
                            attachments=attachments),
        "html body token": html_reply(sent, sender=ANA, text=text),
    }[reference]
    world.clock.advance(minutes=5)
    decided = await world.decide(raw)

    assert_decided(decided, Disposition.APPLIED, "Processed", [*UP_TO_APPLY, ("apply", "applied")], [])
    assert decided.row.case_id == case.id
    assert [(e["kind"], e["actor"], e["body"]) for e in decided.events] == [
        (EventKind.CUSTOMER_REPLY, ANA, text)]
    assert decided.row.new_text == text  # quotes and signature stripped (the loop keeps the raw message)
    expected = [] if reference == "html body token" else [("sip-trace.pdf", pdf)]
    assert [(a["filename"], a["content"]) for a in decided.attachments] == expected
    assert (case.status, case.updated_at, case.escalated) == (
        CaseStatus.IN_PROGRESS, world.clock.now(), False)


@pytest.mark.parametrize(("status", "kind"), [(CaseStatus.AWAITING_INFO, MailKind.INFO_REQUESTED),
                                              (CaseStatus.SOLUTION_PROPOSED, MailKind.SOLUTION_PROPOSED)])
async def test_and_the_case_was_awaiting_information_or_had_a_solution_proposed_it_goes_back_to_in_progress(
    world: PolicyWorld, status: CaseStatus, kind: MailKind
) -> None:
    case = world.open_case(status=status)
    assert case.followup_started_at == world.clock.now() and case.followup_due_at is not None
    sent = await world.send(case, kind, message="Please send a SIP trace of a dropped call.")
    world.clock.advance(hours=3)
    decided = await world.decide(reply(sent, sender=ANA, text="Trace attached above."))

    assert_decided(decided, Disposition.APPLIED, "Processed", [*UP_TO_APPLY, ("apply", "applied")], [])
    assert "back to in progress, follow-up timer stopped" in decided.row.trail[-1]["detail"]
    assert [(e["kind"], e["body"]) for e in decided.events] == [
        (EventKind.CUSTOMER_REPLY, "Trace attached above.")]
    assert (case.status, case.updated_at) == (CaseStatus.IN_PROGRESS, world.clock.now())
    assert (case.followup_started_at, case.followup_due_at) == (None, None)


async def test_and_escalation_request_on_the_first_line_escalates_the_case_and_mails_care_management(
    world: PolicyWorld,
) -> None:
    case = world.open_case(status=CaseStatus.IN_PROGRESS)
    text = "Escalation Request\nAll 120 agents are affected and we are losing orders."
    decided = await world.decide(reply(await world.send(case), sender=ANA, text=text))

    assert_decided(decided, Disposition.APPLIED, "Processed", [*UP_TO_APPLY, ("apply", "applied"), *ANSWERED],
                   [("escalation_to_management", [CARE_MANAGEMENT])])
    assert (case.escalated, case.escalated_at, case.status) == (
        True, world.clock.now(), CaseStatus.IN_PROGRESS)
    assert [(e["kind"], e["body"]) for e in decided.events] == [
        (EventKind.CUSTOMER_REPLY, text), (EventKind.ESCALATED, text)]
    (mail,) = decided.answers
    assert mail.case_id == case.id
    subject = parse(mail.data)["Subject"]
    assert subject.startswith("Escalation Request") and case.number is not None and case.number in subject
    assert "losing orders" in body_of(mail.data)


# --- closed cases --------------------------------------------------------------------------------


@pytest.mark.parametrize("closed", [timedelta(days=1), timedelta(days=29, hours=23)])
async def test_reference_to_a_case_closed_less_than_30_days_ago_is_not_appended_and_gets_reopen_guidance(
    world: PolicyWorld, closed: timedelta
) -> None:
    case = world.open_case(closed=closed)
    closed_at = case.closed_at
    text = "It is happening again since this morning."
    decided = await world.decide(reply(await world.send(case, MailKind.CASE_CLOSED), sender=ANA, text=text))

    assert_decided(decided, Disposition.REFUSED_CLOSED_CASE, "Refused",
                   [*UP_TO_APPLY, ("apply", "refused_closed_case"), *ANSWERED],
                   [("closed_case_reply", [ANA])])
    assert [(e["kind"], e["body"]) for e in decided.events] == [(EventKind.REOPEN_REQUESTED, text)]
    assert (case.status, case.closed_at) == (CaseStatus.CLOSED, closed_at)
    (answer,) = decided.answers
    assert answer.case_id == case.id and case.number is not None and case.number in answer.subject
    body = body_of(answer.data)
    assert "Request to Re-open" in body and f"https://support.vendor.example/cases/{case.number}" in body


@pytest.mark.parametrize("closed", [timedelta(days=30), timedelta(days=365)])
async def test_reference_to_a_case_closed_30_days_ago_or_more_is_told_it_cannot_be_reopened(
    world: PolicyWorld, closed: timedelta
) -> None:
    case = world.open_case(closed=closed)
    decided = await world.decide(reply(await world.send(case, MailKind.CASE_CLOSED), sender=ANA,
                                       text="It is happening again."))

    assert_decided(decided, Disposition.REFUSED_NOT_REOPENABLE, "Refused",
                   [*UP_TO_APPLY, ("apply", "refused_not_reopenable"), *ANSWERED],
                   [("not_reopenable", [ANA])])
    assert [e["kind"] for e in decided.events] == [EventKind.REOPEN_REFUSED]
    assert case.status == CaseStatus.CLOSED
    body = body_of(decided.answers[0].data)
    assert "cannot be re-opened" in body and "open a new case" in body


# --- senders who may not update the case ---------------------------------------------------------


@pytest.mark.parametrize("sender", ["not designated", "stranger", "removed", "another organisation's",
                                    "dmarc failed"])
async def test_sender_not_a_designated_contact_of_the_cases_organisation_is_refused_and_told_nothing_about_it(
    world: PolicyWorld, sender: str
) -> None:
    world.contact("rita@acme.example", world.org, removed=True)
    world.contact("olga@globex.example", world.organisation("Globex"))
    address = {"not designated": BOB, "stranger": STRANGER, "removed": "rita@acme.example",
               "another organisation's": "olga@globex.example", "dmarc failed": ANA}[sender]
    headers = {"Authentication-Results": f"{TRUSTED_MX}; dmarc=fail header.from=acme.example"} \
        if sender == "dmarc failed" else {}
    case = world.open_case(status=CaseStatus.AWAITING_INFO)
    before = (case.status, case.updated_at, case.followup_started_at)
    sent = await world.send(case, MailKind.INFO_REQUESTED, message="Which SBC version?")
    world.clock.advance(hours=1)
    decided = await world.decide(reply(sent, sender=address, text="Any news? We need this fixed.",
                                       extra_headers=headers))

    assert_decided(decided, Disposition.REFUSED_UNAUTHORIZED, "Refused",
                   [*UP_TO_MATCH, ("match", "continue"), ("authorise", "refused_unauthorized"), *ANSWERED],
                   [("unauthorized_sender", [address])])
    assert (decided.row.from_address, decided.row.case_id) == (address, case.id)  # kept for care to review
    assert (case.status, case.updated_at, case.followup_started_at) == before
    assert decided.events == [] and decided.attachments == []
    assert [e["kind"] for e in decided.security_events] == ["unauthorized_sender"]
    (answer,) = decided.answers
    assert answer.case_id is None
    revealed = answer.data.lower()
    token = token_of(sent)
    for secret in (case.number or "?", case.subject, token, token.split(".")[1], "calls drop", "sbc"):
        assert secret.lower().encode() not in revealed, f"the refusal reveals {secret!r}"


# --- automatic mail: never a customer response, never answered ------------------------------------


AUTO_REPLIES = {
    "auto-submitted": {"Auto-Submitted": "auto-replied"},
    "x-autoreply": {"X-Autoreply": "yes"},
    "precedence bulk": {"Precedence": "bulk"},
    "precedence junk": {"Precedence": "junk"},
    "precedence list": {"Precedence": "list"},
}


@pytest.mark.parametrize("auto", [*AUTO_REPLIES, "out-of-office"])
async def test_auto_reply_is_recorded_never_treated_as_a_customer_response_never_answered(
    world: PolicyWorld, auto: str
) -> None:
    case = world.open_case(status=CaseStatus.AWAITING_INFO)
    before = (case.status, case.updated_at, case.followup_started_at, case.followup_due_at)
    sent = await world.send(case, MailKind.INFO_REQUESTED, message="Which SBC version?")
    world.clock.advance(minutes=5)
    raw = out_of_office(sent, sender=ANA) if auto == "out-of-office" else reply(
        sent, sender=ANA, text="I am away until Monday.", extra_headers=AUTO_REPLIES[auto])
    decided = await world.decide(raw)

    assert_decided(decided, Disposition.AUTO_REPLY_IGNORED, "Processed",
                   [*UP_TO_MATCH[:2], ("classify", "auto_reply_ignored")], [])
    assert (case.status, case.updated_at, case.followup_started_at, case.followup_due_at) == before
    assert decided.events == [] and decided.row.case_id is None


async def test_bounce_is_matched_to_the_message_it_reports_on_and_the_failure_recorded_never_answered(
    world: PolicyWorld,
) -> None:
    case = world.open_case()
    sent = await world.send(case)
    decided = await world.decide(bounce(sent, recipient=ANA, status="5.1.1"))

    assert_decided(decided, Disposition.BOUNCE, "Processed", [*UP_TO_MATCH[:2], ("classify", "bounce")], [])
    outbox = world.tables.outbox_by_message_id(parse(sent)["Message-ID"])
    assert outbox is not None
    assert [(r.address, r.status) for r in outbox.recipients] == [(ANA, RecipientStatus.BOUNCED)]
    assert [(e["kind"], e["case_id"], e["outbox_id"]) for e in decided.events] == [
        (EventKind.DELIVERY_FAILED, case.id, outbox.id)]
    assert case.status == CaseStatus.NEW


@pytest.mark.parametrize("loop", ["our mail back", "from our address", "our loop header"])
async def test_our_own_mail_coming_back_or_a_loop_is_dropped_never_answered(
    world: PolicyWorld, loop: str
) -> None:
    case = world.open_case()
    sent = await world.send(case)
    raw = {
        "our mail back": sent,
        "from our address": new_mail(sender=OUR_ADDRESS, subject="Hello", text="Hello."),
        "our loop header": reply(sent, sender=ANA, text="Hello.", extra_headers={
            "X-Case-Gateway-Loop": "vendor.example"}),
    }[loop]
    decided = await world.decide(raw)

    assert_decided(decided, Disposition.LOOP_DROPPED, "Processed",
                   [*UP_TO_MATCH[:2], ("classify", "loop_dropped")], [])
    assert decided.events == [] and case.status == CaseStatus.NEW


@pytest.mark.parametrize("robot", [
    "auto-reply", "out-of-office subject", "bounce", "list", "null envelope sender", "empty From", "no-reply",
    "mailer-daemon", "ourselves",
])
async def test_never_answer_an_auto_reply_a_bounce_a_list_a_null_sender_or_ourselves(
    world: PolicyWorld, robot: str
) -> None:
    """Mail without a reference, which a person would get a new-case refusal for, gets nothing
    when a program, a list, a null sender or we ourselves sent it: no backscatter."""
    def mail(sender: str = STRANGER, subject: str = "Hello", **headers: str) -> bytes:
        return new_mail(sender=sender, subject=subject, text="Hello.", extra_headers=headers)

    raw = {
        "auto-reply": mail(**{"Auto-Submitted": "auto-generated"}),
        "out-of-office subject": mail(subject="Out of Office: Hello"),
        "bounce": bounce(mail(sender=BOB), recipient="gone@acme.example"),
        "list": mail(**{"List-Id": "<announce.lists.acme.example>"}),
        "null envelope sender": mail(**{"Return-Path": "<>"}),
        "empty From": with_header(mail(), "From", "<>"),
        "no-reply": mail(sender="no-reply@acme.example"),
        "mailer-daemon": mail(sender="MAILER-DAEMON@acme.example"),
        "ourselves": mail(sender=OUR_ADDRESS),
    }[robot]
    decided = await world.decide(raw)

    assert decided.row.disposition in (Disposition.AUTO_REPLY_IGNORED, Disposition.BOUNCE,
                                       Disposition.LOOP_DROPPED)
    assert decided.row.target_folder == "Processed"
    assert decided.ctx.replies == [] and decided.answers == []
    assert world.tables.outbox == []


# --- beyond the table: DESIGN.md's other dispositions ---------------------------------------------


@pytest.mark.parametrize("problem", ["two cases", "no such case"])
async def test_two_cases_matched_by_one_message_or_a_missing_case_is_quarantined_for_a_human(
    world: PolicyWorld, problem: str
) -> None:
    first, second = world.open_case(), world.open_case(subject="Second problem")
    if problem == "two cases":
        subject = f"RE: [{token_of(await world.send(second))}] both"
        raw = with_header(reply(await world.send(first), sender=ANA, text="Both?", quote=False),
                          "Subject", subject)
    else:
        raw = new_mail(sender=ANA, subject=f"RE: [{make_token('00009999', world.keys[0])}]", text="Where?")
    decided = await world.decide(raw)

    assert_decided(decided, Disposition.QUARANTINED, "Quarantine",
                   [*UP_TO_MATCH, ("match", "quarantine")], [])
    assert decided.row.error == decided.row.trail[-1]["detail"] != ""
    assert decided.events == [] and decided.row.case_id is None


async def test_a_message_the_parser_rejects_is_quarantined() -> None:
    world = PolicyWorld(limits={"max_mime_depth": 2})
    decided = await world.decide(DEEP_MAIL)
    assert_decided(decided, Disposition.QUARANTINED, "Quarantine", [("parse", "quarantine")], [])
    assert decided.row.error == "MIME depth over the limit of 2"


async def test_the_same_mail_delivered_twice_is_one_update(world: PolicyWorld) -> None:
    case = world.open_case()
    raw = reply(await world.send(case), sender=ANA, text="Logs attached.")
    first = await world.decide(raw)
    second = await world.decide(b"Delivered-To: support@vendor.example\r\n" + raw)

    assert first.row.disposition == Disposition.APPLIED
    assert_decided(second, Disposition.DUPLICATE, "Processed",
                   [("parse", "continue"), ("dedupe", "duplicate")], [])
    assert second.events == []
    assert len([e for e in world.events if e["kind"] == EventKind.CUSTOMER_REPLY]) == 1


async def test_a_message_that_failed_its_pipeline_too_often_is_quarantined(world: PolicyWorld) -> None:
    row = DecidedRow(7)
    quarantine_after_failures(row, 3, "RuntimeError: boom", world.mailbox, world.services)
    assert (row.disposition, row.target_folder, row.error, row.processed_at) == (
        Disposition.QUARANTINED, "Quarantine", "RuntimeError: boom", world.clock.now())
    assert row.trail == [{"stage": "pipeline", "outcome": "quarantine",
                          "detail": "failed 3 times; last error: RuntimeError: boom"}]


@pytest.mark.parametrize("disposition", list(Disposition))
def test_every_disposition_has_its_folder(disposition: Disposition) -> None:
    mailbox = MailboxSettings(name="care", host="127.0.0.1", processed_folder="Done", refused_folder="No",
                              quarantine_folder="Look")
    expected = "Look" if disposition == Disposition.QUARANTINED else (
        "No" if disposition.value.startswith("refused_") else "Done")
    assert folder_for(disposition, mailbox) == expected
