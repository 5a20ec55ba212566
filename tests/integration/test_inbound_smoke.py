"""End to end on a real Dovecot: a designated contact's reply updates the case."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select, text
from structlog.testing import capture_logs

from gateway.app import App
from gateway.cases import get_case, timeline
from gateway.clock import FrozenClock
from gateway.daemon import Daemon
from gateway.inbound.loop.runner import MailboxRunner
from gateway.models import InboundMessage
from gateway.outbound.transport import MemoryTransport
from testkit.mails import new_mail, reply, sent_mail
from testkit.world import ANA, add_customer, open_case, open_world, settings_for


@pytest.fixture
async def app(db_url: str, imap_account, clock: FrozenClock):
    settings = settings_for(db_url, mailboxes=[imap_account.mailbox_settings()])
    async with open_world(settings, clock) as app:
        await add_customer(app)
        yield app


async def test_reply_is_applied(app: App, imap_account) -> None:
    case = await open_case(app)
    original = await sent_mail(app, case.id)
    imap_account.append(reply(original, sender=ANA, text="Here are the logs you asked for."))
    summary = await Daemon(app, transport=MemoryTransport()).run_once()
    assert summary.inbound.decided == 1
    async with app.sessions() as session:
        row = (await session.scalars(select(InboundMessage))).one()
        assert row.disposition == "applied", row.trail
        events = await timeline(session, await get_case(session, case.number))
    assert events[-1].kind == "customer_reply"
    assert events[-1].body == "Here are the logs you asked for."
    assert imap_account.messages("INBOX") == []
    assert len(imap_account.messages("Processed")) == 1


async def test_a_group_updates_rows_before_it_inserts_the_rows_that_point_to_them(
    app: App, imap_account
) -> None:
    """The group's cases and inbound rows are updated before its timeline events, answers and
    attachments are inserted: on PostgreSQL a foreign key check locks the row it points to,
    a write of its own unless the transaction has updated that row already."""
    case = await open_case(app)
    async with app.sessions.begin() as session:  # awaiting information: the reply changes the case
        await (await app.care(session)).request_info(session, case.number, "Logs, please.")
    original = await sent_mail(app, case.id)
    imap_account.append(reply(original, sender=ANA, text="Logs attached.",
                               attachments=[("logs.txt", "text/plain", b"x")]))
    imap_account.append(new_mail(sender="someone@example.org", subject="Hello", text="Open a case"))
    statements: list[str] = []

    def record(conn, cursor, statement: str, *args) -> None:
        statements.append(" ".join(statement.split()).lower())

    event.listen(app.engine.sync_engine, "before_cursor_execute", record)
    try:
        assert (await Daemon(app, transport=MemoryTransport()).run_once()).inbound.decided == 2
    finally:
        event.remove(app.engine.sync_engine, "before_cursor_execute", record)

    def first(prefix: str, containing: str = "") -> int:
        return next(i for i, s in enumerate(statements) if s.startswith(prefix) and containing in s)

    decided = first("update inbound_messages set", "coalesce(")
    assert first("update cases set") < decided  # the cases, then the decided rows, then:
    for inserted in ("insert into case_events", "insert into attachments", "insert into outbox "):
        assert first(inserted) > decided, inserted


async def test_several_mailboxes_and_the_same_mail_in_both(db_url: str, dovecot, imap_account, clock) -> None:
    """Two configured mailboxes are both watched; a reply sent to both addresses is one update."""
    import secrets

    from tests.plugins.dovecot import ImapAccount

    second = ImapAccount(dovecot, f"u{secrets.token_hex(6)}", secrets.token_urlsafe(12))
    dovecot.add_user(second.username, second.password)
    boxes = [imap_account.mailbox_settings(name="care"), second.mailbox_settings(name="support")]
    async with open_world(settings_for(db_url, mailboxes=boxes), clock) as app:
        await add_customer(app)
        case = await open_case(app)
        mail = reply(await sent_mail(app, case.id), sender=ANA, text="Sent to both of your addresses.")
        imap_account.append(mail)
        second.append(mail)
        summary = await Daemon(app, transport=MemoryTransport()).run_once()
        assert summary.inbound.decided == 2
        async with app.sessions() as session:
            rows = (await session.scalars(select(InboundMessage).order_by(InboundMessage.mailbox))).all()
            events = await timeline(session, await get_case(session, case.number))
    assert [(r.mailbox, r.disposition) for r in rows] == [("care", "applied"), ("support", "duplicate")]
    assert [e.kind for e in events].count("customer_reply") == 1
    assert imap_account.messages("INBOX") == [] and second.messages("INBOX") == []


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_one_replica_at_a_time_polls_a_mailbox(app: App, imap_account) -> None:
    """On PostgreSQL a mailbox's advisory lock keeps a second daemon off it until released."""
    first, second = Daemon(app, transport=MemoryTransport()), Daemon(app, transport=MemoryTransport())
    await first._build()
    await second._build()
    holder = first.runners[0]
    assert await holder.lock.hold()
    imap_account.append(new_mail(sender="someone@example.org", subject="Hello", text="Open a case"))
    try:
        assert (await second.runners[0].run_once()).seen == 0  # another replica has it
        assert len(imap_account.messages("INBOX")) == 1
    finally:
        await holder.lock.release()
    assert (await second.runners[0].run_until_empty()).decided == 1
    await first._close()
    await second._close()


async def end_lock_session(app: App, runner: MailboxRunner) -> None:
    """What a database restart does to the runner's mailbox lock: its session is terminated
    (and gone before this returns: terminating is asynchronous)."""
    assert runner.lock.connection is not None
    pid = await runner.lock.connection.scalar(text("SELECT pg_backend_pid()"))
    async with app.engine.connect() as conn:
        assert await conn.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        while await conn.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}):
            pass


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_releasing_a_lock_whose_session_died_discards_it_quietly(app: App) -> None:
    """Stopping after a database restart: the lock went with its session; giving it back
    logs that and does not fail the shutdown, and the dead connection is not pooled again."""
    daemon = Daemon(app, transport=MemoryTransport())
    await daemon._build()
    runner = daemon.runners[0]
    try:
        assert await runner.lock.hold()
        await end_lock_session(app, runner)
        with capture_logs() as logs:
            await runner.lock.release()
        assert runner.lock.connection is None
        assert [e["event"] for e in logs] == ["inbound.mailbox_lock_lost"]
        async with app.engine.connect() as conn:  # the pool hands out live connections only
            assert await conn.scalar(text("SELECT 1")) == 1
    finally:
        await daemon._close()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_a_replica_whose_lock_session_died_asks_again(app: App) -> None:
    """After a database restart the lock is gone with its session: another replica may take
    it, and the first one must not go on as if it still held it."""
    first, second = Daemon(app, transport=MemoryTransport()), Daemon(app, transport=MemoryTransport())
    await first._build()
    await second._build()
    holder, other = first.runners[0], second.runners[0]
    try:
        assert await holder.lock.hold()
        await end_lock_session(app, holder)
        assert await other.lock.hold()  # the lock was free again
        assert not await holder.lock.hold()  # and the first replica sees it is not its own
        await other.lock.release()
        assert await holder.lock.hold()  # free again: taken on a new session
    finally:
        await holder.lock.release()
        await other.lock.release()
        await first._close()
        await second._close()
