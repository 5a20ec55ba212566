"""The daemon as a real process: killed with SIGKILL in the middle of 500 mails and restarted
(each applied exactly once); `run` stopped with SIGTERM; the inbound and quarantine commands."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.clock import FrozenClock
from gateway.daemon import YOUNG_GENERATION_THRESHOLD
from gateway.models import CaseEvent, InboundMessage, Outbox
from testkit.mails import DEEP_MAIL, new_mail, reply, sent_mail
from testkit.servers.smtp import RecordingSmtpServer
from testkit.world import ANA, add_customer, open_case, open_world, settings_for, write_config
from tests.cli_helpers import Gateway
from tests.plugins.smtp import smtp_settings

ROOT = Path(__file__).resolve().parents[2]


async def gateway_process(config: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "--config",
        str(config),
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )


async def read_until(
    stream: asyncio.StreamReader, marker: bytes, count: int = 1, timeout: float = 120
) -> None:
    seen = 0

    async def scan() -> None:
        nonlocal seen
        while seen < count:
            line = await stream.readline()
            if not line:
                raise AssertionError(f"stream ended after {seen} of {count} {marker!r}")
            seen += marker in line

    await asyncio.wait_for(scan(), timeout)


@pytest.fixture
def settings(db_url: str, imap_account, smtp_server_thread: RecordingSmtpServer):
    return settings_for(
        db_url,
        mailboxes=[imap_account.mailbox_settings(batch_size=50)],
        smtp=smtp_settings(smtp_server_thread),
        inbound={"parse_workers": 2},
        limits={"auto_replies_per_sender_per_day": 1000, "auto_replies_per_hour": 1000},
    )


@pytest.mark.slow
async def test_sigkill_mid_batch_then_restart_applies_each_once(
    settings, imap_account, clock: FrozenClock, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "gateway.toml", settings)
    async with open_world(settings, clock) as app:
        await add_customer(app)
        cases = [await open_case(app, f"problem {i}") for i in range(5)]
        originals = [await sent_mail(app, c.id) for c in cases]
    mails = []
    for i in range(500):
        if i % 2 == 0:
            mails.append(reply(originals[i % 5], sender=ANA, text=f"Update number {i}."))
        else:
            mails.append(new_mail(sender=f"stranger{i}@example.org", subject=f"New problem {i}", text="Help"))
    imap_account.append_many(mails)

    proc = await gateway_process(config, "run", "--once")
    await read_until(proc.stderr, b"inbound.decided", count=120)
    os.killpg(proc.pid, signal.SIGKILL)
    await proc.wait()

    async with open_world(settings, clock) as app:
        async with app.sessions() as session:
            decided = await session.scalar(
                select(func.count())
                .select_from(InboundMessage)
                .where(InboundMessage.disposition.is_not(None))
            )
        assert 120 <= decided < 500
        again = await gateway_process(config, "run", "--once")
        _, err = await asyncio.wait_for(again.communicate(), 300)
        assert again.returncode == 0, err.decode()[-2000:]
        async with app.sessions() as session:
            dispositions = dict(
                (
                    await session.execute(
                        select(InboundMessage.disposition, func.count()).group_by(InboundMessage.disposition)
                    )
                ).all()
            )
            replies = (
                await session.execute(
                    select(CaseEvent.inbound_message_id, func.count())
                    .where(CaseEvent.kind == "customer_reply")
                    .group_by(CaseEvent.inbound_message_id)
                )
            ).all()
            refusals = await session.scalar(
                select(func.count()).select_from(Outbox).where(Outbox.kind == "new_case_refused")
            )
    assert dispositions == {"applied": 250, "refused_new_case": 250}
    assert len(replies) == 250 and all(n == 1 for _, n in replies)
    assert refusals == 250
    assert imap_account.messages("INBOX") == []


async def test_run_stops_cleanly_on_sigterm(
    settings, imap_account, clock: FrozenClock, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "gateway.toml", settings)
    async with open_world(settings, clock) as app:
        await add_customer(app)
    imap_account.append(new_mail(sender="someone@example.org", subject="Hello", text="Open a case please"))
    proc = await gateway_process(config, "run")
    await read_until(proc.stderr, b"inbound.decided")
    proc.send_signal(signal.SIGTERM)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    assert out.decode().strip().endswith("stopped")
    assert imap_account.messages("INBOX") == []


@pytest.mark.slow
async def test_run_once_stops_cleanly_on_sigterm_after_the_batch_in_hand(
    settings, imap_account, clock: FrozenClock, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "gateway.toml", settings)
    async with open_world(settings, clock) as app:
        await add_customer(app)
    imap_account.append_many(
        [new_mail(sender=f"p{i}@example.org", subject=f"New problem {i}", text="Help") for i in range(500)]
    )
    proc = await gateway_process(config, "run", "--once")
    await read_until(proc.stderr, b"inbound.decided", count=60)
    proc.send_signal(signal.SIGTERM)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    assert out.decode().strip().endswith("stopped before the end")
    async with open_world(settings, clock) as app, app.sessions() as session:
        rows = (await session.execute(select(InboundMessage.disposition, InboundMessage.moved))).all()
    decided = [moved for disposition, moved in rows if disposition is not None]
    assert 60 <= len(decided) < 500 and all(decided)  # every decided message was moved
    assert len(imap_account.messages("INBOX")) == 500 - len(decided)


def test_inbound_and_quarantine_commands(settings, imap_account, tmp_path: Path, db_url: str) -> None:
    config = write_config(
        tmp_path / "gateway.toml",
        settings.model_copy(update={"limits": settings.limits.model_copy(update={"max_mime_depth": 2})}),
    )
    gw = Gateway(db_url)
    gw.env["GATEWAY_CONFIG"] = str(config)
    gw.ok("org", "add", "Acme Corp", "--tz", "UTC", "--country", "US")
    imap_account.append(DEEP_MAIL)
    imap_account.append(new_mail(sender="someone@example.org", subject="Hello", text="Open a case please"))
    assert "2 decided" in gw.ok("run", "--once").out
    assert gc.get_threshold()[0] == YOUNG_GENERATION_THRESHOLD  # run set the collector up for a daemon
    rows = gw.ok("inbound", "list", "--json").json()
    assert sorted(r["disposition"] for r in rows) == ["quarantined", "refused_new_case"]
    assert [
        r["disposition"] for r in gw.ok("inbound", "list", "--disposition", "quarantined", "--json").json()
    ] == ["quarantined"]
    [quarantined] = gw.ok("quarantine", "list", "--json").json()
    assert "depth" in quarantined["error"]
    shown = gw.ok("inbound", "show", str(quarantined["id"]), "--json").json()
    assert shown["trail"][0]["outcome"] == "quarantine" and shown["moved"] is True  # to Quarantine
    assert "trail:" in gw.ok("inbound", "show", str(quarantined["id"])).out
    assert (
        "is refused_new_case, not quarantined"
        in gw(
            "quarantine",
            "release",
            str(rows[0]["id"] if rows[0]["disposition"] != "quarantined" else rows[1]["id"]),
        ).err
    )
    assert "no inbound message 999" in gw("inbound", "show", "999").err
    # the operator raises the limit and releases the message: it is decided anew
    gw.env["GATEWAY_LIMITS__MAX_MIME_DEPTH"] = "10"
    def refusals() -> list[str]:
        return [m["to"] for m in gw.ok("outbox", "list", "--json").json() if m["kind"] == "new_case_refused"]

    assert refusals() == ["someone@example.org"]  # the other message's answer
    released = gw.ok("quarantine", "release", str(quarantined["id"]), "--json").json()
    assert released["disposition"] == "refused_new_case"
    assert released["trail"][-1]["detail"] == "new_case_refused: queued to someone@example.org"
    assert refusals() == ["someone@example.org"] * 2  # and its answer is in the outbox
    assert gw.ok("quarantine", "list", "--json").json() == []
