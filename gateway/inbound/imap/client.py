"""IMAP behind a small interface of ours: the :class:`Mailbox` protocol and its aioimaplib client.

aioimaplib (2.0.3) is the only IMAP library imported, and only here (and in
:mod:`gateway.inbound.imap.protocol`, a subclass of one of its commands). Its pitfalls shape this
module: every call is bounded by ``timeout_seconds`` *and* fails as soon as the connection
drops (the library leaves pending commands waiting forever); any error marks the client
broken, so callers throw it away (the daemon's :class:`~gateway.inbound.loop.runner.MailboxRunner`
opens a new one with randomised backoff); FETCH responses go through
:mod:`gateway.inbound.imap.wire`; a FETCH's UIDs are cut to :data:`MAX_UIDS_PER_COMMAND`, a
move's to a set of :data:`MAX_UID_SET_CHARS` (a command line of the length RFC 7162 asks
for), and flags are stored ``.SILENT`` (the library's reader recursed once per response line
and died on long responses, issue #118; ours loops); FETCH is sent as our
:class:`~gateway.inbound.imap.protocol.FetchCommand` (the library's, without its per-line
rescans) and responses are read by our :class:`~gateway.inbound.imap.protocol.LeanProtocol` (the
library's, without its per-chunk costs).

Errors leave as :class:`~gateway.errors.TemporaryTransportError` (timeouts as
:class:`~gateway.errors.TransportTimeout`) or, when retrying cannot help (refused login,
certificate not trusted, folder that does not exist), :class:`~gateway.errors.PermanentTransportError`.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import aioimaplib
import structlog

from gateway.config import MailboxSettings
from gateway.errors import PermanentTransportError, TemporaryTransportError, TransportTimeout
from gateway.inbound.imap.mailbox import FolderState, Mailbox
from gateway.inbound.imap.protocol import FetchCommand, LeanIMAP4
from gateway.inbound.imap.wire import (
    MAX_UID_SET_CHARS,
    MAX_UIDS_PER_COMMAND,
    FetchRecord,
    FetchSyntaxError,
    chunks,
    encode_folder,
    parse_pieces,
    parse_search,
    parse_select,
    uid_set,
    uid_sets,
)

__all__ = [
    "AioImapMailbox",
    "FolderState",
    "Mailbox",
    "connect",
    "ssl_context_for",
]

log = structlog.get_logger(__name__)
T = TypeVar("T")
_CHANGE_PUSH = re.compile(rb"^(?:\* )?\d+ (EXISTS|RECENT|EXPUNGE|FETCH)\b")
_TEMPORARY_CODES = (b"[UNAVAILABLE]", b"[INUSE]", b"[SERVERBUG]", b"[LIMIT]", b"[EXPUNGEISSUED]")


def ssl_context_for(settings: MailboxSettings, ca_file: str | None = None) -> ssl.SSLContext | None:
    """None for ``tls = "none"``; otherwise a verifying context (system CAs, or ``ca_file``)."""
    if settings.tls == "none":
        return None
    context = ssl.create_default_context(cafile=ca_file)
    if not settings.verify_certificates:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def connect(settings: MailboxSettings, *, ca_file: str | None = None, **options: Any) -> AioImapMailbox:
    """A logged-in :class:`AioImapMailbox` (``options`` go to its constructor); nothing leaks on failure."""
    mailbox = AioImapMailbox(settings, ca_file=ca_file, **options)
    try:
        await mailbox.connect()
    except BaseException:
        await mailbox.close()
        raise
    return mailbox


class AioImapMailbox:
    """One IMAP connection. After any error it is *broken*: every later call raises at once.

    ``use_move=False`` forces COPY + STORE + EXPUNGE even where MOVE is offered; ``sleep`` is
    what :meth:`wait_for_changes` awaits when it polls (tests inject an event); ``on_idle``
    is called each time the server has accepted IDLE (tests wait for it).
    """

    max_uid_set_chars = MAX_UID_SET_CHARS
    """The longest UID set :meth:`move` sends in one command (tests make it short)."""

    def __init__(
        self,
        settings: MailboxSettings,
        *,
        ca_file: str | None = None,
        use_move: bool = True,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_idle: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self._ssl = ssl_context_for(settings, ca_file)
        self._use_move = use_move
        self._sleep = sleep
        self._on_idle = on_idle
        self._timeout = settings.timeout_seconds
        self._client: Any = None
        self._lost: asyncio.Future[None] | None = None
        self._error: Exception | None = None

    @property
    def broken(self) -> bool:
        return self._error is not None

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset(self._client.protocol.capabilities) if self._client else frozenset()

    async def connect(self) -> None:
        """Connect, greet, log in, learn the capabilities (login refused -> permanent error)."""
        self._lost = asyncio.get_running_loop().create_future()
        self._client = LeanIMAP4(
            self.settings.host, self.settings.port, timeout=self._timeout,
            conn_lost_cb=self._connection_lost, ssl_context=self._ssl,
        )  # fmt: skip
        await self._call("connect", self._client.wait_hello_from_server())
        user, password = self.settings.username, self.settings.password.get_secret_value()
        response = await self._call("login", self._client.login(aioimaplib.quoted(user), password))
        if response.result != "OK":
            text = _text(response)
            kind = TemporaryTransportError if _is_temporary(text) else PermanentTransportError
            self._fail(kind(f"IMAP login refused for {user!r}: {text!r}"))
        await self._call("capability", self._client.protocol.capability())

    async def close(self) -> None:
        """Log out if still healthy, then drop the connection and every library task."""
        client, self._client = self._client, None
        if client is None:
            return
        if self._error is None and client.has_pending_idle():
            client.idle_done()  # a server in IDLE answers nothing but DONE
        if self._error is None and client.get_state() in ("AUTH", "SELECTED"):
            try:
                await asyncio.wait_for(client.logout(), min(self._timeout, 5.0))
            except Exception:
                log.debug("imap.logout_failed", mailbox=self.settings.name)
        self._error = self._error or TemporaryTransportError("mailbox closed")
        await _discard(client, self._lost)

    async def select(self, folder: str | None = None) -> FolderState:
        """SELECT ``folder`` (default: the settings' folder) read-write."""
        name = folder or self.settings.folder
        response = await self._call("select", self._require().select(encode_folder(name)))
        if response.result != "OK":
            self._fail(PermanentTransportError(f"cannot select {name!r}: {_text(response)!r}"))
        try:
            return parse_select(name, response.lines)
        except FetchSyntaxError as error:
            self._fail(TemporaryTransportError(str(error)))
            raise  # unreachable: _fail raised

    async def ensure_folders(self, names: Iterable[str]) -> None:
        """CREATE each folder that does not exist yet; existing ones are left alone."""
        client = self._require()
        for name in names:
            encoded = encode_folder(name)
            created = await self._call("create", client.create(encoded))
            if created.result == "OK":
                log.info("imap.folder_created", mailbox=self.settings.name, folder=name)
                continue
            listed = await self._ok("list", client.list('""', encoded))
            if not any(bytes(line).strip() for line in listed.lines[:-1]):  # one LIST line: it exists
                self._fail(PermanentTransportError(f"cannot create folder {name!r}: {_text(created)!r}"))

    async def search_uids(self, min_uid: int = 1) -> list[int]:
        """UIDs >= ``min_uid`` in the selected folder, ascending, including mail delivered just
        before the call (a NOOP first: Dovecot searches the view as of the last command)."""
        await self._ok("noop", self._require().noop())
        search = self._require().uid_search(f"UID {max(min_uid, 1)}:*", charset=None)
        response = await self._ok("uid search", search)
        return parse_search(response.lines[:-1], min_uid)

    async def fetch_sizes(self, uids: Sequence[int]) -> dict[int, int]:
        """RFC822.SIZE of each requested UID that still exists (absent UIDs are left out)."""
        records = await self._fetch(uids, "(UID RFC822.SIZE)", lambda r: r.size is not None)
        return {r.uid: r.size for r in records if r.uid is not None and r.size is not None}

    async def fetch(self, uids: Sequence[int]) -> list[tuple[int, bytes]]:
        """(UID, exact raw bytes) for each requested UID found, in the order asked; never sets \\Seen.

        A requested UID absent from the result was expunged meanwhile or could not be parsed
        (logged as ``imap.fetch_missing``): the caller sees exactly which ones it did not get.
        """
        records = await self._fetch(uids, "(UID BODY.PEEK[])", lambda r: r.section("") is not None)
        found = {r.uid: r.section("") for r in records}
        return [(uid, body) for uid in dict.fromkeys(uids) if (body := found.get(uid)) is not None]

    async def fetch_header(self, uid: int) -> bytes | None:
        """The header block of one message (for oversized ones), or None if it is gone."""
        has_header: Callable[[FetchRecord], bool] = lambda r: r.section("HEADER") is not None  # noqa: E731
        records = await self._fetch([uid], "(UID BODY.PEEK[HEADER])", has_header)
        return records[0].section("HEADER") if records else None

    async def move(self, uids: Sequence[int], folder: str) -> None:
        """Move UIDs of the selected folder to ``folder``: UID MOVE where offered, else
        COPY + STORE \\Deleted + (UID) EXPUNGE. UIDs already gone are not an error."""
        client = self._require()
        target = encode_folder(folder)
        native = self._use_move and "MOVE" in self.capabilities
        for uids_ in uid_sets(uids, self.max_uid_set_chars):
            if native:
                await self._ok("uid move", client.uid("move", uids_, target))
                continue
            await self._ok("uid copy", client.uid("copy", uids_, target))
            await self._ok("uid store", client.uid("store", uids_, "+FLAGS.SILENT", r"(\Deleted)"))
            if "UIDPLUS" in self.capabilities:
                await self._ok("uid expunge", client.uid("expunge", uids_))
            else:  # also expunges what other clients marked \Deleted: they meant it deleted
                await self._ok("expunge", client.expunge())

    async def wait_for_changes(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Wait up to ``timeout`` (default poll_seconds) for the server to report a change.

        True when a push (EXISTS, RECENT, EXPUNGE, FETCH) came during IDLE; False on timeout or
        when IDLE is off or not offered (then this only sleeps). Pushes can be missed, so the
        caller searches again after every return, True or False.
        """
        timeout = self.settings.poll_seconds if timeout is None else timeout
        client = self._require()
        if not (self.settings.idle and "IDLE" in self.capabilities):
            await self._sleep(timeout)
            return False
        if client.get_state() != "SELECTED":  # IDLE would be refused, its task left failed
            self._fail(TemporaryTransportError("IMAP idle: no folder selected"))
        idle = await self._call("idle", client.idle_start(timeout=timeout + self._timeout + 60))
        if self._on_idle is not None:
            self._on_idle()
        changed = await self._idle_until_push(client, timeout)
        client.idle_done()
        await self._ok("idle done", idle)
        return _drain_pushes(client) or changed

    # -- internals -----------------------------------------------------------------------

    async def _idle_until_push(self, client: Any, seconds: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            try:
                push = await self._call("idle wait", client.protocol.idle_queue.get(), limit=left)
            except TransportTimeout:
                self._error = None  # an IDLE that saw nothing is not a failure
                return False
            if any(_CHANGE_PUSH.match(bytes(line)) for line in push):
                return True
        return False

    async def _fetch(
        self, uids: Sequence[int], items: str, has: Callable[[FetchRecord], bool]
    ) -> list[FetchRecord]:
        """Records of the requested UIDs that carry what was asked; logs any UID not returned."""
        wanted = set(uids)
        records: dict[int, FetchRecord] = {}
        for chunk in chunks(sorted(wanted), min(self.settings.batch_size, MAX_UIDS_PER_COMMAND)):
            response = await self._ok("uid fetch", self._uid_fetch(uid_set(chunk), items))
            parsed = parse_pieces(response.lines[:-1])
            for error in parsed.errors:
                log.warning("imap.fetch_unparsed", mailbox=self.settings.name, error=error)
            records.update((r.uid, r) for r in parsed.records if r.uid in wanted and has(r))
        if missing := wanted - records.keys():
            log.warning("imap.fetch_missing", mailbox=self.settings.name, uids=sorted(missing))
        return [records[uid] for uid in sorted(records)]

    def _uid_fetch(self, uids: str, items: str) -> Awaitable[Any]:
        """``client.uid("fetch", ...)`` with our :class:`FetchCommand`."""
        client = self._require()
        protocol = client.protocol
        command = FetchCommand(protocol.new_tag(), uids, items, prefix="UID", loop=protocol.loop,
                               timeout=client.timeout)
        return protocol.execute(command)  # type: ignore[no-any-return]

    async def _ok(self, what: str, command: Awaitable[Any]) -> Any:
        response = await self._call(what, command)
        if response.result != "OK":
            self._fail(TemporaryTransportError(f"IMAP {what} failed: {response.result} {_text(response)!r}"))
        return response

    async def _call(self, what: str, command: Awaitable[T], limit: float | None = None) -> T:
        """Await one library call, bounded by the timeout and by the connection's life."""
        if self._error is not None or self._lost is None:
            _close_awaitable(command)
            raise TemporaryTransportError(f"IMAP {what}: connection is not usable ({self._error})")
        limit = self._timeout if limit is None else limit
        task = asyncio.ensure_future(command)
        waiters: set[asyncio.Future[Any]] = {task, self._lost}
        try:
            done, _ = await asyncio.wait(waiters, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # e.g. shutdown during IDLE: the protocol state is unknown
            self._error = self._error or TemporaryTransportError(f"IMAP {what} was cancelled")
            await _cancel(task)
            raise
        if task in done:
            try:
                return task.result()
            except (ssl.SSLCertVerificationError, ssl.CertificateError) as error:
                self._fail(PermanentTransportError(f"IMAP {what}: certificate not trusted: {error}"))
            except Exception as error:
                self._fail(TemporaryTransportError(f"IMAP {what} failed: {type(error).__name__}: {error}"))
        await _cancel(task)
        if self._lost.done():
            self._fail(TemporaryTransportError(f"IMAP {what}: connection lost"))
        self._fail(TransportTimeout(f"IMAP {what} timed out after {limit}s"))
        raise AssertionError("unreachable")

    def _fail(self, error: Exception) -> None:
        """Mark the connection broken and raise ``error``."""
        self._error = self._error or error
        raise error

    def _require(self) -> Any:
        if self._client is None or self._error is not None:
            name = self.settings.name
            raise TemporaryTransportError(f"IMAP mailbox {name!r} is not usable ({self._error})")
        return self._client

    def _connection_lost(self, error: Exception | None) -> None:
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)


def _drain_pushes(client: Any) -> bool:
    changed = False
    queue = client.protocol.idle_queue
    while not queue.empty():
        changed |= any(_CHANGE_PUSH.match(bytes(line)) for line in queue.get_nowait())
    return changed


def _text(response: Any) -> bytes:
    return bytes(response.lines[-1]) if response.lines else b""


def _is_temporary(text: bytes) -> bool:
    return any(code in text for code in _TEMPORARY_CODES) or b"Temporary" in text


def _close_awaitable(command: Awaitable[Any]) -> None:
    close = getattr(command, "close", None)
    if callable(close):  # a coroutine that will never run: close it, or Python warns
        close()


async def _cancel(task: asyncio.Future[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


CLOSE_SECONDS = 2.0
"""How long a closing connection may take: a TLS one first exchanges close_notify with the
server; past this, it is aborted."""


async def _discard(client: Any, lost: asyncio.Future[None] | None) -> None:
    """Close the socket and cancel what the library left running, so nothing leaks.

    The close is awaited: TLS closes in the background otherwise, and a socket still open
    when its event loop ends is never closed."""
    transport = client.protocol.transport
    if transport is not None:
        transport.close()
        if lost is not None and not lost.done():
            try:
                await asyncio.wait_for(asyncio.shield(lost), CLOSE_SECONDS)
            except TimeoutError:
                transport.abort()
    if client._idle_waiter is not None:
        client._idle_waiter.cancel()
    for task in [client._client_task, *client.tasks, *client.protocol.tasks]:
        if not task.done():
            await _cancel(task)
