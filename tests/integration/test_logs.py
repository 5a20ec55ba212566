"""The daemon's logs as an operator follows them: JSON lines with ``[logging] format = "json"``,
each bound to what it is about; a quarantine and a permanent send failure said at warning."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from testkit.mails import DEEP_MAIL, new_mail
from testkit.servers.smtp import RecordingSmtpServer
from testkit.world import settings_for, write_config
from tests.integration.test_daemon_process import gateway_process
from tests.plugins.smtp import smtp_settings


async def test_json_lines(db_url: str, imap_account, smtp_server_thread: RecordingSmtpServer,
                          tmp_path: Path) -> None:
    settings = settings_for(
        db_url, mailboxes=[imap_account.mailbox_settings()], smtp=smtp_settings(smtp_server_thread),
        limits={"max_mime_depth": 2}, logging={"format": "json"},
    )
    imap_account.append(new_mail(sender="stranger@example.org", subject="Hello", text="Open a case"))
    imap_account.append(DEEP_MAIL)
    smtp_server_thread.refuse_recipient("stranger@example.org", "550 5.1.1 no such user")
    proc = await gateway_process(write_config(tmp_path / "gateway.toml", settings), "run", "--once")
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()[-2000:]

    lines = [json.loads(line) for line in err.decode().splitlines()]  # every line is one JSON object
    assert all({"event", "level", "timestamp"} <= line.keys() for line in lines)
    decided = [line for line in lines if line["event"] == "inbound.decided"]
    assert sorted(line["disposition"] for line in decided) == ["quarantined", "refused_new_case"]
    assert all(line["mailbox"] == "test" and isinstance(line["inbound_id"], int) for line in decided)
    [quarantined] = [line for line in lines if line["event"] == "inbound.quarantined"]
    assert quarantined["level"] == "warning" and "depth" in quarantined["reason"]
    [failed] = [line for line in lines if line["event"] == "outbox.recipient_failed"]
    assert failed["level"] == "warning" and failed["recipient"] == "stranger@example.org"
    assert failed["code"] == 550 and isinstance(failed["outbox_id"], int)
    assert b"1 failed" in out
