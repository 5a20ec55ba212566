"""A recording SMTP server on loopback (aiosmtpd) with failure injection, for tests and benchmarks.

:class:`RecordingSmtpServer` listens on 127.0.0.1 on a free port and records every message it
accepts (:class:`Received`). It runs either inside the caller's event loop (``await start()`` /
``await stop()``) or in a thread with a loop of its own (``start_in_thread()`` /
``stop_thread()``), for a gateway in a subprocess or a benchmark.

Failures can be injected at any time, from any thread; each takes ``times`` (``None``: until
:meth:`~RecordingSmtpServer.reset_failures`, else only the next ``times`` occurrences):

- :meth:`~RecordingSmtpServer.refuse_sender` / :meth:`~RecordingSmtpServer.refuse_recipient` /
  :meth:`~RecordingSmtpServer.refuse_data`: answer this reply (``"450 4.2.1 try later"``);
- :meth:`~RecordingSmtpServer.drop_at_data`: close the connection at the end of DATA, no reply;
- :meth:`~RecordingSmtpServer.stall_at_data`: never answer DATA (a client timeout);
- :meth:`~RecordingSmtpServer.hang_up_after`: after N messages on one connection, close it
  without a reply at the next MAIL FROM, as a server does with an idle or over-used connection.

:class:`SilentServer` accepts TCP connections and never says a word (connect timeouts).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    """One accepted message: its envelope, its DATA bytes (CRLF, unstuffed) and its connection."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    connection: int
    """Number of the connection it came on (1 for the server's first connection)."""
    tls: bool
    login: str | None


@dataclass
class _Rule:
    reply: str
    times: int | None

    def take(self) -> bool:
        """True when the rule fires this time (and counts it)."""
        if self.times is None:
            return True
        if self.times <= 0:
            return False
        self.times -= 1
        return True


class _Connection(SMTP):
    """aiosmtpd's protocol, numbered and tracked by the server that made it."""

    def __init__(self, owner: RecordingSmtpServer, number: int, **kwargs: Any) -> None:
        super().__init__(owner, **kwargs)
        self.owner = owner
        self.number = number
        self.delivered = 0

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self.owner._live.discard(self)

    async def drop(self) -> None:
        """Close without a reply; connection_lost cancels the handler that awaits here."""
        if self.transport is not None:
            self.transport.close()
        await asyncio.get_running_loop().create_future()


class RecordingSmtpServer:
    """See the module docstring. ``starttls`` offers STARTTLS with a self-signed certificate
    (``cert_file``); ``implicit_tls`` speaks TLS from the first byte; ``auth`` is a
    (username, password) that every MAIL FROM then needs."""

    def __init__(
        self,
        *,
        starttls: bool = False,
        implicit_tls: bool = False,
        auth: tuple[str, str] | None = None,
        cert_dir: Path | None = None,
    ) -> None:
        self.starttls = starttls
        self.implicit_tls = implicit_tls
        self.auth = auth
        self.host = HOST
        self.port = 0
        self._cert_dir = cert_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._server_ctx: ssl.SSLContext | None = None
        self._lock = threading.Condition()
        self._messages: list[Received] = []
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._connections = 0
        self._live: set[_Connection] = set()
        self._sender: _Rule | None = None
        self._recipients: dict[str, _Rule] = {}
        self._data: _Rule | None = None
        self._drop: _Rule | None = None
        self._stall: _Rule | None = None
        self._hang_up_after: int | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        self._thread_stop: asyncio.Event | None = None

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen in the running loop; ``port`` is set when this returns."""
        if self.starttls or self.implicit_tls:
            self._server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._server_ctx.load_cert_chain(*self._make_certificate())
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._new_connection, self.host, 0, ssl=self._server_ctx if self.implicit_tls else None
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening, close every open connection and wait for their handlers to end."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        handlers = []
        for conn in list(self._live):
            if conn.transport is not None:
                conn.transport.close()
            if conn._handler_coroutine is not None:
                handlers.append(conn._handler_coroutine)
        await asyncio.gather(*handlers, return_exceptions=True)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def start_in_thread(self, timeout: float = 10.0) -> None:
        """Run the server in a daemon thread with its own event loop; returns once listening."""
        ready = threading.Event()
        failure: list[BaseException] = []

        async def serve() -> None:
            self._thread_loop = asyncio.get_running_loop()
            self._thread_stop = asyncio.Event()
            try:
                await self.start()
            except BaseException as error:
                failure.append(error)
                raise
            finally:
                ready.set()
            await self._thread_stop.wait()
            await self.stop()

        self._thread = threading.Thread(target=asyncio.run, args=(serve(),), name="smtp", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("the SMTP server thread did not start")
        if failure:
            raise failure[0]

    def stop_thread(self, timeout: float = 10.0) -> None:
        """Stop the server started by :meth:`start_in_thread` and join its thread."""
        if self._thread is None or self._thread_loop is None or self._thread_stop is None:
            return
        self._thread_loop.call_soon_threadsafe(self._thread_stop.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("the SMTP server thread did not stop")
        self._thread = None

    def client_tls_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's self-signed certificate (and nothing else)."""
        return ssl.create_default_context(cafile=str(self.cert_file))

    @property
    def cert_file(self) -> Path:
        return self._cert_path() / "cert.pem"

    # -- what was received ---------------------------------------------------------------------

    @property
    def messages(self) -> list[Received]:
        with self._lock:
            return list(self._messages)

    @property
    def connections(self) -> int:
        """How many connections have been accepted so far."""
        with self._lock:
            return self._connections

    def clear(self) -> None:
        """Forget the messages received so far (the connection counter keeps counting)."""
        with self._lock:
            self._messages.clear()

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """Wait (from any event loop) until ``count`` messages are recorded; AssertionError on timeout."""
        loop = asyncio.get_running_loop()
        waiter = (count, loop, loop.create_future())
        with self._lock:
            if len(self._messages) >= count:
                return list(self._messages)
            self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter[2]
        except TimeoutError:
            raise AssertionError(f"expected {count} messages, got {len(self.messages)}") from None
        finally:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        return self.messages

    def wait_for_sync(self, count: int, timeout: float = 5.0) -> list[Received]:
        """:meth:`wait_for` for a thread without an event loop (the server must run in a thread)."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._messages) >= count, timeout):
                raise AssertionError(f"expected {count} messages, got {len(self._messages)}")
            return list(self._messages)

    # -- failure injection ---------------------------------------------------------------------

    def refuse_sender(self, reply: str, times: int | None = None) -> None:
        with self._lock:
            self._sender = _Rule(reply, times)

    def refuse_recipient(self, address: str, reply: str, times: int | None = None) -> None:
        with self._lock:
            self._recipients[address.lower()] = _Rule(reply, times)

    def refuse_data(self, reply: str, times: int | None = None) -> None:
        with self._lock:
            self._data = _Rule(reply, times)

    def drop_at_data(self, times: int | None = None) -> None:
        with self._lock:
            self._drop = _Rule("", times)

    def stall_at_data(self, times: int | None = None) -> None:
        with self._lock:
            self._stall = _Rule("", times)

    def hang_up_after(self, messages: int | None) -> None:
        with self._lock:
            self._hang_up_after = messages

    def reset_failures(self) -> None:
        with self._lock:
            self._sender = self._data = self._drop = self._stall = None
            self._recipients.clear()
            self._hang_up_after = None

    # -- aiosmtpd hooks ------------------------------------------------------------------------

    async def handle_MAIL(
        self, server: _Connection, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        with self._lock:
            hang_up = self._hang_up_after is not None and server.delivered >= self._hang_up_after
        if hang_up:
            await server.drop()
        if self.auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        with self._lock:
            refusal = self._sender.reply if self._sender and self._sender.take() else None
        if refusal:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: _Connection, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        with self._lock:
            rule = self._recipients.get(address.lower())
            refusal = rule.reply if rule and rule.take() else None
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: _Connection, session: Session, envelope: Envelope) -> str:
        with self._lock:
            drop = bool(self._drop and self._drop.take())
            stall = bool(self._stall and self._stall.take())
            refusal = self._data.reply if self._data and self._data.take() else None
        if drop:
            await server.drop()
        if stall:
            await asyncio.get_running_loop().create_future()  # cancelled when the client leaves
        if refusal:
            return refusal
        message = Received(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            data=envelope.original_content or b"",
            connection=server.number,
            tls=server.transport is not None and server.transport.get_extra_info("sslcontext") is not None,
            login=session.auth_data,
        )
        server.delivered += 1
        self._record(message)
        return f"250 2.0.0 OK queued as {server.number}.{server.delivered}"

    # -- internals -----------------------------------------------------------------------------

    def _record(self, message: Received) -> None:
        with self._lock:
            self._messages.append(message)
            count = len(self._messages)
            due = [w for w in self._waiters if w[0] <= count]
            self._lock.notify_all()
        for _, loop, future in due:
            loop.call_soon_threadsafe(_resolve, future)

    def _new_connection(self) -> _Connection:
        with self._lock:
            self._connections += 1
            number = self._connections
        conn = _Connection(
            self,
            number,
            hostname="recording-smtp.test",
            tls_context=self._server_ctx if self.starttls else None,
            authenticator=self._authenticate if self.auth else None,
            auth_require_tls=False,
            loop=asyncio.get_running_loop(),
        )
        self._live.add(conn)
        return conn

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert self.auth is not None
        if isinstance(data, LoginPassword) and (data.login, data.password) == (
            self.auth[0].encode(),
            self.auth[1].encode(),
        ):
            return AuthResult(success=True, auth_data=self.auth[0])
        return AuthResult(success=False, handled=False)

    def _cert_path(self) -> Path:
        if self._cert_dir is None:
            self._tmp = self._tmp or tempfile.TemporaryDirectory(prefix="smtp-cert-")
            return Path(self._tmp.name)
        return self._cert_dir

    def _make_certificate(self) -> tuple[str, str]:
        """A self-signed certificate for localhost and 127.0.0.1, made with the openssl CLI."""
        folder = self._cert_path()
        folder.mkdir(parents=True, exist_ok=True)
        cert, key = folder / "cert.pem", folder / "key.pem"
        if not cert.exists():
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert),
                 "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                check=True, capture_output=True,
            )
        return str(cert), str(key)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class SilentServer:
    """Accepts TCP connections on loopback and never answers: the greeting never comes."""

    def __init__(self) -> None:
        self.host = HOST
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._hold, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for writer in self._writers:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        await reader.read()  # until the client gives up
