"""The daemon on IDLE: a push wakes it, and a Dovecot restart during IDLE costs nothing."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from sqlalchemy import select

from gateway.app import App
from gateway.clock import FrozenClock
from gateway.daemon import Daemon
from gateway.inbound.imap import client as imap
from gateway.inbound.loop.batch import BatchDecider
from gateway.models import InboundMessage
from gateway.outbound.transport import MemoryTransport
from testkit.mails import new_mail, parse, reply, sent_mail
from testkit.world import ANA, add_customer, open_case, open_world, settings_for


@pytest.fixture
async def app(db_url: str, imap_account, clock: FrozenClock):
    box = imap_account.mailbox_settings(poll_seconds=600)  # only pushes and reconnects wake it
    async with open_world(settings_for(db_url, mailboxes=[box]), clock) as app:
        await add_customer(app)
        yield app


async def dispositions(app: App) -> dict[str, str]:
    async with app.sessions() as session:
        rows = (await session.execute(select(InboundMessage.subject, InboundMessage.disposition))).all()
    return {subject: disposition for subject, disposition in rows}


async def test_dovecot_restart_during_idle(app: App, imap_account, dovecot, monkeypatch) -> None:
    case = await open_case(app)
    original = await sent_mail(app, case.id)
    case_subject = str(parse(original)["Subject"])
    idle = asyncio.Event()
    decided = asyncio.Queue()
    real_process = BatchDecider.process

    async def observed(self, *args, **kwargs):
        result = await real_process(self, *args, **kwargs)
        for _ in result:
            decided.put_nowait(1)
        return result

    monkeypatch.setattr(BatchDecider, "process", observed)

    async def until_decided(subject: str, timeout: float) -> None:
        async def wait() -> None:
            while (await dispositions(app)).get(subject) is None:
                await decided.get()  # a batch was processed: look again

        await asyncio.wait_for(wait(), timeout)

    async def append(raw: bytes) -> None:  # in a thread: the daemon goes on meanwhile
        await asyncio.to_thread(imap_account.append, raw)

    daemon = Daemon(
        app, open_mailbox=lambda s: imap.connect(s, on_idle=idle.set), transport=MemoryTransport()
    )
    task = asyncio.create_task(daemon.run_forever())
    try:
        await asyncio.wait_for(idle.wait(), 30)
        idle.clear()
        await append(new_mail(sender="first@example.org", subject="while idle", text="x"))
        await until_decided("while idle", 30)  # the push woke the daemon
        await asyncio.wait_for(idle.wait(), 30)  # moved it, searched again, back on IDLE

        idle.clear()
        await asyncio.to_thread(dovecot.restart)  # the IDLE connection dies under the daemon
        await append(reply(original, sender=ANA, text="Sent while you were reconnecting."))
        await until_decided(f"RE: {case_subject}", 60)
        await asyncio.wait_for(idle.wait(), 30)  # back on IDLE on a new connection
        await append(new_mail(sender="third@example.org", subject="after restart", text="x"))
        await until_decided("after restart", 30)
    finally:
        daemon.stop()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(task, 30)
    found = await dispositions(app)
    assert found["while idle"] == "refused_new_case"
    assert found["after restart"] == "refused_new_case"
    assert [d for s, d in found.items() if s.startswith("RE:")] == ["applied"]
    assert imap_account.messages("INBOX") == []
