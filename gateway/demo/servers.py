"""The demo's two mail servers, both on 127.0.0.1 and free ports.

:class:`ImapServer` runs pymap's in-memory backend as a child process in a process group of its
own, so the terminal's Ctrl-C reaches the demo only and :meth:`ImapServer.stop` ends pymap and
anything it started. :class:`SmtpSink` is aiosmtpd in the demo's event loop: it accepts every
mail and files it as ``NNNN-<kind>.eml``, and lets the narration wait for a filed mail.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email import policy
from pathlib import Path
from typing import IO, Any

from gateway.errors import GatewayError

HOST = "127.0.0.1"
START_SECONDS = 15.0
STOP_SECONDS = 5.0


class DemoError(GatewayError):
    """The demo could not do what it set out to do; the message says what and where to look."""


def free_port() -> int:
    """A port nobody listens on right now (the IMAP child binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class ImapServer:
    """pymap's dict backend with one user; its mail lives in memory and dies with it."""

    def __init__(self, user: str, password: str, log_file: Path) -> None:
        self.user = user
        self.password = password
        self.log_file = log_file
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self, attempts: int = 3) -> None:
        """Start pymap and return once it greets; another port if one was taken meanwhile."""
        for _ in range(attempts):
            port = free_port()
            with self.log_file.open("ab") as log:
                self.process = self._spawn(port, log)
            if await self._greets(port):
                self.port = port
                return
            await self.stop()
        raise DemoError(f"the IMAP server (pymap) did not start; see {self.log_file}")

    def _spawn(self, port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
        command = [
            sys.executable, "-c", "from pymap.main import main; main()",
            "--host", HOST, "--port", str(port), "--no-tls",
            "dict", f"--demo-user={self.user}", f"--demo-password={self.password}",
        ]
        try:
            return subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        except OSError as exc:
            raise DemoError(f"cannot start the IMAP server: {exc}") from None

    async def _greets(self, port: int) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_SECONDS
        while loop.time() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                reader, writer = await asyncio.open_connection(HOST, port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            try:
                greeting = await asyncio.wait_for(reader.readline(), START_SECONDS)
            except (OSError, TimeoutError):
                greeting = b""
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return greeting.startswith(b"* OK")
        return False

    async def stop(self) -> None:
        """SIGTERM to pymap's process group, SIGKILL if it lingers; always reaped."""
        process, self.process = self.process, None
        if process is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, sig)
            try:
                await asyncio.to_thread(process.wait, STOP_SECONDS)
                return
            except subprocess.TimeoutExpired:
                continue


@dataclass(frozen=True)
class Filed:
    """One mail the gateway sent, as the sink filed it."""

    path: Path
    kind: str
    to: tuple[str, ...]
    subject: str
    message_id: str
    data: bytes


Labeller = Callable[[str], Awaitable[str | None]]
"""Message-ID -> what kind of mail it is (the file name's second part)."""


class SmtpSink:
    """An SMTP server that accepts everything and files it in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = 0
        self.filed: list[Filed] = []
        self.labeller: Labeller | None = None
        self._changed = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self._number = 0

    async def start(self) -> None:
        from aiosmtpd.smtp import SMTP  # the demo extra; imported late for a clear error

        self.folder.mkdir(parents=True, exist_ok=True)
        self._number = max((_number_of(p) for p in self.folder.glob("*.eml")), default=0)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="demo-smtp.localhost", loop=loop), HOST, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data: bytes = envelope.original_content or b""
        msg = email.message_from_bytes(data, policy=policy.default)
        message_id = str(msg.get("Message-ID", "")).strip()
        kind = (await self.labeller(message_id) if self.labeller else None) or "mail"
        self._number += 1
        path = self.folder / f"{self._number:04d}-{kind}.eml"
        await asyncio.to_thread(path.write_bytes, data)
        async with self._changed:
            self.filed.append(Filed(path, kind, tuple(envelope.rcpt_tos), str(msg.get("Subject", "")),
                                    message_id, data))
            self._changed.notify_all()
        return f"250 2.0.0 filed as {path.name}"

    async def wait_for(self, wanted: Callable[[Filed], bool], *, after: int = 0,
                       within: float = 30.0) -> Filed:
        """The first mail filed at index ``after`` or later that is ``wanted``."""

        def found() -> Filed | None:
            return next((f for f in self.filed[after:] if wanted(f)), None)

        try:
            async with asyncio.timeout(within), self._changed:
                await self._changed.wait_for(lambda: found() is not None)
        except TimeoutError:
            raise DemoError(f"no such mail was sent within {within:.0f} s") from None
        result = found()
        assert result is not None
        return result


def _number_of(path: Path) -> int:
    head = path.name.partition("-")[0]
    return int(head) if head.isdigit() else 0
