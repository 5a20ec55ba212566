"""SmtpTransport against the recording SMTP server: replies per recipient, errors by kind, pooling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from gateway.errors import PermanentTransportError, TemporaryTransportError, TransportTimeout
from gateway.outbound.transport import Reply, SmtpTransport
from testkit.servers.smtp import RecordingSmtpServer, SilentServer
from tests.plugins.smtp import ServerFactory, smtp_settings

RAW = b"From: care@example.com\r\nTo: a@example.com\r\nSubject: case\r\n\r\nbody\r\n"
SENDER = "care@example.com"

MakeTransport = Callable[..., SmtpTransport]


@pytest.fixture
async def make_transport() -> AsyncIterator[MakeTransport]:
    """``make(server, tls_context=None, **settings)``; every transport made is closed after."""
    made: list[SmtpTransport] = []

    def make(
        server: RecordingSmtpServer | SilentServer, tls_context: Any = None, **overrides: Any
    ) -> SmtpTransport:
        if isinstance(server, SilentServer):
            overrides = {"host": server.host, "port": server.port, "tls": "none", **overrides}
            settings = smtp_settings(RecordingSmtpServer(), **overrides)
        else:
            settings = smtp_settings(server, **overrides)
        transport = SmtpTransport(settings, tls_context=tls_context)
        made.append(transport)
        return transport

    yield make
    for transport in made:
        await transport.close()


async def test_success(smtp_server: RecordingSmtpServer, make_transport: MakeTransport) -> None:
    replies = await make_transport(smtp_server).send(SENDER, ["a@example.com", "b@example.com"], RAW)
    assert set(replies) == {"a@example.com", "b@example.com"}
    assert all(reply.ok and reply.code == 250 for reply in replies.values())
    (message,) = await smtp_server.wait_for(1)
    assert (message.mail_from, message.rcpt_tos) == (SENDER, ("a@example.com", "b@example.com"))
    assert message.data == RAW


async def test_partial_refusal(smtp_server: RecordingSmtpServer, make_transport: MakeTransport) -> None:
    smtp_server.refuse_recipient("gone@example.com", "550 5.1.1 no such user")
    replies = await make_transport(smtp_server).send(SENDER, ["gone@example.com", "a@example.com"], RAW)
    assert replies["gone@example.com"] == Reply(550, "5.1.1 no such user")
    assert not replies["gone@example.com"].ok and not replies["gone@example.com"].temporary
    assert replies["a@example.com"].ok
    assert (await smtp_server.wait_for(1))[0].rcpt_tos == ("a@example.com",)


async def test_every_recipient_refused(
    smtp_server: RecordingSmtpServer, make_transport: MakeTransport
) -> None:
    smtp_server.refuse_recipient("a@example.com", "450 4.2.1 try later")
    smtp_server.refuse_recipient("b@example.com", "550 5.1.1 no such user")
    replies = await make_transport(smtp_server).send(SENDER, ["a@example.com", "b@example.com"], RAW)
    assert replies == {
        "a@example.com": Reply(450, "4.2.1 try later"),
        "b@example.com": Reply(550, "5.1.1 no such user"),
    }
    assert replies["a@example.com"].temporary
    assert smtp_server.messages == []


async def test_temporary_refusal_then_success(
    smtp_server: RecordingSmtpServer, make_transport: MakeTransport
) -> None:
    smtp_server.refuse_recipient("a@example.com", "450 4.2.1 try later", times=1)
    transport = make_transport(smtp_server)
    first = await transport.send(SENDER, ["a@example.com"], RAW)
    assert first["a@example.com"].temporary
    assert (await transport.send(SENDER, ["a@example.com"], RAW))["a@example.com"].ok
    assert [m.connection for m in await smtp_server.wait_for(1)] == [1]


@pytest.mark.parametrize(
    ("reply", "temporary"), [("451 4.3.0 try again", True), ("554 5.6.0 rejected", False)]
)
async def test_refused_at_data(
    smtp_server: RecordingSmtpServer, make_transport: MakeTransport, reply: str, temporary: bool
) -> None:
    smtp_server.refuse_recipient("gone@example.com", "550 5.1.1 no such user")
    smtp_server.refuse_data(reply, times=1)
    transport = make_transport(smtp_server)
    replies = await transport.send(SENDER, ["a@example.com", "b@example.com", "gone@example.com"], RAW)
    code, text = reply.split(" ", 1)
    assert replies["a@example.com"] == replies["b@example.com"] == Reply(int(code), text)
    assert replies["a@example.com"].temporary is temporary
    assert replies["gone@example.com"].code == 550  # its own refusal, not the DATA reply
    assert (await transport.send(SENDER, ["a@example.com"], RAW))["a@example.com"].ok
    assert [m.connection for m in await smtp_server.wait_for(1)] == [1]


async def test_connection_dropped_at_data(
    smtp_server: RecordingSmtpServer, make_transport: MakeTransport
) -> None:
    smtp_server.drop_at_data(times=1)
    transport = make_transport(smtp_server)
    with pytest.raises(TemporaryTransportError) as raised:
        await transport.send(SENDER, ["a@example.com"], RAW)
    assert not isinstance(raised.value, TransportTimeout)
    assert (await transport.send(SENDER, ["a@example.com"], RAW))["a@example.com"].ok
    assert [m.connection for m in await smtp_server.wait_for(1)] == [2]


async def test_service_closing_is_temporary(
    smtp_server: RecordingSmtpServer, make_transport: MakeTransport
) -> None:
    smtp_server.refuse_recipient("a@example.com", "421 4.3.2 shutting down", times=1)
    transport = make_transport(smtp_server)
    with pytest.raises(TemporaryTransportError) as raised:
        await transport.send(SENDER, ["a@example.com"], RAW)
    assert raised.value.code == 421
    assert (await transport.send(SENDER, ["a@example.com"], RAW))["a@example.com"].ok
    assert [m.connection for m in await smtp_server.wait_for(1)] == [2]


@pytest.mark.parametrize(("reply", "kind"), [("451 4.7.1 slow down", TemporaryTransportError),
                                             ("553 5.7.1 sender refused", PermanentTransportError)])
async def test_refused_at_mail_from(
    smtp_server: RecordingSmtpServer, make_transport: MakeTransport, reply: str, kind: type[Exception]
) -> None:
    smtp_server.refuse_sender(reply, times=1)
    with pytest.raises(kind) as raised:
        await make_transport(smtp_server).send(SENDER, ["a@example.com"], RAW)
    assert getattr(raised.value, "code", None) == int(reply[:3])


async def test_reuses_connections(smtp_server: RecordingSmtpServer, make_transport: MakeTransport) -> None:
    transport = make_transport(smtp_server, pool_size=3)
    for n in range(5):
        await transport.send(SENDER, [f"r{n}@example.com"], RAW)
    assert {m.connection for m in await smtp_server.wait_for(5)} == {1}
    assert smtp_server.connections == 1


async def test_concurrent_sends_use_up_to_pool_size_connections(
    smtp_server: RecordingSmtpServer, make_transport: MakeTransport
) -> None:
    transport = make_transport(smtp_server, pool_size=3)
    await asyncio.gather(*(transport.send(SENDER, [f"r{n}@example.com"], RAW) for n in range(12)))
    received = await smtp_server.wait_for(12)
    assert smtp_server.connections == 3
    assert {m.connection for m in received} == {1, 2, 3}


async def test_idle_connection_dropped_by_server_is_replaced(
    smtp_server: RecordingSmtpServer, make_transport: MakeTransport
) -> None:
    smtp_server.hang_up_after(1)
    transport = make_transport(smtp_server, pool_size=1)
    for _ in range(3):
        assert (await transport.send(SENDER, ["a@example.com"], RAW))["a@example.com"].ok
    assert [m.connection for m in await smtp_server.wait_for(3)] == [1, 2, 3]


async def test_invalid_addresses_are_refused_locally(
    smtp_server: RecordingSmtpServer, make_transport: MakeTransport
) -> None:
    transport = make_transport(smtp_server)
    smuggled, named, unicode = "b@example.com\r\nRCPT TO:<x@evil>", "Bob <b@example.com>", "ü@example.com"
    replies = await transport.send(SENDER, ["a@example.com", smuggled, named, unicode], RAW)
    assert replies["a@example.com"].ok
    assert [replies[r].code for r in (smuggled, named, unicode)] == [553, 553, 553]
    assert (await smtp_server.wait_for(1))[0].rcpt_tos == ("a@example.com",)
    with pytest.raises(PermanentTransportError):
        await transport.send("care@example.com\r\nRSET", ["a@example.com"], RAW)


async def test_starttls_required_but_not_offered(
    smtp_server: RecordingSmtpServer, make_transport: MakeTransport
) -> None:
    with pytest.raises(PermanentTransportError, match="STARTTLS"):
        await make_transport(smtp_server, tls="starttls").send(SENDER, ["a@example.com"], RAW)


async def test_starttls_certificate_is_verified(
    smtp_server_factory: ServerFactory, make_transport: MakeTransport
) -> None:
    server = await smtp_server_factory(starttls=True)
    with pytest.raises(PermanentTransportError, match="certificate"):
        await make_transport(server).send(SENDER, ["a@example.com"], RAW)
    trusted = make_transport(server, tls_context=server.client_tls_context())
    assert (await trusted.send(SENDER, ["a@example.com"], RAW))["a@example.com"].ok
    assert (await server.wait_for(1))[0].tls


async def test_implicit_tls(smtp_server_factory: ServerFactory, make_transport: MakeTransport) -> None:
    server = await smtp_server_factory(implicit_tls=True)
    with pytest.raises(PermanentTransportError, match="certificate"):
        await make_transport(server).send(SENDER, ["a@example.com"], RAW)
    trusted = make_transport(server, tls_context=server.client_tls_context())
    assert (await trusted.send(SENDER, ["a@example.com"], RAW))["a@example.com"].ok
    assert (await server.wait_for(1))[0].tls


async def test_auth(smtp_server_factory: ServerFactory, make_transport: MakeTransport) -> None:
    server = await smtp_server_factory(auth=("care", "s3cret"))
    assert (await make_transport(server).send(SENDER, ["a@example.com"], RAW))["a@example.com"].ok
    assert (await server.wait_for(1))[0].login == "care"
    with pytest.raises(PermanentTransportError) as raised:
        await make_transport(server, password="wrong").send(SENDER, ["a@example.com"], RAW)
    assert raised.value.code == 535


async def test_connection_refused_is_temporary(
    smtp_server_factory: ServerFactory, make_transport: MakeTransport
) -> None:
    server = await smtp_server_factory()
    transport = make_transport(server)
    await server.stop()
    with pytest.raises(TemporaryTransportError):
        await transport.send(SENDER, ["a@example.com"], RAW)


async def test_silent_server_times_out(make_transport: MakeTransport) -> None:
    server = SilentServer()
    await server.start()
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TransportTimeout):
            await make_transport(server, timeout_seconds=0.2).send(SENDER, ["a@example.com"], RAW)
        assert loop.time() - started < 2
    finally:
        await server.stop()


async def test_server_stalls_at_data(smtp_server: RecordingSmtpServer, make_transport: MakeTransport) -> None:
    smtp_server.stall_at_data(times=1)
    transport = make_transport(smtp_server, timeout_seconds=0.2)
    with pytest.raises(TransportTimeout):
        await transport.send(SENDER, ["a@example.com"], RAW)
    assert (await transport.send(SENDER, ["a@example.com"], RAW))["a@example.com"].ok
    assert [m.connection for m in await smtp_server.wait_for(1)] == [2]


async def test_send_after_close_is_a_bug(
    smtp_server: RecordingSmtpServer, make_transport: MakeTransport
) -> None:
    transport = make_transport(smtp_server)
    await transport.send(SENDER, ["a@example.com"], RAW)
    await transport.close()
    with pytest.raises(RuntimeError):
        await transport.send(SENDER, ["a@example.com"], RAW)
