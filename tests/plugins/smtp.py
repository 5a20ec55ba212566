"""SMTP fixtures: a recording server on loopback per test (see :mod:`testkit.servers.smtp`).

``smtp_server``          a plain :class:`RecordingSmtpServer` running in the test's event loop.
``smtp_server_factory``  ``await make(starttls=True, auth=("u", "p"), ...)`` for other kinds; every
                         server made is stopped after the test.
``smtp_server_thread``   a plain server running in a thread with its own loop (for a gateway in a
                         subprocess, or synchronous code); use ``wait_for_sync`` or ``wait_for``.
``smtp_settings(server, **overrides)``  :class:`SmtpSettings` that reach ``server``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config import SmtpSettings
from testkit.servers.smtp import RecordingSmtpServer

ServerFactory = Callable[..., Awaitable[RecordingSmtpServer]]


def smtp_settings(server: RecordingSmtpServer, **overrides: Any) -> SmtpSettings:
    """Settings for ``server``: its TLS mode (implicit TLS, STARTTLS or plaintext on loopback),
    its credentials, a short timeout; any key can be overridden."""
    if server.implicit_tls:
        tls = "tls"
    elif server.starttls:
        tls = "starttls"
    else:
        tls = "none"
    values: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "tls": tls,
        "timeout_seconds": 5.0,
        "pool_size": 2,
    }
    if server.auth is not None:
        values["username"], values["password"] = server.auth
    values.update(overrides)
    return SmtpSettings(**values)


@pytest.fixture
async def smtp_server_factory(tmp_path: Path) -> AsyncIterator[ServerFactory]:
    """Make servers with options (``starttls``, ``implicit_tls``, ``auth``); all stopped after."""
    servers: list[RecordingSmtpServer] = []

    async def make(**options: Any) -> RecordingSmtpServer:
        options.setdefault("cert_dir", tmp_path / f"smtp-cert-{len(servers)}")
        server = RecordingSmtpServer(**options)
        await server.start()
        servers.append(server)
        return server

    try:
        yield make
    finally:
        for server in servers:
            await server.stop()


@pytest.fixture
async def smtp_server(smtp_server_factory: ServerFactory) -> RecordingSmtpServer:
    """A plaintext recording server in the test's loop, no TLS, no AUTH."""
    return await smtp_server_factory()


@pytest.fixture
def smtp_server_thread() -> Iterator[RecordingSmtpServer]:
    """A plaintext recording server in its own thread and event loop."""
    server = RecordingSmtpServer()
    server.start_in_thread()
    try:
        yield server
    finally:
        server.stop_thread()
