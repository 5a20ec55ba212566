"""MemoryTransport, the in-memory twin of SmtpTransport, and Reply's classification."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from gateway.errors import PermanentTransportError, TemporaryTransportError, TransportTimeout
from gateway.outbound.transport import MemoryTransport, Reply, SentMessage, SmtpTransport, Transport

RAW = b"Subject: hi\r\n\r\nbody\r\n"


@pytest.mark.parametrize(
    ("code", "ok", "temporary"),
    [(250, True, False), (251, True, False), (421, False, True), (450, False, True), (550, False, False)],
)
def test_reply_classification(code: int, ok: bool, temporary: bool) -> None:
    assert (Reply(code, "x").ok, Reply(code, "x").temporary) == (ok, temporary)


@pytest.mark.parametrize("kind", [MemoryTransport, SmtpTransport])
def test_is_a_transport(kind: type) -> None:
    """Every method of the protocol, with its signature (mypy checks gateway/, not the tests)."""
    methods = [name for name in vars(Transport) if not name.startswith("_")]
    assert methods == ["send", "close"]
    for name in methods:
        assert inspect.iscoroutinefunction(getattr(kind, name)), name
        assert inspect.signature(getattr(kind, name)) == inspect.signature(getattr(Transport, name)), name


async def test_accepts_and_records_by_default() -> None:
    transport = MemoryTransport()
    recipients = ["a@example.com", "b@example.com", "a@example.com"]
    replies = await transport.send("care@example.com", recipients, RAW)
    assert replies == {"a@example.com": Reply(250, "2.0.0 OK"), "b@example.com": Reply(250, "2.0.0 OK")}
    expected = SentMessage("care@example.com", ("a@example.com", "b@example.com"), RAW)
    assert transport.sent == transport.delivered == [expected]


async def test_scripted_reply_per_recipient() -> None:
    transport = MemoryTransport()
    transport.reply("Gone@example.com", Reply(550, "5.1.1 no such user"))
    replies = await transport.send("care@example.com", ["gone@example.com", "a@example.com"], RAW)
    assert replies["gone@example.com"] == Reply(550, "5.1.1 no such user")
    assert replies["a@example.com"].ok
    assert transport.delivered == [SentMessage("care@example.com", ("a@example.com",), RAW)]


async def test_scripted_reply_for_the_next_n_sends() -> None:
    transport = MemoryTransport()
    transport.reply("a@example.com", Reply(450, "4.2.1 try later"), times=2)
    codes = []
    for _ in range(3):
        codes.append((await transport.send("c@example.com", ["a@example.com"], RAW))["a@example.com"].code)
    assert codes == [450, 450, 250]
    assert len(transport.sent) == 3 and len(transport.delivered) == 1


async def test_nothing_delivered_when_every_recipient_is_refused() -> None:
    transport = MemoryTransport()
    transport.default = Reply(550, "5.7.1 no")
    await transport.send("c@example.com", ["a@example.com"], RAW)
    assert transport.delivered == [] and len(transport.sent) == 1


async def test_scripted_errors_in_order_then_success() -> None:
    transport = MemoryTransport()
    transport.fail(TransportTimeout("slow"), times=2)
    transport.fail(PermanentTransportError("auth refused", 535))
    for kind in (TransportTimeout, TransportTimeout, PermanentTransportError):
        with pytest.raises(kind):
            await transport.send("c@example.com", ["a@example.com"], RAW)
    assert (await transport.send("c@example.com", ["a@example.com"], RAW))["a@example.com"].ok
    assert len(transport.sent) == 4 and len(transport.delivered) == 1


async def test_before_send_can_hold_a_send() -> None:
    release = asyncio.Event()
    entered = asyncio.Event()

    async def hold(message: SentMessage) -> None:
        entered.set()
        await release.wait()

    transport = MemoryTransport(before_send=hold)
    sending = asyncio.create_task(transport.send("c@example.com", ["a@example.com"], RAW))
    await entered.wait()
    assert not sending.done() and transport.delivered == []
    release.set()
    assert (await sending)["a@example.com"].ok


async def test_close() -> None:
    transport = MemoryTransport()
    await transport.close()
    assert transport.closed
    with pytest.raises(RuntimeError):
        await transport.send("c@example.com", ["a@example.com"], RAW)


async def test_errors_are_the_gateway_kinds() -> None:
    transport = MemoryTransport()
    transport.fail(TemporaryTransportError("dropped"))
    with pytest.raises(TemporaryTransportError, match="dropped"):
        await transport.send("c@example.com", ["a@example.com"], RAW)
