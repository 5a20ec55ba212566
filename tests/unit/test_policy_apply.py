"""The apply stage (gateway/inbound/policy/apply.py) on its own: a designated contact's mail
about a case, the case open (the timeline, back to in progress, escalation) or closed (re-open
guidance within 30 days, a refusal after), against the in-memory world of
tests/unit/policy_world.py."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from gateway.domain import WHOLE_TEXT_KEPT, CaseStatus, Disposition, EventKind
from gateway.inbound.mail.reply_text import NewText
from gateway.inbound.policy.apply import apply_update
from gateway.inbound.policy.context import Finish, MessageContext, Outcome
from gateway.models import Attachment, CaseEvent
from gateway.outbound.kinds import MailKind
from testkit.mails import reply
from tests.unit.policy_world import ANA, CARE_MANAGEMENT, PolicyWorld


@pytest.fixture
def world() -> PolicyWorld:
    return PolicyWorld()


async def applied(
    world: PolicyWorld, raw: bytes, new_text: NewText | None = None
) -> tuple[MessageContext, Outcome]:
    """``raw`` through the stages before apply (they must let it go on), then apply; ``new_text``
    stands in for what the parse worker made of its text."""
    ctx = world.context(raw)
    await world.run_before(ctx, "apply")
    if new_text is not None:
        ctx.new_text = new_text
    return ctx, await apply_update(ctx, world.session, world.services)


@pytest.mark.parametrize("status", [CaseStatus.NEW, CaseStatus.IN_PROGRESS])
async def test_apply_adds_the_new_text_to_an_open_cases_timeline(
    world: PolicyWorld, status: CaseStatus
) -> None:
    case = world.open_case(status=status)
    sent = await world.send(case)
    world.clock.advance(hours=2)
    ctx, outcome = await applied(world, reply(sent, sender=ANA, text="The drops start at 30.0 seconds."))

    assert outcome == Finish(Disposition.APPLIED, "update added")
    (event,) = world.session.rows(CaseEvent)
    assert event == {"case_id": case.id, "at": world.clock.now(), "kind": EventKind.CUSTOMER_REPLY,
                     "actor": ANA, "body": "The drops start at 30.0 seconds.",
                     "inbound_message_id": ctx.row.id, "outbox_id": None, "data": None}
    assert ctx.row.new_text == "The drops start at 30.0 seconds."
    assert (case.status, case.updated_at, case.escalated) == (status, world.clock.now(), False)
    assert ctx.replies == [] and world.session.rows(Attachment) == []


async def test_apply_takes_our_quoted_mail_out_by_comparing_it_with_what_we_sent(world: PolicyWorld) -> None:
    case = world.open_case()
    sent = await world.send(case)
    ctx = world.context(reply(sent, sender=ANA, text="Thanks, the trace is attached."))
    assert ctx.new_text is not None and ctx.new_text.pending is not None  # waits for what we sent
    await world.run_before(ctx, "apply")
    await apply_update(ctx, world.session, world.services)
    assert [e["body"] for e in world.session.rows(CaseEvent)] == ["Thanks, the trace is attached."]


async def test_apply_stores_the_attachments_with_the_update(world: PolicyWorld) -> None:
    case = world.open_case()
    pdf = b"%PDF-1.4\n%%EOF\n"
    raw = reply(await world.send(case), sender=ANA, text="The trace.",
                attachments=[("trace.pdf", "application/pdf", pdf), ("sip.log", "text/plain", b"log line\n")])
    ctx, outcome = await applied(world, raw)
    assert outcome == Finish(Disposition.APPLIED, "update added")
    assert [e["data"] for e in world.session.rows(CaseEvent)] == [{"attachments": 2}]
    stored = [(a["filename"], a["content_type"], a["content"], a["size"], a["case_id"],
               a["inbound_message_id"]) for a in world.session.rows(Attachment)]
    assert stored == [("trace.pdf", "application/pdf", pdf, len(pdf), case.id, ctx.row.id),
                      ("sip.log", "text/plain", b"log line\n", 9, case.id, ctx.row.id)]
    assert [a["sha256"] for a in world.session.rows(Attachment)] == [
        hashlib.sha256(pdf).hexdigest(), hashlib.sha256(b"log line\n").hexdigest()]


async def test_apply_flags_an_update_whose_whole_text_was_kept(world: PolicyWorld) -> None:
    case = world.open_case()
    whole = "> quoted\nall of it"
    ctx, outcome = await applied(world, reply(await world.send(case), sender=ANA, text="x"),
                                 NewText(text=whole, whole=whole, kept_whole=True))
    assert outcome == Finish(Disposition.APPLIED, "update added; whole text kept, extraction in doubt")
    (event,) = world.session.rows(CaseEvent)
    assert (event["body"], event["data"]) == (whole, {WHOLE_TEXT_KEPT: True})
    assert ctx.row.new_text == whole


@pytest.mark.parametrize("status", [CaseStatus.AWAITING_INFO, CaseStatus.SOLUTION_PROPOSED])
async def test_apply_puts_a_waiting_case_back_in_progress_and_stops_its_timer(
    world: PolicyWorld, status: CaseStatus
) -> None:
    case = world.open_case(status=status)
    assert case.followup_started_at is not None and case.followup_due_at is not None
    sent = await world.send(case, MailKind.INFO_REQUESTED, message="Please send a SIP trace.")
    world.clock.advance(hours=3)
    _, outcome = await applied(world, reply(sent, sender=ANA, text="Trace above."))
    assert outcome == Finish(Disposition.APPLIED,
                             "update added; back to in progress, follow-up timer stopped")
    assert (case.status, case.updated_at) == (CaseStatus.IN_PROGRESS, world.clock.now())
    assert (case.followup_started_at, case.followup_due_at) == (None, None)


@pytest.mark.parametrize("text", [
    "Escalation Request\nAll agents are affected.",
    "ESCALATION REQUEST: all agents are affected.",
    "** escalation   request **\nAll agents.",
])
async def test_apply_escalates_on_escalation_request_on_the_first_line(world: PolicyWorld, text: str) -> None:
    case = world.open_case()
    ctx, outcome = await applied(world, reply(await world.send(case), sender=ANA, text=text))

    assert outcome == Finish(Disposition.APPLIED, f"update added; escalated to {CARE_MANAGEMENT}")
    assert (case.escalated, case.escalated_at) == (True, world.clock.now())
    assert [(e["kind"], e["body"]) for e in world.session.rows(CaseEvent)] == [
        (EventKind.CUSTOMER_REPLY, text), (EventKind.ESCALATED, text)]
    (answer,) = ctx.replies
    assert (answer.kind, answer.to, answer.automatic) == (
        MailKind.ESCALATION_TO_MANAGEMENT, ("Care management", CARE_MANAGEMENT), False)
    assert answer.context["case"]["number"] == case.number
    assert (answer.context["message"], answer.context["organisation"]) == (text, {"name": "Acme Corp"})


@pytest.mark.parametrize("text", [
    "Hello,\nEscalation Request: all agents are affected.",
    "Please treat this as an Escalation Request.",
    "Escalation Requested by our CTO.",
])
async def test_apply_does_not_escalate_without_escalation_request_on_the_first_line(
    world: PolicyWorld, text: str
) -> None:
    case = world.open_case()
    ctx, outcome = await applied(world, reply(await world.send(case), sender=ANA, text=text))
    assert outcome == Finish(Disposition.APPLIED, "update added")
    assert (case.escalated, case.escalated_at) == (False, None)
    assert [e["kind"] for e in world.session.rows(CaseEvent)] == [EventKind.CUSTOMER_REPLY]
    assert ctx.replies == []


@pytest.mark.parametrize("closed", [timedelta(hours=1), timedelta(days=29, hours=23, minutes=59)])
async def test_apply_answers_a_reply_to_a_recently_closed_case_with_reopen_guidance(
    world: PolicyWorld, closed: timedelta
) -> None:
    case = world.open_case(closed=closed)
    text = "Escalation Request\nIt is happening again."
    closed_mail = await world.send(case, MailKind.CASE_CLOSED)
    ctx, outcome = await applied(world, reply(closed_mail, sender=ANA, text=text))

    assert outcome == Finish(Disposition.REFUSED_CLOSED_CASE,
                             "case closed less than 30 days ago: re-open guidance")
    assert [(e["kind"], e["body"], e["actor"]) for e in world.session.rows(CaseEvent)] == [
        (EventKind.REOPEN_REQUESTED, text, ANA)]
    assert (case.status, case.escalated) == (CaseStatus.CLOSED, False)  # not escalated either
    (answer,) = ctx.replies
    assert answer.kind == MailKind.CLOSED_CASE_REPLY and answer.to is None and answer.automatic
    assert case.closed_at is not None
    assert (answer.context["closed_at"], answer.context["reopen_deadline"], answer.context["message"]) == (
        case.closed_at, case.closed_at + timedelta(days=30), text)
    assert ctx.row.new_text == text


@pytest.mark.parametrize("closed", [timedelta(days=30), timedelta(days=400)])
async def test_apply_tells_a_reply_to_a_case_closed_30_days_ago_it_cannot_be_reopened(
    world: PolicyWorld, closed: timedelta
) -> None:
    case = world.open_case(closed=closed)
    ctx, outcome = await applied(world, reply(await world.send(case, MailKind.CASE_CLOSED), sender=ANA,
                                              text="It is happening again."))
    assert outcome == Finish(Disposition.REFUSED_NOT_REOPENABLE, "case closed 30 days ago or more")
    assert [e["kind"] for e in world.session.rows(CaseEvent)] == [EventKind.REOPEN_REFUSED]
    assert case.status == CaseStatus.CLOSED
    assert [r.kind for r in ctx.replies] == [MailKind.NOT_REOPENABLE]
