"""The respond step (gateway/inbound/policy/respond.py) on its own: the answers the stages
decided go through the outbox in the message's transaction, in the sender's thread, tied to a
case only where they may be, and capped per address and per hour (no backscatter), against
the in-memory world of tests/unit/policy_world.py."""

from __future__ import annotations

from datetime import timedelta
from email.utils import make_msgid

import pytest

from gateway.inbound.policy import stages
from gateway.inbound.policy.apply import apply_update
from gateway.inbound.policy.context import MessageContext, Reply
from gateway.inbound.policy.respond import respond
from gateway.outbound import dedupe
from gateway.outbound.kinds import MailKind
from testkit.mails import new_mail, parse, reply, with_header
from tests.unit.policy_world import ANA, BOB, CARE_MANAGEMENT, OUR_ADDRESS, STRANGER, PolicyWorld


@pytest.fixture
def world() -> PolicyWorld:
    return PolicyWorld()


def refusal(address: str = STRANGER) -> Reply:
    """The answer to a mail without reference, as the match stage decides it."""
    return Reply(MailKind.NEW_CASE_REFUSED,
                 {"sender": {"email": address, "name": ""}, "notice_reference": None})


async def responded(world: PolicyWorld, raw: bytes, *replies: Reply) -> tuple[MessageContext, list[str]]:
    """The notes of the respond step for a mail whose stages decided ``replies``."""
    ctx = world.context(raw)
    ctx.replies.extend(replies)
    return ctx, await respond(ctx, world.session, world.services)


def queued(world: PolicyWorld) -> list[tuple[str, list[str]]]:
    """(kind, recipients) of each outbox row queued in the session."""
    return [(values["kind"], [r["address"] for r in recipients])
            for values, recipients in world.session.mail()]


async def test_respond_queues_an_answer_to_the_sender_in_the_senders_thread(world: PolicyWorld) -> None:
    thread = [make_msgid(domain="acme.example") for _ in range(8)]
    raw = new_mail(sender=f"Mallory {'M' * 80} <{STRANGER}>", subject="Open one", text="Please.",
                   extra_headers={"References": " ".join(thread)})
    ctx, notes = await responded(world, raw, refusal())

    assert notes == [f"new_case_refused: queued to {STRANGER}"]
    ((values, recipients),) = world.session.mail()
    assert (values["kind"], values["dedupe_key"], values["inbound_message_id"], values["case_id"]) == (
        "new_case_refused", dedupe.inbound_answer(ctx.row.id, "new_case_refused"), ctx.row.id, None)
    assert [r["address"] for r in recipients] == [STRANGER]
    sent = parse(values["data"])
    own = parse(raw)["Message-ID"]
    assert sent["In-Reply-To"] == own
    assert sent["References"].split() == [*thread[-5:], own]  # not the hundred a stranger may list
    name = sent["To"].addresses[0].display_name
    assert "".join(name.split()) == f"Mallory{'M' * 55}…"  # a short name only (the header folds it)
    assert sent["Auto-Submitted"] == "auto-replied"
    assert await ctx.lookups.answers_today(STRANGER) == 1  # counted at once, for the group's next


async def test_respond_leaves_out_a_junk_message_id(world: PolicyWorld) -> None:
    raw = with_header(new_mail(sender=STRANGER, subject="Open one", text="Please."), "Message-ID", "junk")
    await responded(world, raw, refusal())
    ((values, _),) = world.session.mail()
    sent = parse(values["data"])
    assert (sent["In-Reply-To"], sent["References"]) == (None, None)


async def test_respond_ties_a_closed_case_answer_to_the_case(world: PolicyWorld) -> None:
    case = world.open_case(closed=timedelta(days=3))
    ctx = world.context(reply(await world.send(case, MailKind.CASE_CLOSED), sender=ANA, text="Again."))
    await world.run_before(ctx, "apply")
    await apply_update(ctx, world.session, world.services)
    assert await respond(ctx, world.session, world.services) == [f"closed_case_reply: queued to {ANA}"]
    ((values, _),) = world.session.mail()
    assert (values["kind"], values["case_id"]) == ("closed_case_reply", case.id)


async def test_respond_ties_a_refusal_to_no_case_even_with_a_valid_reference(world: PolicyWorld) -> None:
    """Nothing, not even a reply to the refusal, may lead back to the case."""
    case = world.open_case()
    ctx = world.context(reply(await world.send(case), sender=BOB, text="Any news?"))
    await world.run_before(ctx, "authorise")
    await stages.authorise(ctx, world.session, world.services)
    assert ctx.case is case and [r.kind for r in ctx.replies] == [MailKind.UNAUTHORIZED_SENDER]
    assert await respond(ctx, world.session, world.services) == [f"unauthorized_sender: queued to {BOB}"]
    ((values, _),) = world.session.mail()
    assert (values["kind"], values["case_id"]) == ("unauthorized_sender", None)
    data = values["data"].lower()
    assert case.number is not None and case.number.encode() not in data
    assert b"calls drop" not in data and b"ref:" not in data


@pytest.mark.parametrize("sender", [OUR_ADDRESS.upper(), "<>"])
async def test_respond_never_answers_ourselves_or_nobody(world: PolicyWorld, sender: str) -> None:
    raw = with_header(new_mail(sender=STRANGER, subject="Open one", text="Please."), "From", sender)
    _, notes = await responded(world, raw, refusal())
    assert notes == ["new_case_refused: not sent (no sender to answer)"]
    assert world.session.mail() == []


async def test_respond_does_not_send_to_an_address_mail_cannot_go_to(world: PolicyWorld) -> None:
    raw = with_header(new_mail(sender=STRANGER, subject="Open one", text="Please."),
                      "From", "jörg@acme.example")
    _, notes = await responded(world, raw, refusal())
    assert notes == ["new_case_refused: not sent (cannot send to 'jörg@acme.example')"]
    assert world.session.mail() == []


async def test_respond_caps_automatic_answers_per_sender_and_day() -> None:
    world = PolicyWorld(limits={"auto_replies_per_sender_per_day": 2})
    attempt = new_mail(sender=STRANGER, subject="Open one", text="Please.")
    await world.decide(attempt)
    world.clock.advance(hours=1)
    await world.decide(new_mail(sender=STRANGER, subject="Open two", text="Please."))

    world.clock.advance(hours=22, minutes=59)
    _, notes = await responded(world, new_mail(sender=STRANGER, subject="Three", text="Please."), refusal())
    assert notes == [f"new_case_refused: not sent (rate limit for {STRANGER})"]
    other = new_mail(sender=ANA, subject="Other sender", text="Please.")
    _, notes = await responded(world, other, refusal(ANA))
    assert notes == [f"new_case_refused: queued to {ANA}"]  # per address
    world.commit()

    world.clock.advance(minutes=1)  # the first answer is 24 hours old
    _, notes = await responded(world, new_mail(sender=STRANGER, subject="Four", text="Please."), refusal())
    assert notes == [f"new_case_refused: queued to {STRANGER}"]


async def test_respond_sends_what_care_management_must_know_whatever_the_cap() -> None:
    world = PolicyWorld(
                        limits={"auto_replies_per_sender_per_day": 0, "auto_replies_per_hour": 0})
    case = world.open_case()
    ctx = world.context(reply(await world.send(case), sender=ANA, text="Escalation Request\nNow."))
    await world.run_before(ctx, "apply")
    await apply_update(ctx, world.session, world.services)
    assert [(r.kind, r.automatic) for r in ctx.replies] == [(MailKind.ESCALATION_TO_MANAGEMENT, False)]
    notes = await respond(ctx, world.session, world.services)
    assert notes == [f"escalation_to_management: queued to {CARE_MANAGEMENT}"]
    assert queued(world) == [("escalation_to_management", [CARE_MANAGEMENT])]


async def test_respond_caps_automatic_answers_per_hour_and_tells_care_management_once() -> None:
    world = PolicyWorld(limits={"auto_replies_per_hour": 1})
    strangers = [f"robot{n}@spam.example" for n in range(4)]
    decided = await world.decide_group([new_mail(sender=s, subject="Hi", text="Hi.") for s in strangers[:3]])
    assert [d.answered for d in decided] == [[("new_case_refused", [strangers[0]])], [], []]
    assert [d.row.trail[-1]["detail"] for d in decided[1:]] == [
        "new_case_refused: not sent (limits.auto_replies_per_hour, 1, reached)"] * 2
    paused = [o for o in world.tables.outbox if o.kind == "auto_replies_paused"]
    assert [[r.address for r in o.recipients] for o in paused] == [[CARE_MANAGEMENT]]

    world.clock.advance(minutes=30)  # the same clock hour: care management knows already
    (later,) = await world.decide_group([new_mail(sender=strangers[3], subject="Hi", text="Hi.")])
    assert later.answers == []
    assert len([o for o in world.tables.outbox if o.kind == "auto_replies_paused"]) == 1

    world.clock.advance(minutes=30)  # the first answer is an hour old
    (next_hour,) = await world.decide_group([new_mail(sender=strangers[3], subject="Again", text="Hi.")])
    assert next_hour.answered == [("new_case_refused", [strangers[3]])]


async def test_respond_queues_an_answer_once_per_message(world: PolicyWorld) -> None:
    """A message decided again (a retry after a crash, a quarantine release) is not answered twice."""
    raw = new_mail(sender=STRANGER, subject="Open one", text="Please.")
    ctx, notes = await responded(world, raw, refusal())
    assert notes == [f"new_case_refused: queued to {STRANGER}"]
    world.commit()
    again = world.context(raw)
    again.row, again.replies = ctx.row, [refusal()]
    assert await respond(again, world.session, world.services) == ["new_case_refused: queued before"]
    assert world.session.mail() == []
