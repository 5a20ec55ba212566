"""Exactly-once effect when the process dies: after the commit and before the IMAP move, and
between the fetch and the commit; and when a move in the background fails."""

from __future__ import annotations

import asyncio
import gc

import pytest
from sqlalchemy import func, select

from gateway.app import App
from gateway.clock import FrozenClock
from gateway.daemon import Daemon
from gateway.errors import TemporaryTransportError
from gateway.inbound.imap import client as imap_module
from gateway.inbound.loop import batch as batch_module
from gateway.inbound.loop import round as round_module
from gateway.inbound.loop import store
from gateway.models import CaseEvent, InboundMessage, Outbox
from gateway.outbound.transport import MemoryTransport
from testkit.mails import new_mail, reply, sent_mail, stored_raw
from testkit.world import ANA, STRANGER, add_customer, open_case, open_world, settings_for


class Crash(BaseException):
    """Stands for the process dying: nothing in the gateway catches it."""


@pytest.fixture
async def app(db_url: str, imap_account, clock: FrozenClock):
    settings = settings_for(db_url, mailboxes=[imap_account.mailbox_settings()])
    async with open_world(settings, clock) as app:
        await add_customer(app)
        yield app


async def effects(app: App, case_id: int) -> tuple[int, int, list[str]]:
    async with app.sessions() as session:
        replies = await session.scalar(
            select(func.count())
            .select_from(CaseEvent)
            .where(CaseEvent.case_id == case_id, CaseEvent.kind == "customer_reply")
        )
        refusals = await session.scalar(
            select(func.count()).select_from(Outbox).where(Outbox.kind == "new_case_refused")
        )
        dispositions = (
            await session.scalars(select(InboundMessage.disposition).order_by(InboundMessage.uid))
        ).all()
    return replies or 0, refusals or 0, list(dispositions)


async def test_crash_after_commit_before_move(
    app: App, imap_account, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = await open_case(app)
    imap_account.append(reply(await sent_mail(app, case.id), sender=ANA, text="Logs attached."))
    imap_account.append(new_mail(sender=STRANGER, subject="Please open a case", text="Broken."))

    async def crash(self, decided):
        if decided:  # the IMAP move of committed messages
            raise Crash
        return 0

    with monkeypatch.context() as patch:
        patch.setattr(round_module.InboxRound, "_move", crash)
        with pytest.raises(Crash):
            await Daemon(app, transport=MemoryTransport()).run_once()
    assert await effects(app, case.id) == (1, 1, ["applied", "refused_new_case"])
    assert len(imap_account.messages("INBOX")) == 2  # committed, not moved

    summary = await Daemon(app, transport=MemoryTransport()).run_once()
    assert summary.inbound.moved == 2
    assert await effects(app, case.id) == (1, 1, ["applied", "refused_new_case"])
    assert imap_account.messages("INBOX") == []
    assert len(imap_account.messages("Processed")) == 1 and len(imap_account.messages("Refused")) == 1


async def test_a_failed_move_in_the_background_ends_the_round_with_one_effect_each(
    db_url: str, imap_account, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of one: the first batch's move fails while the next batches are fetched and
    decided. The round ends (a temporary error: logged, the run goes on), nothing is left
    running with an unretrieved error, and the next run moves what was decided and decides
    the rest: each message takes effect once."""
    settings = settings_for(db_url, mailboxes=[imap_account.mailbox_settings(batch_size=1)])
    loop_errors: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda loop, context: loop_errors.append(context))
    try:
        async with open_world(settings, clock) as app:
            await add_customer(app)
            case = await open_case(app)
            imap_account.append(reply(await sent_mail(app, case.id), sender=ANA, text="Logs attached."))
            for n in range(3):
                imap_account.append(new_mail(sender=f"p{n}@example.org", subject=f"Try {n}", text="Open."))
            move = round_module.InboxRound._move

            async def first_move_fails(self, decided):
                if 1 in decided:
                    raise TemporaryTransportError("connection reset during MOVE")
                return await move(self, decided)

            with monkeypatch.context() as patch:
                patch.setattr(round_module.InboxRound, "_move", first_move_fails)
                await Daemon(app, transport=MemoryTransport()).run_once()  # the round fails, logged
            assert len(imap_account.messages("INBOX")) >= 1  # the first message: decided, not moved
            await Daemon(app, transport=MemoryTransport()).run_once()
            assert await effects(app, case.id) == (1, 3, ["applied"] + ["refused_new_case"] * 3)
            assert imap_account.messages("INBOX") == []
            assert len(imap_account.messages("Processed")) == 1 and len(imap_account.messages("Refused")) == 3
        gc.collect()
    finally:
        loop.set_exception_handler(None)
    assert loop_errors == []


async def test_a_move_failing_for_one_folder_marks_what_was_moved_before_it(
    app: App, imap_account, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A batch goes to its folders one MOVE each, then one transaction marks them moved: when
    # the MOVE to the second folder fails, the messages the first one moved are marked all
    # the same, and the next run moves (and marks) the rest.
    case = await open_case(app)
    imap_account.append(reply(await sent_mail(app, case.id), sender=ANA, text="Logs attached."))
    imap_account.append(new_mail(sender=STRANGER, subject="x", text="Open a case."))
    move = imap_module.AioImapMailbox.move

    async def refused_fails(self, uids, folder):
        if folder == "Refused":
            raise TemporaryTransportError("connection reset during MOVE")
        await move(self, uids, folder)

    with monkeypatch.context() as patch:
        patch.setattr(imap_module.AioImapMailbox, "move", refused_fails)
        await Daemon(app, transport=MemoryTransport()).run_once()  # the round fails, logged

    async def moved() -> list[tuple[str | None, bool]]:
        async with app.sessions() as session:
            rows = (await session.scalars(select(InboundMessage).order_by(InboundMessage.uid))).all()
            return [(r.disposition, r.moved) for r in rows]

    assert await moved() == [("applied", True), ("refused_new_case", False)]
    assert len(imap_account.messages("Processed")) == 1 and len(imap_account.messages("INBOX")) == 1
    await Daemon(app, transport=MemoryTransport()).run_once()
    assert await moved() == [("applied", True), ("refused_new_case", True)]
    assert imap_account.messages("INBOX") == [] and len(imap_account.messages("Refused")) == 1
    assert await effects(app, case.id) == (1, 1, ["applied", "refused_new_case"])


async def test_crash_between_fetch_and_commit(
    app: App, imap_account, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = await open_case(app)
    imap_account.append(reply(await sent_mail(app, case.id), sender=ANA, text="Logs attached."))
    real = batch_module.run_pipeline

    async def crash_before_commit(*args, **kwargs):
        await real(*args, **kwargs)  # every stage ran, the effects are in the transaction
        raise Crash

    with monkeypatch.context() as patch:
        patch.setattr(batch_module, "run_pipeline", crash_before_commit)
        with pytest.raises(Crash):
            await Daemon(app, transport=MemoryTransport()).run_once()
    async with app.sessions() as session:
        row = (await session.scalars(select(InboundMessage))).one()
    assert row.disposition is None and await stored_raw(app, row) is not None and row.attempts == 1
    assert (await effects(app, case.id))[0] == 0  # rolled back: no effect yet

    await Daemon(app, transport=MemoryTransport()).run_once()
    assert await effects(app, case.id) == (1, 0, ["applied"])
    assert imap_account.messages("INBOX") == []


async def test_message_failing_three_times_is_quarantined(app: App, imap_account, monkeypatch) -> None:
    imap_account.append(new_mail(sender=STRANGER, subject="x", text="y"))
    imap_account.append(new_mail(sender="other@example.org", subject="fine", text="fine"))

    async def boom(session, services, row, mailbox, parsed, lookups):
        if parsed.mail is not None and parsed.mail.subject == "x":
            raise RuntimeError("stage exploded")
        return await real(session, services, row, mailbox, parsed, lookups)

    real = batch_module.run_pipeline
    monkeypatch.setattr(batch_module, "run_pipeline", boom)
    for _ in range(3):
        await Daemon(app, transport=MemoryTransport()).run_once()
    async with app.sessions() as session:
        rows = {r.subject: r for r in (await session.scalars(select(InboundMessage))).all()}
    assert rows["fine"].disposition == "refused_new_case"
    assert rows["x"].disposition == "quarantined"
    assert rows["x"].attempts == 3 and "stage exploded" in rows["x"].error
    assert imap_account.messages("INBOX") == []
    assert len(imap_account.messages("Quarantine")) == 1


async def test_a_failing_message_shows_its_sender_and_subject_before_it_is_decided(
    app: App, imap_account, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A first attempt is only counted (the pipeline writes sender and subject with its
    # decision); a failure writes them with its error, and a second attempt as it begins (the
    # first may have died with the process, writing nothing).
    imap_account.append(new_mail(sender="other@example.org", subject="fails", text="y"))
    imap_account.append(new_mail(sender=STRANGER, subject="dies", text="z"))
    real = batch_module.run_pipeline

    async def failing(session, services, row, mailbox, parsed, lookups):
        if parsed.mail is not None and parsed.mail.subject == "fails":
            raise RuntimeError("stage exploded")
        if parsed.mail is not None and parsed.mail.subject == "dies":
            raise Crash
        return await real(session, services, row, mailbox, parsed, lookups)

    async def rows() -> list[tuple[object, ...]]:
        async with app.sessions() as session:
            found = (await session.scalars(select(InboundMessage).order_by(InboundMessage.uid))).all()
            return [(r.attempts, r.from_address, r.subject, r.disposition) for r in found]

    monkeypatch.setattr(batch_module, "run_pipeline", failing)
    with pytest.raises(Crash):
        await Daemon(app, transport=MemoryTransport()).run_once()
    assert await rows() == [(1, "other@example.org", "fails", None), (1, None, None, None)]
    with pytest.raises(Crash):
        await Daemon(app, transport=MemoryTransport()).run_once()
    assert await rows() == [(2, "other@example.org", "fails", None), (2, STRANGER, "dies", None)]


async def test_a_message_failing_once_is_decided_next_run_and_keeps_its_first_error(
    app: App, imap_account, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pipeline's rows are not loaded: what it does not set (the error of the attempt
    # before, the sender and subject written when the attempt began) must stay as stored.
    imap_account.append(new_mail(sender=STRANGER, subject="once", text="Open a case."))
    real = batch_module.run_pipeline
    calls: list[int] = []

    async def fails_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a passing hiccup")
        return await real(*args, **kwargs)

    monkeypatch.setattr(batch_module, "run_pipeline", fails_once)
    await Daemon(app, transport=MemoryTransport()).run_once()
    await Daemon(app, transport=MemoryTransport()).run_once()
    async with app.sessions() as session:
        row = (await session.scalars(select(InboundMessage))).one()
    assert (row.disposition, row.attempts, row.moved) == ("refused_new_case", 2, True)
    assert (row.subject, row.from_address) == ("once", STRANGER)
    assert row.message_id and row.content_hash and "a passing hiccup" in (row.error or "")
    assert [t["stage"] for t in row.trail][:2] == ["parse", "dedupe"]
    assert imap_account.messages("INBOX") == []


async def test_a_group_whose_commit_fails_is_decided_message_by_message(
    app: App, imap_account, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A failure at the group's flush names no message: each is then decided alone, so the one
    # that causes it is pinned and the others take effect once.
    case = await open_case(app)
    imap_account.append(reply(await sent_mail(app, case.id), sender=ANA, text="Logs attached."))
    imap_account.append(new_mail(sender=STRANGER, subject="x", text="breaks the flush"))
    imap_account.append(new_mail(sender="other@example.org", subject="fine", text="fine"))
    real = store.write_decided
    sizes: list[int] = []

    async def failing(session, rows):
        sizes.append(len(rows))
        if any(r.subject == "x" for r in rows):
            raise RuntimeError("constraint violated")
        await real(session, rows)

    monkeypatch.setattr(store, "write_decided", failing)
    await Daemon(app, transport=MemoryTransport()).run_once()
    # the group of three, then each alone; the next round tries the one left once more
    assert sizes == [3, 1, 1, 1, 1]
    assert await effects(app, case.id) == (1, 1, ["applied", None, "refused_new_case"])
    assert len(imap_account.messages("INBOX")) == 1

    await Daemon(app, transport=MemoryTransport()).run_once()
    async with app.sessions() as session:
        broken = (await session.scalars(select(InboundMessage).where(InboundMessage.subject == "x"))).one()
    assert broken.disposition == "quarantined" and broken.attempts == 3
    assert "constraint violated" in (broken.error or "")
    assert await effects(app, case.id) == (1, 1, ["applied", "quarantined", "refused_new_case"])
    assert imap_account.messages("INBOX") == []
