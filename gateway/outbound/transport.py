"""SMTP behind a small protocol: one :class:`Reply` per recipient, connection trouble as our errors.

:class:`Transport` is all the outbox sender knows. ``send`` hands one pre-serialised message to
the server and answers with the server's reply for *each* recipient, so partial refusals are
never lost: a recipient refused at RCPT keeps its own reply, and a 4xx/5xx at DATA is the reply
of every recipient accepted at RCPT. What cannot be pinned on a recipient raises (see
:mod:`gateway.errors`):

- :class:`~gateway.errors.TransportTimeout`: the server did not answer within ``timeout_seconds``;
- :class:`~gateway.errors.TemporaryTransportError`: connection refused, dropped, reset, a 421, a
  4xx at MAIL FROM or at login;
- :class:`~gateway.errors.PermanentTransportError`: STARTTLS required but not offered, a
  certificate that fails verification, authentication refused (5xx), a 5xx at MAIL FROM.

:class:`SmtpTransport` keeps up to ``pool_size`` connections open and reuses them; a connection
that failed is closed and never reused. :class:`MemoryTransport` is the in-memory twin for tests:
it records what was sent and answers scripted replies or errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import aiosmtplib
from aiosmtplib.email import quote_address

from gateway.config import SmtpSettings
from gateway.errors import (
    PermanentTransportError,
    TemporaryTransportError,
    TransportError,
    TransportTimeout,
)

SERVICE_CLOSING = 421


@dataclass(frozen=True)
class Reply:
    """The server's answer for one recipient (``text`` without the code)."""

    code: int
    text: str

    @property
    def ok(self) -> bool:
        """Accepted (2xx): the server took responsibility for this recipient."""
        return 200 <= self.code < 300

    @property
    def temporary(self) -> bool:
        """Refused for now (4xx): worth another attempt later."""
        return 400 <= self.code < 500


class Transport(Protocol):
    """What the outbox sender needs from a mail server."""

    async def send(self, sender: str, recipients: Sequence[str], data: bytes) -> dict[str, Reply]:
        """Send ``data`` (CRLF, complete headers) to every recipient; one Reply per distinct
        recipient. Raises :class:`~gateway.errors.TransportError` when no per-recipient answer
        can be given (nothing was accepted in that case)."""
        ...

    async def close(self) -> None:
        """Release connections; the transport is not used afterwards."""
        ...


class _StaleConnection(Exception):
    """A reused connection turned out to be dead before anything was sent on it."""


class SmtpTransport:
    """:class:`Transport` over aiosmtplib with a pool of reused connections.

    Concurrent ``send`` calls each hold their own connection (at most ``pool_size`` at once; more
    callers wait). A reused connection the server has dropped while idle is noticed at MAIL FROM,
    before anything was sent, and the message is retried once on a fresh connection.
    """

    def __init__(self, settings: SmtpSettings, *, tls_context: ssl.SSLContext | None = None) -> None:
        """``tls_context``, when given, replaces the default one (and ``verify_certificates``):
        e.g. a context that trusts a private CA."""
        self.settings = settings
        self._tls_context = tls_context
        self._slots = asyncio.Semaphore(settings.pool_size)
        self._idle: asyncio.LifoQueue[aiosmtplib.SMTP] = asyncio.LifoQueue()
        self._local_hostname: str | None = None
        self._closed = False

    async def send(self, sender: str, recipients: Sequence[str], data: bytes) -> dict[str, Reply]:
        if self._closed:
            raise RuntimeError("SmtpTransport.send after close()")
        if why_not := _bad(sender, empty_ok=True):
            raise PermanentTransportError(f"invalid envelope sender: {why_not}", 553)
        wanted = list(dict.fromkeys(recipients))
        replies = {r: Reply(553, f"5.1.3 invalid address: {why}") for r in wanted if (why := _bad(r))}
        valid = [r for r in wanted if r not in replies]
        if not valid:
            return replies
        async with self._slots:
            replies.update(await self._send_on_pool(sender, valid, data))
        return replies

    async def greet(self) -> None:
        """Connect, say EHLO (and log in, where configured), then QUIT: does the relay answer?"""
        await self._quit(await self._connect())

    async def close(self) -> None:
        """Say QUIT on every idle connection (each within the timeout) and close them."""
        self._closed = True
        idle = []
        while not self._idle.empty():
            idle.append(self._idle.get_nowait())
        await asyncio.gather(*(self._quit(smtp) for smtp in idle))

    async def _send_on_pool(self, sender: str, recipients: list[str], data: bytes) -> dict[str, Reply]:
        smtp, reused = await self._checkout()
        try:
            try:
                replies = await _transaction(smtp, sender, recipients, data, reused=reused)
            except _StaleConnection:
                smtp.close()
                smtp = await self._connect()
                replies = await _transaction(smtp, sender, recipients, data, reused=False)
        except BaseException:
            smtp.close()
            raise
        if not smtp.is_connected:
            smtp.close()
        elif self._closed:
            await self._quit(smtp)
        else:
            self._idle.put_nowait(smtp)
        return replies

    async def _checkout(self) -> tuple[aiosmtplib.SMTP, bool]:
        """An idle connection that still looks alive, else a new one; True when reused."""
        while not self._idle.empty():
            smtp = self._idle.get_nowait()
            if smtp.is_connected:
                return smtp, True
            smtp.close()
        return await self._connect(), False

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self.settings
        if self._local_hostname is None:
            self._local_hostname = await asyncio.to_thread(socket.getfqdn) or "localhost"
        smtp = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            timeout=s.timeout_seconds,
            use_tls=s.tls == "tls",
            start_tls=s.tls == "starttls",
            validate_certs=s.verify_certificates,
            tls_context=self._tls_context,
            username=s.username,
            password=s.password.get_secret_value() if s.password is not None else None,
            local_hostname=self._local_hostname,
        )
        try:
            await smtp.connect()
            if smtp.is_ehlo_or_helo_needed:  # learn SIZE before the first MAIL FROM
                try:
                    await smtp.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await smtp.helo()
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            smtp.close()
            raise _translate(error, f"cannot connect to {s.host}:{s.port}") from error
        return smtp

    async def _quit(self, smtp: aiosmtplib.SMTP) -> None:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
            await smtp.quit(timeout=self.settings.timeout_seconds)
        smtp.close()


async def _transaction(
    smtp: aiosmtplib.SMTP, sender: str, recipients: list[str], data: bytes, *, reused: bool
) -> dict[str, Reply]:
    """MAIL, RCPT per recipient, DATA on one connection (aiosmtplib's ``sendmail`` steps, kept
    apart so a DATA failure still knows which recipients RCPT had refused, and why)."""
    try:
        await _mail_from(smtp, sender, len(data), reused=reused)
        replies: dict[str, Reply] = {}
        for address in recipients:
            replies[address] = await _rcpt(smtp, address)
        accepted = [r for r, reply in replies.items() if reply.ok]
        if not accepted:
            await _reset(smtp)
            return replies
        try:
            answer = await smtp.data(data)
            done = Reply(answer.code, answer.message)
        except aiosmtplib.SMTPResponseException as refused:
            if refused.code == SERVICE_CLOSING or refused.code < 400:
                raise
            await _reset(smtp)
            done = Reply(refused.code, refused.message)
        return replies | {r: done for r in accepted}
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
        raise _translate(error, "SMTP transaction failed") from error


async def _mail_from(smtp: aiosmtplib.SMTP, sender: str, size: int, *, reused: bool) -> None:
    options = [f"SIZE={size}"] if smtp.supports_extension("size") else []
    try:
        await smtp.mail(sender, options=options)
    except aiosmtplib.SMTPServerDisconnected as error:
        if reused:
            raise _StaleConnection from error
        raise
    except aiosmtplib.SMTPSenderRefused as refused:
        if reused and refused.code == SERVICE_CLOSING:
            raise _StaleConnection from refused
        if refused.code != SERVICE_CLOSING:
            await _reset(smtp)
        raise


async def _rcpt(smtp: aiosmtplib.SMTP, address: str) -> Reply:
    try:
        answer = await smtp.rcpt(address)
    except aiosmtplib.SMTPRecipientRefused as refused:
        if refused.code == SERVICE_CLOSING:
            raise
        return Reply(refused.code, refused.message)
    return Reply(answer.code, answer.message)


async def _reset(smtp: aiosmtplib.SMTP) -> None:
    """RSET after a refusal so the connection can carry the next message; a failure here is the
    next message's problem (the connection is then seen as dead and replaced)."""
    with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
        await smtp.rset()


@functools.lru_cache(maxsize=4096)
def _bad(address: str, *, empty_ok: bool = False) -> str | None:
    """Why ``address`` cannot go on an SMTP command line as it is, or None. aiosmtplib would
    quietly send ``b@x`` for ``"Name <b@x>"`` or ``"b@x\r\njunk"``: only a bare ASCII address
    passes (the empty reverse path too, for the sender)."""
    if not address:
        return None if empty_ok else "empty address"
    try:
        if quote_address(address) != f"<{address}>" or not address.isascii():
            return "not a bare ASCII address"
    except ValueError as error:
        return str(error) or type(error).__name__
    return None


def _translate(error: BaseException, context: str) -> TransportError:
    """Library errors to our tree: timeouts, drops and 4xx are temporary; TLS, auth and 5xx not."""
    message = f"{context}: {error}"
    tls_problem = _ssl_cause(error)
    if tls_problem is not None:
        if isinstance(tls_problem, ssl.SSLEOFError | ssl.SSLZeroReturnError | ssl.SSLSyscallError):
            return TemporaryTransportError(message)
        return PermanentTransportError(f"{context}: TLS failed: {tls_problem}")
    if isinstance(error, TimeoutError):
        return TransportTimeout(message)
    if isinstance(error, aiosmtplib.SMTPResponseException) and error.code >= 400:
        kind = TemporaryTransportError if error.code < 500 else PermanentTransportError
        return kind(message, error.code)
    if isinstance(error, aiosmtplib.SMTPNotSupported) or type(error) is aiosmtplib.SMTPException:
        return PermanentTransportError(message)  # STARTTLS or AUTH required but not offered
    return TemporaryTransportError(message)


def _ssl_cause(error: BaseException | None) -> ssl.SSLError | None:
    """The TLS error behind ``error``, if any (aiosmtplib wraps some in SMTPConnectError)."""
    seen = 0
    while error is not None and seen < 5:
        if isinstance(error, ssl.SSLError):
            return error
        error, seen = error.__cause__, seen + 1
    return None


@dataclass(frozen=True)
class SentMessage:
    """One call of :meth:`MemoryTransport.send`, as it was made."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes


@dataclass
class _Script:
    value: Reply | TransportError
    times: int | None

    def take(self) -> bool:
        if self.times is None:
            return True
        self.times -= 1
        return self.times >= 0


class MemoryTransport:
    """:class:`Transport` without a network, for unit tests (like httpx's ``MockTransport``).

    Every call is recorded in ``sent`` (also those answered with an error), the recipients it
    accepted in ``delivered``. Replies default to ``250``; :meth:`reply` scripts one recipient's
    answer and :meth:`fail` makes the next sends raise. ``before_send``, when given, is awaited at
    the start of every send (an :class:`asyncio.Event` wait makes sends block on demand).
    """

    def __init__(self, *, before_send: Callable[[SentMessage], Awaitable[None]] | None = None) -> None:
        self.sent: list[SentMessage] = []
        self.delivered: list[SentMessage] = []
        self.closed = False
        self.default = Reply(250, "2.0.0 OK")
        self._before_send = before_send
        self._replies: dict[str, _Script] = {}
        self._errors: list[_Script] = []

    def reply(self, recipient: str, reply: Reply, times: int | None = None) -> None:
        """Answer ``reply`` for ``recipient`` (the next ``times`` sends, or until changed)."""
        self._replies[recipient.lower()] = _Script(reply, times)

    def fail(self, error: TransportError, times: int = 1) -> None:
        """Raise ``error`` from the next ``times`` sends (after those already scripted)."""
        self._errors.append(_Script(error, times))

    async def send(self, sender: str, recipients: Sequence[str], data: bytes) -> dict[str, Reply]:
        if self.closed:
            raise RuntimeError("MemoryTransport.send after close()")
        call = SentMessage(sender, tuple(dict.fromkeys(recipients)), data)
        self.sent.append(call)
        if self._before_send is not None:
            await self._before_send(call)
        while self._errors:
            script = self._errors[0]
            if script.take():
                assert isinstance(script.value, TransportError)
                raise script.value
            self._errors.pop(0)
        replies = {r: self._reply_for(r) for r in call.recipients}
        accepted = tuple(r for r, reply in replies.items() if reply.ok)
        if accepted:
            self.delivered.append(SentMessage(sender, accepted, data))
        return replies

    async def close(self) -> None:
        self.closed = True

    def _reply_for(self, recipient: str) -> Reply:
        script = self._replies.get(recipient.lower())
        if script is not None and script.take():
            assert isinstance(script.value, Reply)
            return script.value
        return self.default
