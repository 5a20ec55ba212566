"""Dovecot fixtures: one real IMAP server per test session, a fresh empty account per test.

``dovecot``       the session's :class:`~testkit.servers.dovecot.DovecotServer` (plain IMAP on
                  ``port``, IMAPS with a self-signed certificate on ``tls_port``; ``ca_file``).
                  Skipped when Dovecot is not installed, or a failure when ``CI`` is set.
``imap_account``  a new user with a random name and password, so every test starts with an
                  empty mailbox; synchronous helpers (stdlib imaplib) to put mail in and look.

A test that restarts the server (``dovecot.restart()``) leaves it running on the same port.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.config import MailboxSettings
from testkit.servers.dovecot import DovecotServer


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    """The session's Dovecot server (started once, killed and removed at the end of the session).

    Its folder is not under pytest's basetemp: every pytest run (another engineer's, in
    parallel) resets ``/tmp/pytest-of-USER`` to mode 0700, which would lock Dovecot's
    unprivileged processes out of a server that is still running.
    """
    try:
        DovecotServer.binary()
    except FileNotFoundError as error:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs Dovecot for IMAP tests: {error}")
        pytest.skip(f"IMAP integration tests need Dovecot: {error}")
    folder = Path(tempfile.mkdtemp(prefix="gateway-dovecot-"))
    server = DovecotServer(folder / "server", tls=True)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class ImapAccount:
    """One login on the test Dovecot; helpers open a short stdlib imaplib connection each."""

    server: DovecotServer
    username: str
    password: str

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def tls_port(self) -> int:
        assert self.server.tls_port is not None
        return self.server.tls_port

    @property
    def ca_file(self) -> str:
        return str(self.server.ca_file)

    def connect(self) -> imaplib.IMAP4:
        """A logged-in stdlib client; the caller logs out."""
        client = imaplib.IMAP4(self.host, self.port, timeout=10)
        try:
            _ok(client.login(self.username, self.password))
        except BaseException:
            client.shutdown()
            raise
        return client

    @contextlib.contextmanager
    def session(self) -> Iterator[imaplib.IMAP4]:
        """A logged-in stdlib client, logged out at the end; its socket is closed even when
        the server does not answer (a socket left open would warn in some later test)."""
        client = self.connect()
        try:
            yield client
        finally:
            try:
                client.logout()
            except (OSError, imaplib.IMAP4.error):
                client.shutdown()

    def append(self, raw: bytes, folder: str = "INBOX") -> int:
        """APPEND one message; returns its UID (from APPENDUID)."""
        return self.append_many([raw], folder)[0]

    def append_many(self, raws: Iterable[bytes], folder: str = "INBOX") -> list[int]:
        """APPEND every message over one connection; returns their UIDs in order."""
        with self.session() as client:
            uids = []
            for raw in raws:
                typ, data = client.append(_quote(folder), None, None, raw)
                _ok((typ, data))
                match = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
                assert match, data
                uids.append(int(match.group(1)))
            return uids

    def messages(self, folder: str = "INBOX") -> list[bytes]:
        """The raw bytes of every message in ``folder``, in UID order (does not set \\Seen)."""
        return [raw for _, raw in self.messages_by_uid(folder)]

    def messages_by_uid(self, folder: str = "INBOX") -> list[tuple[int, bytes]]:
        """(UID, raw bytes) of every message in ``folder``, in UID order."""
        with self.session() as client:
            _ok(client.select(_quote(folder), readonly=True))
            typ, data = client.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
            _ok((typ, data))
            found = []
            for item in data:
                if isinstance(item, tuple):
                    match = re.search(rb"UID (\d+)", item[0])
                    assert match, item
                    found.append((int(match.group(1)), item[1]))
            return sorted(found)

    def folders(self) -> list[str]:
        """Names of every folder of the account (``INBOX`` included)."""
        with self.session() as client:
            typ, data = client.list()
            _ok((typ, data))
            names = []
            for line in data:
                assert isinstance(line, bytes), line
                match = re.match(rb'\(.*?\) (?:"."|NIL) (.*)$', line)
                assert match, line
                names.append(match.group(1).decode().strip('"'))
            return names

    def mailbox_settings(self, **overrides: Any) -> MailboxSettings:
        """Settings that reach this account over plain IMAP on loopback; override any key."""
        values: dict[str, Any] = {
            "name": "test",
            "host": self.host,
            "port": self.port,
            "tls": "none",
            "username": self.username,
            "password": self.password,
            "timeout_seconds": 10.0,
            "poll_seconds": 5.0,
        }
        values.update(overrides)
        return MailboxSettings(**values)


@pytest.fixture
def imap_account(dovecot: DovecotServer) -> ImapAccount:
    """A fresh user with an empty mailbox, private to this test."""
    if not dovecot.running:  # a test killed it and did not restart it
        dovecot.start()
    account = ImapAccount(dovecot, f"u{secrets.token_hex(6)}", secrets.token_urlsafe(12))
    dovecot.add_user(account.username, account.password)
    return account


def _ok(response: tuple[str, Any]) -> None:
    if response[0] != "OK":
        raise AssertionError(f"IMAP command failed: {response!r}")


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
