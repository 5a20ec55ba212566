"""The in-memory twin of the lookups answers as the real :class:`Lookups` does: one world, its
tables copied into an in-memory SQLite database, the same questions asked of both (known keys,
unknown keys, odd spellings, and the group's own effects: an answer counted, a message
remembered). A change of what a lookup means must change the twin with it, or this fails.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import insert, inspect
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import StaticPool

from gateway.inbound.mail.replies.sent import SentText
from gateway.inbound.policy.lookups import Lookups
from gateway.models import (
    Base,
    Case,
    Contact,
    InboundMessage,
    Notice,
    Organisation,
    Outbox,
    OutboxRecipient,
)
from gateway.outbound import dedupe
from gateway.outbound.kinds import MailKind
from testkit.mails import new_mail, parse, reply
from tests.unit.memory_lookups import MemoryLookups
from tests.unit.policy_world import ANA, BOB, STRANGER, PolicyWorld


def columns(obj: Any) -> dict[str, Any]:
    return {a.key: getattr(obj, a.key) for a in inspect(type(obj)).column_attrs if a.key in obj.__table__.c}


async def copied(world: PolicyWorld, session: AsyncSession) -> None:
    """The world's tables as rows of the real schema."""
    organisations = {c.organisation.id: c.organisation for c in world.tables.contacts}
    groups: list[tuple[Any, list[dict[str, Any]]]] = [
        (Organisation, [columns(o) for o in organisations.values()]),
        (Contact, [columns(c) for c in world.tables.contacts]),
        (Case, [columns(c) for c in world.tables.cases]),
        (Notice, [columns(n) for n in world.tables.notices]),
        (InboundMessage, [{"id": r.id, "mailbox": "care", "uidvalidity": 1, "uid": r.id, "size": 1,
                           "received_at": world.clock.now(), "message_id": r.message_id,
                           "content_hash": r.content_hash, "disposition": r.disposition,
                           "trail": r.trail, "case_id": r.case_id} for r in world.tables.decided]),
        (Outbox, [{**columns(o), "status": "sent", "envelope_from": "care@vendor.example",
                   "subject": o.subject or "", "next_attempt_at": o.created_at, "expires_at": o.created_at,
                   "attempts": 1} for o in world.tables.outbox]),
        (OutboxRecipient, [columns(r) for o in world.tables.outbox for r in o.recipients]),
    ]
    for model, rows in groups:
        if rows:
            await session.execute(insert(model), rows)
    await session.commit()


@pytest.fixture
async def session() -> AsyncIterator[AsyncSession]:
    engine = create_async_engine("sqlite+aiosqlite://", poolclass=StaticPool)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        async with AsyncSession(engine, expire_on_commit=False) as session:
            yield session
    finally:
        await engine.dispose()


def comparable(value: Any) -> Any:
    if isinstance(value, Case):
        return ("case", value.id, value.number, value.organisation_id)
    if isinstance(value, Contact):
        return ("contact", value.id, value.organisation_id, value.email, value.designated)
    if isinstance(value, list) and value and isinstance(value[0], Outbox):
        return [(o.id, o.case_id, [r.address for r in o.recipients]) for o in value]
    if isinstance(value, SentText):
        return (sorted(value.lines), sorted(value.triples))
    return value


async def test_the_twin_answers_every_question_as_the_real_lookups_do(session: AsyncSession) -> None:
    world = PolicyWorld(limits={"auto_replies_per_hour": 100})
    world.contact("rita@acme.example", world.org, removed=True)
    globex = world.organisation("Globex")
    world.contact("olga@globex.example", globex)
    case, quiet = world.open_case(), world.open_case(subject="Nothing sent yet")
    acknowledgement = await world.send(case)
    request = await world.send(case, MailKind.INFO_REQUESTED, message="Which SBC version?")
    notice_mail = world.notice("MNT-2026-00042")
    world.clock.advance(hours=-30)
    old = await world.decide(new_mail(sender="old@spam.example", subject="Long ago", text="Please."))
    world.clock.advance(hours=25)
    earlier = await world.decide(new_mail(sender="earlier@spam.example", subject="Today", text="Please."))
    world.clock.advance(hours=4, minutes=30)
    applied = await world.decide(reply(request, sender=ANA, text="Version 4.2."))
    refused = await world.decide(new_mail(sender=STRANGER, subject="Open one", text="Please."))
    world.clock.advance(minutes=45)
    assert [d.row.disposition for d in (applied, refused, earlier, old)] == [
        "applied", "refused_new_case", "refused_new_case", "refused_new_case"]
    (answer,) = refused.answers
    ack_id, request_id = parse(acknowledgement)["Message-ID"], parse(request)["Message-ID"]
    org = world.org.id
    message_id, content_hash = applied.row.message_id or "", applied.row.content_hash
    asked: list[tuple[str, tuple[Any, ...]]] = [
        ("original_of", (message_id, content_hash, 0)),
        ("original_of", (message_id, content_hash, applied.row.id)),
        ("original_of", (message_id, "another hash", 0)),
        ("original_of", ("<new@example.org>", "h", 0)),
        ("numbers_by_message_ids", ([ack_id, "<unknown@example.org>", notice_mail],)),
        ("numbers_by_message_ids", ([notice_mail, ""],)),
        ("numbers_by_message_ids", ([],)),
        ("case", (case.number,)), ("case", (quiet.number,)), ("case", ("99999999",)),
        ("contact", (org, ANA)), ("contact", (org, ANA.upper())), ("contact", (org, BOB)),
        ("contact", (org, "rita@acme.example")), ("contact", (org, STRANGER)), ("contact", (org, "")),
        ("contact", (org, "not an address")), ("contact", (globex.id, ANA)),
        ("contact", (globex.id, "olga@globex.example")),
        ("answers_today", (STRANGER,)), ("answers_today", (ANA,)), ("answers_today", ("old@spam.example",)),
        ("answers_today", ("earlier@spam.example",)),
        ("answers_this_hour", ()),
        ("queued", (answer.dedupe_key,)), ("queued", ("auto-replies-paused:2026-11-02T09",)),
        ("answered", (refused.row.id, answer.dedupe_key)),
        ("answered", (applied.row.id, dedupe.inbound_answer(applied.row.id, "new_case_refused"))),
        ("outbound", ([request_id, ack_id, "<gone@nowhere.example>", ack_id],)),
        ("outbound", ([notice_mail],)),
        ("sent_text", (case.id, [request_id])),
        ("sent_text", (case.id, ["<unknown@example.org>"])),
        ("sent_text", (quiet.id, [ack_id])),
        ("replied_notice", ("Re: planned maintenance", [notice_mail])),
        ("replied_notice", ("RE: mnt-2026-00042 tonight?", ["<unknown@example.org>"])),
        ("replied_notice", ("RE: MNT-2026-99999", [])),
        ("replied_notice", ("Re: your case", [ack_id])),
    ]

    async def answers(lookups: Any) -> list[Any]:
        found = [comparable(await getattr(lookups, name)(*args)) for name, args in asked]
        found.append(await lookups.answers_today(STRANGER))
        lookups.count_answer(MailKind.NEW_CASE_REFUSED, STRANGER)
        lookups.count_answer(MailKind.ESCALATION_TO_MANAGEMENT, STRANGER)  # not an automatic answer
        found += [await lookups.answers_today(STRANGER), await lookups.answers_this_hour()]
        lookups.remember(refused.row)
        found.append(await lookups.original_of(refused.row.message_id, refused.row.content_hash, 0))
        lookups.remember_queued("auto-replies-paused:2026-11-02T09")
        found.append(await lookups.queued("auto-replies-paused:2026-11-02T09"))
        return found

    await copied(world, session)
    real = await answers(Lookups(session, world.clock.now()))
    twin = await answers(MemoryLookups(world.tables, world.clock.now()))
    assert twin == real
    assert real[0:4] == [applied.row.id, None, None, None]
    assert real[4:7] == [{case.number}, set(), set()]
    assert [r[0] if r else None for r in real[7:10]] == ["case", "case", None]
    assert [r[3:] if r else None for r in real[10:19]] == [
        (ANA, True), (ANA, True), (BOB, False), ("rita@acme.example", False), None, None, None, None,
        ("olga@globex.example", True)]
    assert real[19:24] == [1, 0, 0, 1, 1]  # a day's answers to each address; the last hour's to all
    assert real[24:28] == [True, False, True, False]
    assert real[-5:] == [1, 2, 2, refused.row.id, True]
    assert real[30] is not None and real[32] is None  # something sent on the case; nothing on the other
    assert real[33:37] == ["MNT-2026-00042", "MNT-2026-00042", None, None]
