"""Three ``run`` replicas on one PostgreSQL database: 2,000 mails (replies to cases and new-case
mails) are each decided once, each answer is sent once (or again only under the same
Message-ID, after a crash), and when the replica holding the mailbox is killed a standby takes
over within seconds while the dead one's claimed outbox rows are sent within the lease."""

from __future__ import annotations

import asyncio
import contextlib
import email
import os
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from gateway.clock import SystemClock
from gateway.models import CaseEvent, InboundMessage, Outbox
from testkit.mails import new_mail, reply, sent_mail
from testkit.servers.smtp import RecordingSmtpServer
from testkit.world import ANA, add_customer, open_case, open_world, settings_for, write_config
from tests.integration.test_daemon_process import gateway_process
from tests.plugins.smtp import smtp_settings

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)]

MAILS = 2000
LEASE_SECONDS = 6.0
STANDBY_SECONDS = 1.0


class Output:
    """Reads a process's log lines as they come (so its pipe never fills up) and counts them."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[bytes] = []
        self.changed = asyncio.Event()
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self.lines.append(line)
            self.changed.set()
        self.changed.set()

    def count(self, marker: bytes) -> int:
        return sum(marker in line for line in self.lines)

    async def wait_for(self, marker: bytes, count: int = 1) -> None:
        while self.count(marker) < count:
            if self.reader.done():
                raise AssertionError(f"output ended after {self.count(marker)} of {count} {marker!r}")
            self.changed.clear()
            await self.changed.wait()


async def holder_pid(app) -> int:
    """The OS process whose database session holds the mailbox's advisory lock."""
    async with app.engine.connect() as conn:
        names = (await conn.execute(text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()"
        ))).scalars().all()
    assert len(names) == 1, names
    return int(names[0].rsplit(" ", 1)[1])


async def test_three_replicas_decide_once_and_take_over(
    db_url: str, imap_account, smtp_server_thread: RecordingSmtpServer, tmp_path: Path
) -> None:
    settings = settings_for(
        db_url,
        mailboxes=[imap_account.mailbox_settings(batch_size=100, standby_seconds=STANDBY_SECONDS)],
        smtp=smtp_settings(smtp_server_thread),
        inbound={"parse_workers": 1},
        outbox={"lease_seconds": LEASE_SECONDS, "batch_size": 20},
        limits={"auto_replies_per_sender_per_day": 1000, "auto_replies_per_hour": 10_000},
    )
    config = write_config(tmp_path / "gateway.toml", settings)
    async with open_world(settings, SystemClock()) as app:  # type: ignore[arg-type]
        await add_customer(app)
        cases = [await open_case(app, f"problem {i}") for i in range(10)]
        originals = [await sent_mail(app, c.id) for c in cases]
        acknowledgements = len(cases)
        mails = [
            reply(originals[i % 10], sender=ANA, text=f"Update number {i}.") if i % 2 == 0
            else new_mail(sender=f"stranger{i}@example.org", subject=f"New problem {i}", text="Help")
            for i in range(MAILS)
        ]  # the last one is a new-case mail: its answer is the last mail sent
        replicas = [Output(await gateway_process(config, "run")) for _ in range(3)]
        try:
            for replica in replicas:
                await asyncio.wait_for(replica.wait_for(b"daemon.started"), 60)
            await asyncio.to_thread(imap_account.append_many, mails)
            pid = await holder_pid(app)
            [holder] = [r for r in replicas if r.process.pid == pid]
            survivors = [r for r in replicas if r is not holder]
            await asyncio.wait_for(holder.wait_for(b"inbound.decided", MAILS // 4), 120)

            os.killpg(holder.process.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            await holder.process.wait()
            takeover = [asyncio.ensure_future(r.wait_for(b"imap.mailbox_held")) for r in survivors]
            done, pending = await asyncio.wait(takeover, timeout=30, return_when=asyncio.FIRST_COMPLETED)
            took_over_after = time.monotonic() - killed_at
            for task in pending:
                task.cancel()
            assert done, "no standby took the mailbox over"
            assert took_over_after < 5 * STANDBY_SECONDS + 5, took_over_after

            expected = acknowledgements + MAILS // 2  # one answer per new-case mail
            await asyncio.to_thread(distinct_sent, smtp_server_thread, expected, 240)
            await every_row_sent(app, smtp_server_thread, LEASE_SECONDS * 4 + 30)
            all_sent_after = time.monotonic() - killed_at
        finally:
            for replica in replicas:
                with contextlib.suppress(ProcessLookupError):
                    replica.process.send_signal(signal.SIGTERM)
            codes = [await asyncio.wait_for(r.process.wait(), 60) for r in replicas]
        assert sorted(codes) == [-signal.SIGKILL, 0, 0]

        async with app.sessions() as session:
            dispositions = dict((await session.execute(
                select(InboundMessage.disposition, func.count()).group_by(InboundMessage.disposition)
            )).all())
            replies = (await session.execute(
                select(CaseEvent.inbound_message_id, func.count())
                .where(CaseEvent.kind == "customer_reply").group_by(CaseEvent.inbound_message_id)
            )).all()
            outbox = (await session.execute(select(Outbox.message_id, Outbox.status))).all()
    assert dispositions == {"applied": MAILS // 2, "refused_new_case": MAILS // 2}
    assert len(replies) == MAILS // 2 and all(n == 1 for _, n in replies)
    assert len(outbox) == acknowledgements + MAILS // 2 and {s for _, s in outbox} == {"sent"}
    sent_ids = [email.message_from_bytes(m.data)["Message-ID"] for m in smtp_server_thread.messages]
    assert set(sent_ids) == {m for m, _ in outbox}  # every row sent; a repeat only as the same message
    assert imap_account.messages("INBOX") == []
    print(f"takeover {took_over_after:.1f} s; all mail sent {all_sent_after:.1f} s after the kill; "
          f"{len(sent_ids) - len(set(sent_ids))} sent twice")


async def every_row_sent(app, server: RecordingSmtpServer, timeout: float) -> None:
    """Wait until no outbox row is left unsent: a row the killed replica had sent but not yet
    recorded is sent again (same Message-ID) by a survivor once its lease runs out. Checked at
    each mail the server receives, or every half second."""
    deadline = time.monotonic() + timeout
    while True:
        async with app.sessions() as session:
            unsent = await session.scalar(
                select(func.count()).select_from(Outbox).where(Outbox.status != "sent"))
        if not unsent:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{unsent} outbox rows still unsent after {timeout:g} s")
        with contextlib.suppress(AssertionError):  # no new mail within half a second: look again
            await asyncio.to_thread(server.wait_for_sync, len(server.messages) + 1, 0.5)


def distinct_sent(server: RecordingSmtpServer, count: int, timeout: float) -> None:
    """Wait until ``count`` different Message-IDs have reached the server."""
    deadline = time.monotonic() + timeout
    seen = 0
    while True:
        messages = server.wait_for_sync(seen + 1, max(0.0, deadline - time.monotonic()))
        seen = len(messages)
        if len({email.message_from_bytes(m.data)["Message-ID"] for m in messages}) >= count:
            return
