"""The recording SMTP server itself: other SMTP tests rely on these promises (plain aiosmtplib)."""

from __future__ import annotations

import asyncio
import ssl

import aiosmtplib
import pytest

from testkit.servers.smtp import RecordingSmtpServer, SilentServer
from tests.plugins.smtp import ServerFactory

RAW = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hello\r\n\r\nbody line\r\n"


def client(server: RecordingSmtpServer, **options: object) -> aiosmtplib.SMTP:
    options.setdefault("start_tls", False)
    return aiosmtplib.SMTP(hostname=server.host, port=server.port, timeout=5, **options)  # type: ignore[arg-type]


async def test_records_envelope_data_and_connection(smtp_server: RecordingSmtpServer) -> None:
    async with client(smtp_server) as smtp:
        await smtp.sendmail("a@example.com", ["b@example.com", "c@example.com"], RAW)
        await smtp.sendmail("a@example.com", ["d@example.com"], RAW)
    async with client(smtp_server) as smtp:
        await smtp.sendmail("a@example.com", ["e@example.com"], RAW)
    first, second, third = await smtp_server.wait_for(3)
    assert first.mail_from == "a@example.com"
    assert first.rcpt_tos == ("b@example.com", "c@example.com")
    assert first.data == RAW
    assert (first.connection, second.connection, third.connection) == (1, 1, 2)
    assert smtp_server.connections == 2
    assert not first.tls and first.login is None
    smtp_server.clear()
    assert smtp_server.messages == []


async def test_wait_for_times_out_with_an_assertion(smtp_server: RecordingSmtpServer) -> None:
    with pytest.raises(AssertionError, match="expected 1 messages, got 0"):
        await smtp_server.wait_for(1, timeout=0.05)


async def test_wait_for_wakes_up_when_the_message_arrives(smtp_server: RecordingSmtpServer) -> None:
    waiting = asyncio.create_task(smtp_server.wait_for(1))  # registers before the client connects
    async with client(smtp_server) as smtp:
        await smtp.sendmail("a@example.com", ["b@example.com"], RAW)
    assert len(await waiting) == 1


async def test_recipient_refused_only_for_that_recipient(smtp_server: RecordingSmtpServer) -> None:
    smtp_server.refuse_recipient("Bad@example.com", "550 5.1.1 no such user")
    async with client(smtp_server) as smtp:
        errors, _ = await smtp.sendmail("a@example.com", ["bad@example.com", "b@example.com"], RAW)
    assert errors == {"bad@example.com": (550, "5.1.1 no such user")}
    (message,) = await smtp_server.wait_for(1)
    assert message.rcpt_tos == ("b@example.com",)


async def test_recipient_refused_the_next_n_times_then_accepted(smtp_server: RecordingSmtpServer) -> None:
    smtp_server.refuse_recipient("b@example.com", "450 4.2.1 try later", times=2)
    async with client(smtp_server) as smtp:
        for _ in range(2):
            with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
                await smtp.sendmail("a@example.com", ["b@example.com"], RAW)
            assert refused.value.recipients[0].code == 450
        await smtp.sendmail("a@example.com", ["b@example.com"], RAW)
    assert len(await smtp_server.wait_for(1)) == 1


async def test_sender_refused(smtp_server: RecordingSmtpServer) -> None:
    smtp_server.refuse_sender("553 5.7.1 sender not allowed", times=1)
    async with client(smtp_server) as smtp:
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
            await smtp.sendmail("a@example.com", ["b@example.com"], RAW)
        assert refused.value.code == 553
        await smtp.sendmail("a@example.com", ["b@example.com"], RAW)


@pytest.mark.parametrize("reply", ["451 4.3.0 try again", "554 5.6.0 content rejected"])
async def test_data_refused(smtp_server: RecordingSmtpServer, reply: str) -> None:
    smtp_server.refuse_data(reply, times=1)
    async with client(smtp_server) as smtp:
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await smtp.sendmail("a@example.com", ["b@example.com"], RAW)
        assert refused.value.code == int(reply[:3])
        await smtp.sendmail("a@example.com", ["b@example.com"], RAW)
    assert len(await smtp_server.wait_for(1)) == 1


async def test_drop_at_data_closes_without_reply(smtp_server: RecordingSmtpServer) -> None:
    smtp_server.drop_at_data(times=1)
    async with client(smtp_server) as smtp:
        with pytest.raises(aiosmtplib.SMTPServerDisconnected):
            await smtp.sendmail("a@example.com", ["b@example.com"], RAW)
    async with client(smtp_server) as smtp:
        await smtp.sendmail("a@example.com", ["b@example.com"], RAW)
    (message,) = await smtp_server.wait_for(1)
    assert message.connection == 2


async def test_stall_at_data_never_answers(smtp_server: RecordingSmtpServer) -> None:
    smtp_server.stall_at_data(times=1)
    smtp = client(smtp_server)
    await smtp.connect()
    with pytest.raises(aiosmtplib.SMTPTimeoutError):
        await smtp.sendmail("a@example.com", ["b@example.com"], RAW, timeout=0.2)
    smtp.close()
    assert smtp_server.messages == []


async def test_hang_up_after_n_messages_on_a_connection(smtp_server: RecordingSmtpServer) -> None:
    smtp_server.hang_up_after(2)
    async with client(smtp_server) as smtp:
        await smtp.sendmail("a@example.com", ["b@example.com"], RAW)
        await smtp.sendmail("a@example.com", ["b@example.com"], RAW)
        with pytest.raises(aiosmtplib.SMTPServerDisconnected):
            await smtp.sendmail("a@example.com", ["b@example.com"], RAW)
    assert [m.connection for m in await smtp_server.wait_for(2)] == [1, 1]


async def test_reset_failures(smtp_server: RecordingSmtpServer) -> None:
    smtp_server.refuse_recipient("b@example.com", "550 5.1.1 no such user")
    smtp_server.refuse_data("554 5.6.0 no")
    smtp_server.reset_failures()
    async with client(smtp_server) as smtp:
        await smtp.sendmail("a@example.com", ["b@example.com"], RAW)
    assert len(await smtp_server.wait_for(1)) == 1


async def test_no_starttls_unless_asked(smtp_server: RecordingSmtpServer) -> None:
    smtp = client(smtp_server, start_tls=True)
    with pytest.raises(aiosmtplib.SMTPException, match="STARTTLS extension not supported"):
        await smtp.connect()


async def test_starttls_with_a_self_signed_certificate(smtp_server_factory: ServerFactory) -> None:
    server = await smtp_server_factory(starttls=True)
    with pytest.raises(ssl.SSLCertVerificationError):
        await client(server, start_tls=True).connect()
    async with client(server, start_tls=True, tls_context=server.client_tls_context()) as smtp:
        await smtp.sendmail("a@example.com", ["b@example.com"], RAW)
    (message,) = await server.wait_for(1)
    assert message.tls


async def test_implicit_tls(smtp_server_factory: ServerFactory) -> None:
    server = await smtp_server_factory(implicit_tls=True)
    async with client(server, use_tls=True, start_tls=None, tls_context=server.client_tls_context()) as smtp:
        await smtp.sendmail("a@example.com", ["b@example.com"], RAW)
    (message,) = await server.wait_for(1)
    assert message.tls


async def test_auth_required_and_checked(smtp_server_factory: ServerFactory) -> None:
    server = await smtp_server_factory(auth=("user", "secret"))
    async with client(server) as smtp:
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
            await smtp.sendmail("a@example.com", ["b@example.com"], RAW)
        assert refused.value.code == 530
    with pytest.raises(aiosmtplib.SMTPAuthenticationError) as failed:
        await client(server, username="user", password="wrong").connect()
    assert failed.value.code == 535
    async with client(server, username="user", password="secret") as smtp:
        await smtp.sendmail("a@example.com", ["b@example.com"], RAW)
    (message,) = await server.wait_for(1)
    assert message.login == "user"


async def test_server_in_a_thread(smtp_server_thread: RecordingSmtpServer) -> None:
    smtp_server_thread.refuse_recipient("bad@example.com", "550 5.1.1 no such user")
    async with client(smtp_server_thread) as smtp:
        await smtp.sendmail("a@example.com", ["b@example.com", "bad@example.com"], RAW)
    (message,) = await smtp_server_thread.wait_for(1)
    assert message.rcpt_tos == ("b@example.com",)
    assert smtp_server_thread.wait_for_sync(1) == [message]


def test_server_in_a_thread_from_synchronous_code(smtp_server_thread: RecordingSmtpServer) -> None:
    import smtplib

    with smtplib.SMTP(smtp_server_thread.host, smtp_server_thread.port, timeout=5) as smtp:
        smtp.sendmail("a@example.com", ["b@example.com"], RAW)
    assert smtp_server_thread.wait_for_sync(1)[0].data == RAW


async def test_stop_closes_open_connections(smtp_server_factory: ServerFactory) -> None:
    server = await smtp_server_factory()
    smtp = client(server)
    await smtp.connect()
    await server.stop()
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await smtp.sendmail("a@example.com", ["b@example.com"], RAW)


async def test_silent_server_never_greets() -> None:
    server = SilentServer()
    await server.start()
    try:
        with pytest.raises(aiosmtplib.SMTPConnectTimeoutError):
            await aiosmtplib.SMTP(hostname=server.host, port=server.port, timeout=0.2).connect()
    finally:
        await server.stop()
