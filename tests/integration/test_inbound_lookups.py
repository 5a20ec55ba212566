"""The group prefetch answers every question as asking it alone would, and asks nothing more.

State is made through the real pipeline (a reply applied, a new-case attempt refused and
answered), then the same questions go to a prefetched :class:`Lookups` and to a fresh one that
asks the database key by key; known keys, unknown keys and odd spellings alike.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from typing import Any

from sqlalchemy import event, select

from gateway.clock import FrozenClock
from gateway.daemon import Daemon
from gateway.inbound.mail.bounce import BounceReport, FailedRecipient
from gateway.inbound.mail.parsed import ParsedMail
from gateway.inbound.mail.replies.sent import SentText, forget_sent_texts
from gateway.inbound.policy.lookups import Expected, Lookups
from gateway.models import Case, Outbox
from gateway.outbound import dedupe
from gateway.outbound.kinds import MailKind
from gateway.outbound.transport import MemoryTransport
from gateway.threading.matcher import TokenScan
from testkit.mails import inbound_rows, new_mail, reply, sent_mail
from testkit.world import ANA, BOB, STRANGER, add_customer, open_case, open_world, settings_for


async def test_prefetched_answers_are_the_answers_asked_one_by_one(
    db_url: str, imap_account: Any, clock: FrozenClock
) -> None:
    settings = settings_for(db_url, mailboxes=[imap_account.mailbox_settings()])
    async with open_world(settings, clock) as app:
        await add_customer(app)
        case = await open_case(app)
        other = await open_case(app, subject="Second problem")
        imap_account.append(reply(await sent_mail(app, case.id), sender=ANA, text="Logs attached."))
        imap_account.append(new_mail(sender=STRANGER, subject="Open one", text="Please."))
        await Daemon(app, transport=MemoryTransport()).run_once()
        applied, refused = await inbound_rows(app)
        assert (applied.disposition, refused.disposition) == ("applied", "refused_new_case")
        async with app.sessions() as session:
            ours = (await session.scalars(select(Outbox).order_by(Outbox.id))).all()
            org = (await session.get(Case, case.id)).organisation_id  # type: ignore[union-attr]
        acknowledgement = next(o for o in ours if o.case_id == case.id)
        answer = next(o for o in ours if o.kind == "new_case_refused")

        bounce = BounceReport(recipients=(FailedRecipient(ANA, "5.1.1", True, "no such user"),),
                              original_message_ids=(acknowledgement.message_id, "<gone@nowhere.example>"),
                              evidence="a test")
        group = [
            Expected(applied.id, ParsedMail(message_id=applied.message_id, from_address=ANA,
                                            in_reply_to=(acknowledgement.message_id,)),
                     TokenScan(subject=frozenset({case.number or ""})), quotes_maybe_ours=True),
            Expected(refused.id, ParsedMail(message_id=refused.message_id, from_address=STRANGER)),
            Expected(999_999, ParsedMail(message_id="<new@example.org>", from_address=BOB.upper(),
                                         references=("<unknown@example.org>",), bounce=bounce),
                     TokenScan(body=frozenset({other.number or "", "99999999"}))),
        ]
        asked = [
            ("original_of", (applied.message_id, applied.content_hash, 0)),
            ("original_of", (applied.message_id, applied.content_hash, applied.id)),
            ("original_of", (applied.message_id, "another hash", 0)),
            ("original_of", ("<new@example.org>", "h", 0)),
            ("numbers_by_message_ids", ([acknowledgement.message_id, "<unknown@example.org>"],)),
            ("numbers_by_message_ids", ([],)),
            ("case", (case.number,)), ("case", (other.number,)), ("case", ("99999999",)),
            ("contact", (org, ANA)), ("contact", (org, BOB.upper())), ("contact", (org, STRANGER)),
            ("answers_today", (STRANGER,)), ("answers_today", (ANA,)),
            ("answered", (refused.id, answer.dedupe_key)),
            ("answered", (applied.id, dedupe.inbound_answer(applied.id, "new_case_refused"))),
            ("outbound", ([acknowledgement.message_id, "<gone@nowhere.example>"],)),
            ("sent_text", (case.id, [acknowledgement.message_id])),
        ]

        async def answers(lookups: Lookups) -> list[Any]:
            found = []
            for name, args in asked:
                value = await getattr(lookups, name)(*args)
                if isinstance(value, Case):
                    value = value.number
                elif hasattr(value, "email"):
                    value = (value.organisation_id, value.email, value.designated)
                elif isinstance(value, list) and value and isinstance(value[0], Outbox):
                    value = [(o.id, [r.address for r in o.recipients]) for o in value]
                elif isinstance(value, SentText):
                    value = sorted(value.lines)
                found.append(value)
            return found

        async with app.sessions() as session:
            expected = await answers(Lookups(session, clock.now()))
        forget_sent_texts()  # read once per process: the prefetch must read them again
        async with app.sessions() as session:
            prefetched = await Lookups.prefetch(session, clock.now(), group)
            statements: list[str] = []
            event.listen(session.sync_session.get_bind(), "before_cursor_execute",
                         lambda *args: statements.append(args[2]))
            got = await answers(prefetched)
        assert got == expected
        assert statements == []  # everything the group asks was fetched up front
        assert expected[0] == applied.id and expected[1] is None and expected[2] is None
        assert expected[4] == {case.number}
        assert expected[6:9] == [case.number, other.number, None]
        assert expected[9][1] == ANA and expected[10][1] == BOB and expected[11] is None
        assert expected[12:14] == [1, 0] and expected[14:16] == [True, False]
        assert hash("please reply above this line") in expected[17]  # the acknowledgement's words


async def test_answers_queued_in_the_group_count_against_the_limit(db_url: str, clock: FrozenClock) -> None:
    async with open_world(settings_for(db_url), clock) as app, app.sessions() as session:
        lookups = await Lookups.prefetch(session, clock.now(), [
            Expected(1, ParsedMail(from_address=STRANGER)),
        ])
        assert await lookups.answers_today(STRANGER) == 0
        lookups.count_answer(MailKind.NEW_CASE_REFUSED, STRANGER)
        lookups.count_answer(MailKind.ESCALATION_TO_MANAGEMENT, STRANGER)  # not an automatic answer
        assert await lookups.answers_today(STRANGER) == 1


async def test_on_sqlite_every_prefetch_query_is_answered_through_an_index_on_its_keys(
    db_templates: Any, tmp_path: Any, clock: FrozenClock
) -> None:
    """SQLite has no table statistics unless told to gather them, and then plans by rules of
    thumb. The rate-limit count was driven from the index on the outbox's kind (reading every
    automatic answer ever sent, for each group of messages), and the answers queued for a
    group's messages were found by reading the whole outbox. A group of 150 messages, as the
    daemon prefetches it: no query may scan a table or start from the kind."""
    path = tmp_path / "gateway.db"
    shutil.copyfile(db_templates.sqlite(), path)
    async with open_world(settings_for(f"sqlite+aiosqlite:///{path}"), clock) as app:
        await add_customer(app)
        case = await open_case(app)
        bounce = BounceReport(recipients=(FailedRecipient(ANA, "5.1.1", True, "no such user"),),
                              original_message_ids=("<sent@cg.example>",), evidence="a test")
        group = [Expected(n, ParsedMail(message_id=f"<m{n}@example.org>", from_address=f"p{n}@example.org",
                                        in_reply_to=(f"<r{n}@cg.example>",), bounce=bounce),
                          TokenScan(subject=frozenset({case.number or "", f"{n:08d}"})))
                 for n in range(1, 151)]
        statements: list[tuple[str, Any]] = []
        async with app.sessions() as session:
            event.listen(session.sync_session.get_bind(), "before_cursor_execute",
                         lambda conn, cursor, sql, params, *rest: statements.append((sql, params)))
            await Lookups.prefetch(session, clock.now(), group)
    plans = []
    with contextlib.closing(sqlite3.connect(path)) as conn:
        for sql, params in statements:
            plans.append([row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)])
    assert len(plans) >= 7
    for (sql, _), plan in zip(statements, plans, strict=True):
        assert plan and all(step.startswith(("SEARCH", "USE TEMP B-TREE")) for step in plan), (sql, plan)
        assert not any("ix_outbox_kind" in step for step in plan), (sql, plan)
