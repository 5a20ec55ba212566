"""Real sender processes: one killed with SIGKILL after claiming, and two racing on PostgreSQL."""

from __future__ import annotations

import asyncio
import email
import os
import signal
import sys
from datetime import timedelta

import pytest

from gateway.clock import FrozenClock, SystemClock
from gateway.outbound.sender import Sender
from gateway.outbound.transport import SmtpTransport
from testkit.servers.smtp import RecordingSmtpServer
from testkit.world import add_customer, open_case, open_world, settings_for
from tests.plugins.smtp import smtp_settings

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


async def sender_process(db_url: str, port: int, *flags: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.procs.sender_proc",
        db_url,
        str(port),
        *flags,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_sender_killed_after_claiming_sends_once_later(
    db_url: str, smtp_server: RecordingSmtpServer
) -> None:
    settings = settings_for(db_url, smtp=smtp_settings(smtp_server))
    async with open_world(settings, SystemClock()) as app:  # type: ignore[arg-type]
        await add_customer(app)
        case = await open_case(app)
        proc = await sender_process(db_url, smtp_server.port, "--hang-after-claim")
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line.strip() == b"claimed 1"
        proc.send_signal(signal.SIGKILL)
        assert await proc.wait() == -signal.SIGKILL
        assert smtp_server.messages == []
        later = FrozenClock(SystemClock().now() + timedelta(seconds=settings.outbox.lease_seconds + 5))
        transport = SmtpTransport(settings.smtp)
        sender = Sender(app.engine, transport, settings.outbox, later)
        assert (await sender.run_until_empty()).sent == 1
        await transport.close()
        [received] = smtp_server.messages
        assert f"REF:{case.number}." in email.message_from_bytes(received.data)["Subject"]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_two_sender_processes_never_send_a_row_twice(
    db_url: str, smtp_server: RecordingSmtpServer
) -> None:
    settings = settings_for(db_url, smtp=smtp_settings(smtp_server))
    async with open_world(settings, SystemClock()) as app:  # type: ignore[arg-type]
        await add_customer(app)
        for i in range(120):
            await open_case(app, subject=f"case {i}")
    procs = [await sender_process(db_url, smtp_server.port, "--wait-for-go") for _ in range(2)]
    for p in procs:
        assert (await asyncio.wait_for(p.stdout.readline(), 60)).strip() == b"ready"
    outputs = await asyncio.gather(*(asyncio.wait_for(p.communicate(b"go\n"), 120) for p in procs))
    assert [p.returncode for p in procs] == [0, 0], outputs
    sent = [int(out.strip().split()[-1]) for out, _ in outputs]
    assert sum(sent) == 120 and all(n > 0 for n in sent), sent
    ids = [email.message_from_bytes(m.data)["Message-ID"] for m in smtp_server.messages]
    assert len(ids) == 120 and len(set(ids)) == 120
