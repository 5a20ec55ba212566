"""The outbox and its sender against the real SMTP server, on SQLite and PostgreSQL."""

from __future__ import annotations

import email
from datetime import timedelta
from email import policy

import pytest
from sqlalchemy import func, select

from gateway.app import App
from gateway.clock import FrozenClock
from gateway.domain import OutboxStatus, RecipientStatus
from gateway.errors import TemporaryTransportError
from gateway.models import Outbox
from gateway.outbound import dedupe
from gateway.outbound.kinds import MailKind
from gateway.outbound.outbox import Mail
from gateway.outbound.sender import Sender
from gateway.outbound.transport import MemoryTransport, SmtpTransport
from testkit.mail_samples import sample_context
from testkit.servers.smtp import RecordingSmtpServer
from testkit.world import ANA, add_customer, open_case, open_world, settings_for
from tests.plugins.smtp import smtp_settings


@pytest.fixture
async def app(db_url: str, smtp_server: RecordingSmtpServer, clock: FrozenClock):
    settings = settings_for(db_url, smtp=smtp_settings(smtp_server))
    async with open_world(settings, clock) as app:
        await add_customer(app)
        yield app


def sender_for(app: App, transport=None) -> Sender:
    return Sender(
        app.engine,
        transport or SmtpTransport(app.settings.smtp),
        app.settings.outbox,
        app.clock,
        concurrency=2,
    )


async def rows(app: App) -> list[Outbox]:
    async with app.sessions() as session:
        return list((await session.scalars(select(Outbox).order_by(Outbox.id))).all())


async def enqueue_notice(app: App, key: str, *addresses: str) -> Outbox:
    async with app.sessions.begin() as session:
        mailer = await app.mailer(session)
        return await mailer.enqueue(
            session,
            Mail(
                kind=MailKind.ADVISORY_PRODUCT,
                to=[("", a) for a in addresses],
                context=sample_context(MailKind.ADVISORY_PRODUCT),
                dedupe_key=key,
            ),
        )


async def test_case_open_sends_acknowledgement_with_reference(
    app: App, smtp_server: RecordingSmtpServer
) -> None:
    case = await open_case(app)
    sender = sender_for(app)
    stats = await sender.run_until_empty()
    await sender.transport.close()
    assert stats.sent == 1
    [received] = smtp_server.messages
    assert received.rcpt_tos == (ANA,)
    msg = email.message_from_bytes(received.data, policy=policy.default)
    assert f"[REF:{case.number}." in msg["Subject"]
    [row] = await rows(app)
    assert row.status == OutboxStatus.SENT and msg["Message-ID"] == row.message_id
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Case-Gateway-Loop"] == "vendor.example"
    assert [r.status for r in row.recipients] == [RecipientStatus.SENT]


async def test_dedupe_key_enqueues_once(app: App) -> None:
    first = await enqueue_notice(app, "k1", "ops@acme.example")
    again = await enqueue_notice(app, "k1", "ops@acme.example")
    assert first.id == again.id and len(await rows(app)) == 1


async def test_partial_refusal_is_per_recipient(app: App, smtp_server: RecordingSmtpServer) -> None:
    smtp_server.refuse_recipient("gone@acme.example", "550 5.1.1 no such user")
    await enqueue_notice(app, "k2", "ops@acme.example", "gone@acme.example")
    sender = sender_for(app)
    stats = await sender.run_until_empty()
    await sender.transport.close()
    assert stats.failed == 1
    [row] = await rows(app)
    assert row.status == OutboxStatus.FAILED
    by = {r.address: r for r in row.recipients}
    assert by["ops@acme.example"].status == RecipientStatus.SENT
    assert by["gone@acme.example"].status == RecipientStatus.FAILED
    assert by["gone@acme.example"].last_code == 550 and "no such user" in by["gone@acme.example"].last_reply
    assert [m.rcpt_tos for m in smtp_server.messages] == [("ops@acme.example",)]


async def test_4xx_then_success_retries_later_from_the_row(
    app: App, smtp_server: RecordingSmtpServer, clock: FrozenClock
) -> None:
    smtp_server.refuse_recipient(ANA, "450 4.2.1 mailbox busy", times=1)
    await open_case(app)
    sender = sender_for(app)
    assert (await sender.run_until_empty()).retrying == 1
    [row] = await rows(app)
    assert row.status == OutboxStatus.PENDING and row.attempts == 1
    assert row.next_attempt_at > clock.now()
    assert row.recipients[0].last_code == 450
    assert (await sender.run_until_empty()).handled == 0  # not due yet
    clock.set(row.next_attempt_at)
    restarted = sender_for(app)  # retries survive a restart: the schedule is in the row
    assert (await restarted.run_until_empty()).sent == 1
    await sender.transport.close()
    await restarted.transport.close()
    [row] = await rows(app)
    assert row.status == OutboxStatus.SENT and row.attempts == 2
    assert len(smtp_server.messages) == 1


async def test_5xx_at_data_fails_permanently(app: App, smtp_server: RecordingSmtpServer) -> None:
    smtp_server.refuse_data("554 5.6.0 message rejected")
    await open_case(app)
    sender = sender_for(app)
    assert (await sender.run_until_empty()).failed == 1
    await sender.transport.close()
    [row] = await rows(app)
    assert row.status == OutboxStatus.FAILED and row.finished_at is not None
    assert row.recipients[0].last_code == 554 and "rejected" in row.recipients[0].last_reply


async def test_connection_dropped_mid_batch(
    app: App, smtp_server: RecordingSmtpServer, clock: FrozenClock
) -> None:
    for i in range(6):
        await enqueue_notice(app, f"drop-{i}", f"list{i}@acme.example")
    smtp_server.drop_at_data(times=1)
    sender = sender_for(app)
    first = await sender.run_until_empty()
    assert first.sent == 5 and first.retrying == 1
    clock.advance(hours=2)
    assert (await sender.run_until_empty()).sent == 1
    await sender.transport.close()
    assert all(r.status == OutboxStatus.SENT for r in await rows(app))
    ids = [email.message_from_bytes(m.data)["Message-ID"] for m in smtp_server.messages]
    assert len(ids) == len(set(ids)) == 6


async def test_stale_rows_expire_instead_of_sending(
    app: App, smtp_server: RecordingSmtpServer, clock: FrozenClock
) -> None:
    async with app.sessions.begin() as session:
        mailer = await app.mailer(session)
        await mailer.enqueue(
            session,
            Mail(
                kind=MailKind.INCIDENT_UPDATE,
                to=[("", "ops@acme.example")],
                context=sample_context(MailKind.INCIDENT_UPDATE),
                dedupe_key=dedupe.notice("INC-1", 1, 1, "ops@acme.example"),
            ),
        )
    clock.advance(hours=3)  # an incident update hours late is worthless
    sender = sender_for(app)
    assert (await sender.run_until_empty()).expired == 1
    await sender.transport.close()
    [row] = await rows(app)
    assert row.status == OutboxStatus.EXPIRED and row.recipients[0].status == RecipientStatus.EXPIRED
    assert smtp_server.messages == []


async def test_temporary_failures_until_max_age_expire(app: App, clock: FrozenClock) -> None:
    await open_case(app)
    transport = MemoryTransport()
    transport.fail(TemporaryTransportError("connection refused"), times=1000)
    sender = sender_for(app, transport)
    for _ in range(200):
        await sender.run_until_empty()
        [row] = await rows(app)
        if row.status != OutboxStatus.PENDING:
            break
        clock.set(row.next_attempt_at)
    assert row.status == OutboxStatus.EXPIRED
    assert row.attempts > 3
    assert clock.now() - row.created_at <= timedelta(hours=app.settings.outbox.case_max_age_hours)


async def test_lease_lets_another_sender_take_an_abandoned_claim(
    app: App, smtp_server: RecordingSmtpServer, clock: FrozenClock
) -> None:
    await open_case(app)
    crashed = sender_for(app)
    claimed = await crashed.claim(10)  # claimed, then the process "dies" before sending
    assert len(claimed) == 1
    second = sender_for(app)
    assert (await second.run_until_empty()).handled == 0  # leased: not taken
    clock.advance(seconds=app.settings.outbox.lease_seconds + 1)
    assert (await second.run_until_empty()).sent == 1
    await second.transport.close()
    assert email.message_from_bytes(smtp_server.messages[0].data)["Message-ID"] == claimed[0].message_id


async def test_outbox_counts(app: App) -> None:
    await open_case(app)
    async with app.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Outbox)) == 1


async def test_template_error_fails_the_operation_at_enqueue(
    db_url: str, tmp_path, clock: FrozenClock
) -> None:
    from gateway.errors import TemplateError
    from gateway.models import Case, CaseEvent

    (tmp_path / "care_reply").mkdir()
    (tmp_path / "care_reply" / "body.txt").write_text("Hello {{ contact.nmae }}\n")
    settings = settings_for(db_url, templates={"override_dir": str(tmp_path)})
    async with open_world(settings, clock) as app:
        await add_customer(app)
        case = await open_case(app)
        with pytest.raises(TemplateError, match=r"care_reply/body\.txt"):
            async with app.sessions.begin() as session:
                await (await app.care(session)).reply(session, case.number, "We are on it.")
        async with app.sessions() as session:
            again = await session.get(Case, case.id)
            events = (await session.scalars(select(CaseEvent.kind).where(CaseEvent.case_id == case.id))).all()
            kinds = (await session.scalars(select(Outbox.kind))).all()
        assert again.status == "new"
        assert events == ["opened"]
        assert kinds == ["case_received"]


async def test_hostile_subject_cannot_inject_headers(app: App, smtp_server: RecordingSmtpServer) -> None:
    await open_case(app, subject="Help\r\nBcc: victim@evil.example\r\nX-Injected: yes")
    sender = sender_for(app)
    await sender.run_until_empty()
    await sender.transport.close()
    [received] = smtp_server.messages
    assert received.rcpt_tos == (ANA,)
    msg = email.message_from_bytes(received.data, policy=policy.default)
    assert msg["Bcc"] is None and msg["X-Injected"] is None
    assert "Help Bcc: victim@evil.example X-Injected: yes" in msg["Subject"]
