"""No orphans: when the daemon dies, even by SIGKILL, its parse workers, their fork server and
the resource tracker exit with it (a real daemon process, real workers)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from gateway.clock import FrozenClock
from testkit.mails import new_mail
from testkit.servers.smtp import RecordingSmtpServer
from testkit.world import add_customer, open_world, settings_for, write_config
from tests.integration.test_daemon_process import gateway_process, read_until
from tests.plugins.smtp import smtp_settings


def session_members(session: int) -> list[int]:
    """The processes of a session (the daemon was started as its leader)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # ended meanwhile
        if int(fields[3]) == session and fields[0] != "Z":
            found.append(int(entry))
    return found


async def gone(session: int, within: float) -> list[int]:
    """Wait (polling /proc) until the session has no live process, at most ``within`` seconds;
    the processes left."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (left := session_members(session)) and loop.time() < deadline:
        await asyncio.sleep(0.1)
    return left


async def test_sigkill_of_the_daemon_leaves_no_process_behind(
    db_url: str, imap_account, smtp_server_thread: RecordingSmtpServer, clock: FrozenClock, tmp_path: Path
) -> None:
    settings = settings_for(db_url, mailboxes=[imap_account.mailbox_settings()],
                            smtp=smtp_settings(smtp_server_thread), inbound={"parse_workers": 2})
    config = write_config(tmp_path / "gateway.toml", settings)
    async with open_world(settings, clock) as app:
        await add_customer(app)
    imap_account.append(new_mail(sender="someone@example.org", subject="Hello", text="Open a case"))
    daemon = await gateway_process(config, "run")
    await read_until(daemon.stderr, b"inbound.decided")  # the workers parsed it: they are up
    members = session_members(daemon.pid)
    assert len(members) >= 4, members  # the daemon, the fork server, two workers (and a tracker)
    daemon.send_signal(signal.SIGKILL)
    left = await gone(daemon.pid, within=5)
    for pid in left:  # do not leave them to the next test
        os.kill(pid, signal.SIGKILL)
    await daemon.communicate()  # an orphan would keep its pipes open: after the kill above
    assert left == []
