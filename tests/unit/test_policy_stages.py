"""Each stage of the inbound policy on its own (gateway/inbound/policy/): what it answers
(go on, finish with a disposition, quarantine) and what it records (the row's fields, security
events, timeline events, answers), against the in-memory world of tests/unit/policy_world.py.

DESIGN.md's policy table row by row, through the whole pipeline: test_policy_table.py.
"""

from __future__ import annotations

import pytest

from gateway.domain import CaseStatus, Disposition, EventKind, RecipientStatus
from gateway.inbound.policy import stages
from gateway.inbound.policy.context import Finish, MessageContext, Next, Outcome, Quarantine, Reply
from gateway.inbound.policy.record import DecidedRow
from gateway.models import CaseEvent, SecurityEvent
from gateway.outbound.kinds import MailKind
from gateway.threading.token import make_token
from testkit.mails import (
    DEEP_MAIL,
    bounce,
    new_mail,
    out_of_office,
    parse,
    redelivered,
    reply,
    token_of,
    with_header,
)
from tests.unit.policy_world import ANA, BOB, OUR_ADDRESS, STRANGER, TRUSTED_MX, PolicyWorld, forged


@pytest.fixture
def world() -> PolicyWorld:
    return PolicyWorld()


NO_REFERENCE = Finish(Disposition.REFUSED_NEW_CASE, "no valid reference: cases are not opened by email")


def kinds(replies: list[Reply]) -> list[MailKind]:
    return [r.kind for r in replies]


# --- parse: what the parse worker made of the message ------------------------------------------


async def test_check_parsed_quarantines_a_message_the_parser_rejected() -> None:
    world = PolicyWorld(limits={"max_mime_depth": 2})
    ctx = world.context(DEEP_MAIL)
    outcome = await stages.check_parsed(ctx, world.session, world.services)
    assert outcome == Quarantine("MIME depth over the limit of 2")
    assert (ctx.row.from_address, ctx.row.subject, ctx.row.message_id) == (None, None, None)  # kept as stored


async def test_check_parsed_shows_the_sender_subject_and_message_id_on_the_row(world: PolicyWorld) -> None:
    raw = new_mail(sender="Ana Alves <ANA@acme.example>", subject="Our IVR", text="It is silent.")
    ctx = world.context(raw)
    outcome = await stages.check_parsed(ctx, world.session, world.services)
    assert outcome == Next(f"from {ANA}")
    assert (ctx.row.from_address, ctx.row.subject, ctx.row.message_id) == (
        ANA, "Our IVR", parse(raw)["Message-ID"])
    assert ctx.row.content_hash == ctx.mail.fingerprint != ""


async def test_check_parsed_goes_on_with_a_mail_that_names_no_sender(world: PolicyWorld) -> None:
    ctx = world.context(with_header(new_mail(sender=ANA, subject="Hi", text="Hi."), "From", "<>"))
    assert await stages.check_parsed(ctx, world.session, world.services) == Next("from (none)")
    assert ctx.row.from_address is None


# --- dedupe -------------------------------------------------------------------------------------


async def test_dedupe_lets_a_mail_without_message_id_go_on(world: PolicyWorld) -> None:
    ctx = world.context(b"From: ana@acme.example\r\nTo: care@vendor.example\r\nSubject: Hi\r\n\r\nHello.\r\n")
    await world.run_before(ctx, "dedupe")
    assert await stages.dedupe(ctx, world.session, world.services) == Next("no Message-ID")


async def test_dedupe_finishes_the_same_mail_delivered_twice_as_a_duplicate(world: PolicyWorld) -> None:
    raw = new_mail(sender=STRANGER, subject="Open a case", text="Please.")
    first = await world.decide(raw)
    ctx = world.context(redelivered(raw, hop="mx2.vendor.example"))
    await world.run_before(ctx, "dedupe")
    outcome = await stages.dedupe(ctx, world.session, world.services)
    assert outcome == Finish(Disposition.DUPLICATE, f"same as inbound message {first.row.id}")


async def test_dedupe_lets_another_mail_with_the_same_message_id_go_on(world: PolicyWorld) -> None:
    raw = new_mail(sender=STRANGER, subject="Open a case", text="Please.")
    await world.decide(raw)
    other = with_header(new_mail(sender=STRANGER, subject="Open a case", text="Another text."),
                        "Message-ID", parse(raw)["Message-ID"])
    ctx = world.context(other)
    await world.run_before(ctx, "dedupe")
    assert await stages.dedupe(ctx, world.session, world.services) == Next()


async def test_dedupe_does_not_take_a_released_message_for_a_duplicate_of_itself(world: PolicyWorld) -> None:
    """A quarantine release decides the same row again: its earlier decision is not an original."""
    raw = new_mail(sender=STRANGER, subject="Open a case", text="Please.")
    first = await world.decide(raw)
    ctx = world.context(raw)
    ctx.row = DecidedRow(first.row.id)
    await world.run_before(ctx, "dedupe")
    assert await stages.dedupe(ctx, world.session, world.services) == Next()


async def test_dedupe_finds_the_original_among_the_group_decided_before_it(world: PolicyWorld) -> None:
    raw = new_mail(sender=STRANGER, subject="Open a case", text="Please.")
    first, second = await world.decide_group([raw, redelivered(raw, hop="mx2.vendor.example")])
    assert (first.row.disposition, second.row.disposition) == ("refused_new_case", "duplicate")
    assert second.trail[-1] == ("dedupe", "duplicate")
    assert (len(first.answers), second.answers) == (1, [])


# --- classify -----------------------------------------------------------------------------------


async def test_classify_lets_a_persons_mail_go_on(world: PolicyWorld) -> None:
    ctx = world.context(new_mail(sender=ANA, subject="Hello", text="Hello."))
    await world.run_before(ctx, "classify")
    assert await stages.classify(ctx, world.session, world.services) == Next("a person's mail")
    assert ctx.classification is not None and ctx.classification.kind == "normal"


@pytest.mark.parametrize("source", ["our mail back", "our address", "our loop header"])
async def test_classify_drops_a_loop(world: PolicyWorld, source: str) -> None:
    case = world.open_case()
    sent = await world.send(case)
    raw = {
        "our mail back": sent,
        "our address": new_mail(sender=OUR_ADDRESS.upper(), subject="Hello", text="Hello."),
        "our loop header": new_mail(sender=ANA, subject="Hello", text="Hello.",
                                    extra_headers={"X-Case-Gateway-Loop": "vendor.example"}),
    }[source]
    ctx = world.context(raw)
    await world.run_before(ctx, "classify")
    outcome = await stages.classify(ctx, world.session, world.services)
    assert isinstance(outcome, Finish) and outcome.disposition == Disposition.LOOP_DROPPED, outcome
    assert ctx.replies == []
    assert world.session.info == {}


@pytest.mark.parametrize(("headers", "kind"), [
    ({"Auto-Submitted": "auto-replied"}, "auto_reply"),
    ({"Precedence": "bulk"}, "auto_reply"),
    ({"List-Id": "<announce.acme.example>"}, "list"),
    ({"Return-Path": "<>"}, "null_sender"),
])
async def test_classify_finishes_robots_and_lists_as_ignored(
    world: PolicyWorld, headers: dict[str, str], kind: str
) -> None:
    ctx = world.context(new_mail(sender=ANA, subject="Hello", text="Hello.", extra_headers=headers))
    await world.run_before(ctx, "classify")
    outcome = await stages.classify(ctx, world.session, world.services)
    assert isinstance(outcome, Finish) and outcome.disposition == Disposition.AUTO_REPLY_IGNORED
    assert ctx.classification is not None and ctx.classification.kind == kind
    assert outcome.detail == ctx.classification.reason != ""
    assert ctx.replies == []


async def test_classify_finishes_an_out_of_office_as_ignored(world: PolicyWorld) -> None:
    case = world.open_case(status=CaseStatus.AWAITING_INFO)
    ctx = world.context(out_of_office(await world.send(case, MailKind.INFO_REQUESTED, message="Which SBC?"),
                                      sender=ANA))
    await world.run_before(ctx, "classify")
    outcome = await stages.classify(ctx, world.session, world.services)
    assert isinstance(outcome, Finish) and outcome.disposition == Disposition.AUTO_REPLY_IGNORED
    assert ctx.case is None and case.status == CaseStatus.AWAITING_INFO


async def test_classify_records_a_permanent_bounce_on_the_recipient_and_the_case(world: PolicyWorld) -> None:
    case = world.open_case()
    sent = await world.send(case)
    ctx = world.context(bounce(sent, recipient=ANA, status="5.1.1", diagnostic="550 5.1.1 user unknown"))
    await world.run_before(ctx, "classify")
    outcome = await stages.classify(ctx, world.session, world.services)

    assert isinstance(outcome, Finish) and outcome.disposition == Disposition.BOUNCE
    outbox = world.tables.outbox_by_message_id(parse(sent)["Message-ID"])
    assert outbox is not None
    assert f"{ANA} 5.1.1 permanent on outbox {outbox.id}" in outcome.detail
    (recipient,) = outbox.recipients
    assert (recipient.status, recipient.bounced_at) == (RecipientStatus.BOUNCED, world.clock.now())
    assert recipient.last_reply == "bounce 5.1.1: 550 5.1.1 user unknown"
    (event,) = world.session.rows(CaseEvent)
    assert (event["case_id"], event["kind"], event["outbox_id"], event["inbound_message_id"]) == (
        case.id, EventKind.DELIVERY_FAILED, outbox.id, ctx.row.id)
    assert "failed (permanently, status 5.1.1)" in event["body"]
    assert ctx.replies == [] and world.session.mail() == []


async def test_classify_records_a_delay_without_marking_the_recipient_bounced(world: PolicyWorld) -> None:
    case = world.open_case()
    sent = await world.send(case)
    delayed = bounce(sent, recipient=ANA, status="4.4.1", diagnostic="451 4.4.1 try later").replace(
        b"Action: failed", b"Action: delayed")
    ctx = world.context(delayed)
    await world.run_before(ctx, "classify")
    outcome = await stages.classify(ctx, world.session, world.services)

    assert isinstance(outcome, Finish) and outcome.disposition == Disposition.BOUNCE
    assert "4.4.1 temporary" in outcome.detail
    outbox = world.tables.outbox_by_message_id(parse(sent)["Message-ID"])
    assert outbox is not None
    (recipient,) = outbox.recipients
    assert (recipient.status, recipient.bounced_at) == ("pending", None)
    assert recipient.last_reply == "bounce 4.4.1: 451 4.4.1 try later"
    (event,) = world.session.rows(CaseEvent)
    assert "temporarily" in event["body"]


async def test_classify_finishes_a_bounce_of_mail_we_did_not_send_without_recording_it(
    world: PolicyWorld,
) -> None:
    theirs = new_mail(sender=ANA, subject="Lunch?", text="Lunch?")
    ctx = world.context(bounce(theirs, recipient="bill@acme.example"))
    await world.run_before(ctx, "classify")
    outcome = await stages.classify(ctx, world.session, world.services)
    assert isinstance(outcome, Finish) and outcome.disposition == Disposition.BOUNCE
    assert outcome.detail.endswith("failed bill@acme.example; the original message is not one of ours")
    assert world.session.info == {}


# --- identify: one sender, parsed strictly -------------------------------------------------------


@pytest.mark.parametrize(("sender", "problem"), [
    (f"{ANA}, {STRANGER}", "2 addresses in From"),
    (f'"{ANA}" <{STRANGER}>', "the display name of From is another address"),
    (f"Acme: {STRANGER};", "From uses group syntax"),
])
async def test_identify_refuses_a_mail_with_no_single_sender(
    world: PolicyWorld, sender: str, problem: str
) -> None:
    case = world.open_case()
    ctx = world.context(with_header(reply(await world.send(case), sender=ANA, text="Hi."), "From", sender))
    await world.run_before(ctx, "identify")
    outcome = await stages.identify(ctx, world.session, world.services)
    assert outcome == Finish(Disposition.REFUSED_UNAUTHORIZED, f"no single sender to trust: {problem}")
    (event,) = world.session.rows(SecurityEvent)
    assert (event["kind"], event["detail"], event["inbound_message_id"]) == ("ambiguous_sender", problem,
                                                                             ctx.row.id)
    assert ctx.replies == []  # whom it came from is unknown: not answered


async def test_identify_refuses_a_mail_with_two_from_headers(world: PolicyWorld) -> None:
    raw = new_mail(sender=ANA, subject="Hi", text="Hi.")
    ctx = world.context(f"From: {STRANGER}\r\n".encode() + raw)
    await world.run_before(ctx, "identify")
    outcome = await stages.identify(ctx, world.session, world.services)
    assert outcome == Finish(Disposition.REFUSED_UNAUTHORIZED, "no single sender to trust: 2 From headers")
    assert [e["kind"] for e in world.session.rows(SecurityEvent)] == ["ambiguous_sender"]


async def test_identify_lets_one_sender_go_on(world: PolicyWorld) -> None:
    ctx = world.context(new_mail(sender=f"Ana Alves <{ANA}>", subject="Hi", text="Hi."))
    await world.run_before(ctx, "identify")
    assert await stages.identify(ctx, world.session, world.services) == Next()
    assert world.session.info == {}


# --- match: which case --------------------------------------------------------------------------


@pytest.mark.parametrize(("via", "threading", "subject", "quote"), [
    ("header", True, False, False),
    ("subject", False, True, False),
    ("body", False, False, True),
])
async def test_match_finds_the_case_by_header_subject_or_body(
    world: PolicyWorld, via: str, threading: bool, subject: bool, quote: bool
) -> None:
    world.open_case(subject="Another problem")
    case = world.open_case()
    raw = reply(await world.send(case), sender=ANA, text="More logs.", keep_threading=threading,
                keep_subject=subject, quote=quote)
    ctx = world.context(raw)
    await world.run_before(ctx, "match")
    outcome = await stages.match(ctx, world.session, world.services)
    assert outcome == Next(f"case {case.number} by {via}")
    assert ctx.case is case
    assert ctx.row.case_id == case.id
    assert world.session.info == {}


async def test_match_accepts_a_token_made_with_an_old_key() -> None:
    old = "the-previous-reference-secret-42"
    world = PolicyWorld(reference={"old_secrets": [old]})
    case = world.open_case()
    assert case.number is not None
    token = make_token(case.number, old.encode())
    ctx = world.context(new_mail(sender=ANA, subject=f"RE: [{token}] Calls drop", text="Still dropping."))
    await world.run_before(ctx, "match")
    assert await stages.match(ctx, world.session, world.services) == Next(f"case {case.number} by subject")


async def test_match_refuses_a_forged_token_as_no_reference_and_records_it(world: PolicyWorld) -> None:
    case = world.open_case()
    fake = forged(token_of(await world.send(case)))
    ctx = world.context(new_mail(sender=STRANGER, subject=f"RE: [{fake}] Calls drop", text="Let me in."))
    await world.run_before(ctx, "match")
    outcome = await stages.match(ctx, world.session, world.services)

    assert outcome == NO_REFERENCE
    (event,) = world.session.rows(SecurityEvent)
    assert (event["kind"], event["detail"]) == ("invalid_reference", f"token {fake!r} failed its MAC")
    assert ctx.case is None and ctx.row.case_id is None
    assert kinds(ctx.replies) == [MailKind.NEW_CASE_REFUSED]


async def test_match_records_a_forged_subject_token_beside_a_valid_header(world: PolicyWorld) -> None:
    case = world.open_case()
    sent = await world.send(case)
    fake = forged(token_of(sent))
    ctx = world.context(reply(sent, sender=ANA, text="Hi.", subject_prefix=f"RE: [{fake}] ", quote=False))
    await world.run_before(ctx, "match")
    assert await stages.match(ctx, world.session, world.services) == Next(f"case {case.number} by header")
    assert [e["detail"] for e in world.session.rows(SecurityEvent)] == [f"token {fake!r} failed its MAC"]


async def test_match_quarantines_a_mail_that_refers_to_two_cases(world: PolicyWorld) -> None:
    first, second = world.open_case(), world.open_case(subject="Second problem")
    other_token = token_of(await world.send(second))
    raw = reply(await world.send(first), sender=ANA, text="Both?", keep_subject=False, quote=False)
    ctx = world.context(with_header(raw, "Subject", f"RE: [{other_token}] both"))
    await world.run_before(ctx, "match")
    outcome = await stages.match(ctx, world.session, world.services)
    assert outcome == Quarantine(f"refers to several cases: {first.number}, {second.number} (header+subject)")
    assert ctx.case is None and ctx.row.case_id is None
    assert ctx.replies == []


async def test_match_quarantines_a_valid_reference_to_a_case_that_does_not_exist(world: PolicyWorld) -> None:
    token = make_token("00004242", world.keys[0])
    ctx = world.context(new_mail(sender=ANA, subject=f"RE: [{token}] Lost case", text="Where is it?"))
    await world.run_before(ctx, "match")
    outcome = await stages.match(ctx, world.session, world.services)
    assert outcome == Quarantine("reference to case 00004242, which does not exist")
    assert ctx.replies == []


async def test_match_refuses_mail_without_reference_with_an_answer_that_names_only_the_sender(
    world: PolicyWorld,
) -> None:
    world.open_case()
    ctx = world.context(new_mail(sender=f"Mallory Malicious <{STRANGER}>", subject="Open one",
                                 text="Please."))
    await world.run_before(ctx, "match")
    outcome = await stages.match(ctx, world.session, world.services)
    assert outcome == NO_REFERENCE
    (answer,) = ctx.replies
    assert answer == Reply(MailKind.NEW_CASE_REFUSED, {
        "sender": {"email": STRANGER, "name": "Mallory Malicious"}, "notice_reference": None})
    assert ctx.case is None and world.session.info == {}


@pytest.mark.parametrize("how", ["in-reply-to", "subject"])
async def test_match_names_the_notice_a_refused_mail_answers(world: PolicyWorld, how: str) -> None:
    notice_mail = world.notice("MNT-2026-00042")
    headers = {"In-Reply-To": notice_mail} if how == "in-reply-to" else {}
    subject = "RE: Maintenance" if how == "in-reply-to" else "RE: mnt-2026-00042 planned maintenance"
    ctx = world.context(new_mail(sender=ANA, subject=subject, text="Can we move it?", extra_headers=headers))
    await world.run_before(ctx, "match")
    outcome = await stages.match(ctx, world.session, world.services)
    assert isinstance(outcome, Finish) and outcome.disposition == Disposition.REFUSED_NEW_CASE
    assert [r.context["notice_reference"] for r in ctx.replies] == ["MNT-2026-00042"]


# --- authorise: only a designated contact of the case's organisation ------------------------------


async def authorised(world: PolicyWorld, raw: bytes) -> tuple[MessageContext, Outcome]:
    ctx = world.context(raw)
    await world.run_before(ctx, "authorise")
    return ctx, await stages.authorise(ctx, world.session, world.services)


@pytest.mark.parametrize("sender", [ANA, ANA.upper(), f"Ana <{ANA.title()}>"])
async def test_authorise_lets_a_designated_contact_go_on(world: PolicyWorld, sender: str) -> None:
    case = world.open_case()
    ctx, outcome = await authorised(world, reply(await world.send(case), sender=sender, text="Hi."))
    assert outcome == Next(f"designated contact {ANA}")
    assert ctx.contact is world.ana
    assert world.session.info == {} and ctx.replies == []


def assert_refused(world: PolicyWorld, ctx: MessageContext, outcome: Outcome, reason: str) -> None:
    """Refused, recorded as a security event, answered with nothing about the case."""
    assert outcome == Finish(Disposition.REFUSED_UNAUTHORIZED, reason)
    assert ctx.case is not None and ctx.contact is None
    (event,) = world.session.rows(SecurityEvent)
    assert (event["kind"], event["detail"], event["inbound_message_id"]) == (
        "unauthorized_sender", f"{reason}; valid reference to case {ctx.case.number}", ctx.row.id)
    (answer,) = ctx.replies
    assert answer.kind == MailKind.UNAUTHORIZED_SENDER and answer.to is None and answer.automatic
    assert list(answer.context) == ["sender"] and answer.context["sender"]["email"] == ctx.sender


@pytest.mark.parametrize("who", ["not designated", "stranger", "removed", "another organisation's"])
async def test_authorise_refuses_a_sender_who_is_not_a_designated_contact(
    world: PolicyWorld, who: str
) -> None:
    sender = {"not designated": BOB, "stranger": STRANGER, "removed": "rita@acme.example",
              "another organisation's": "olga@globex.example"}[who]
    world.contact("rita@acme.example", world.org, removed=True)
    world.contact("olga@globex.example", world.organisation("Globex"))  # designated, of Globex
    case = world.open_case()
    ctx, outcome = await authorised(world, reply(await world.send(case), sender=sender, text="Any news?"))
    assert_refused(world, ctx, outcome, f"{sender} is not a designated contact")


@pytest.mark.parametrize(("sender", "accepted"), [
    ("JöRG@ACME.example", True),  # ASCII letters fold
    ("jÖrg@acme.example", False),  # others compare exactly
    ("\u212aate@acme.example", False),  # KELVIN SIGN, which Unicode folds into "k"
])
async def test_authorise_folds_only_ascii_letters_of_the_sender(
    world: PolicyWorld, sender: str, accepted: bool
) -> None:
    jorg = world.contact("jörg@acme.example", world.org)
    world.contact("kate@acme.example", world.org)
    case = world.open_case()
    raw = with_header(reply(await world.send(case), sender=ANA, text="Hi."), "From", sender)  # raw UTF-8
    ctx, outcome = await authorised(world, raw)
    if accepted:
        assert (outcome, ctx.contact) == (Next("designated contact jörg@acme.example"), jorg)
    else:
        assert ctx.sender == sender
        assert_refused(world, ctx, outcome, f"{sender} is not a designated contact")


async def test_authorise_refuses_a_designated_contact_whose_dmarc_failed_at_a_trusted_server(
    world: PolicyWorld,
) -> None:
    case = world.open_case()
    results = f"{TRUSTED_MX}; spf=fail smtp.mailfrom=acme.example; dmarc=fail header.from=acme.example"
    raw = reply(await world.send(case), sender=ANA, text="Hi.",
                extra_headers={"Authentication-Results": results})
    ctx, outcome = await authorised(world, raw)
    assert_refused(world, ctx, outcome, "DMARC failed at a trusted authserv-id")


async def test_authorise_ignores_a_dmarc_result_from_a_server_it_does_not_trust(world: PolicyWorld) -> None:
    case = world.open_case()
    results = "mx.evil.example; dmarc=fail header.from=acme.example"
    raw = reply(await world.send(case), sender=ANA, text="Hi.",
                extra_headers={"Authentication-Results": results})
    _, outcome = await authorised(world, raw)
    assert outcome == Next(f"designated contact {ANA}")


@pytest.mark.parametrize(("results", "applied"), [
    (None, False),
    (f"{TRUSTED_MX}; dmarc=pass header.from=acme.example", True),
    (f"{TRUSTED_MX}; dmarc=pass header.from=evil.example", False),
    (f"{TRUSTED_MX}; dmarc=none header.from=acme.example", False),
    ("mx.evil.example; dmarc=pass header.from=acme.example", False),
])
async def test_authorise_with_require_dmarc_pass_wants_a_pass_for_the_senders_domain(
    results: str | None, applied: bool
) -> None:
    world = PolicyWorld(inbound={"require_dmarc_pass": True})
    case = world.open_case()
    headers = {"Authentication-Results": results} if results else {}
    ctx, outcome = await authorised(world, reply(await world.send(case), sender=ANA, text="Hi.",
                                                 extra_headers=headers))
    if applied:
        assert outcome == Next(f"designated contact {ANA}")
    else:
        assert_refused(world, ctx, outcome,
                       "no DMARC pass from a trusted authserv-id (inbound.require_dmarc_pass)")
