"""The demo folder: what is in it, starting fresh or keeping the last run, and the
``gateway.toml`` that both the demo and the user's own ``case-gateway`` commands read.

Only files this module names are ever deleted, so ``--folder .`` cannot wipe anything else.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import tomllib
from dataclasses import dataclass
from pathlib import Path

from gateway.config import Settings, load_settings
from gateway.demo.servers import HOST, DemoError
from gateway.inbound.loop.workers import process_alive

CARE_ADDRESS = "care@cloud.example"
MAILBOX_NAME = "care"

_TOML = """\
# Settings of the case-gateway demo, written by `case-gateway demo` on every start.
# Use them while the demo runs, e.g.:
#   case-gateway --config {toml} case show NUMBER
#
# The IMAP password and the reference secret are written here in clear text. That is fine
# for this throw-away demo on 127.0.0.1 only; a real deployment keeps secrets in the
# environment (GATEWAY_MAILBOXES__CARE__PASSWORD, GATEWAY_REFERENCE__SECRET).

[database]
url = {db_url}

[smtp]            # the demo's SMTP sink: every mail is filed in {outbox}
host = "{host}"
port = {smtp_port}
tls = "none"

[[mailboxes]]     # the demo's IMAP server (pymap, in memory)
name = "{mailbox}"
host = "{host}"
port = {imap_port}
tls = "none"
username = {user}
password = {password}
poll_seconds = 30

[mail]
from_address = {care}
reply_to = {care}
escalation_address = "care-management@cloud.example"

[reference]
secret = {secret}

[outbox]
poll_seconds = 0.25   # send within a moment (a real deployment waits longer between looks)

[inbound]
parse_workers = 0     # parse in a thread: no extra processes for the demo

[logging]
level = "info"
"""


@dataclass(frozen=True)
class Ports:
    imap: int
    smtp: int


class Workspace:
    def __init__(self, folder: Path) -> None:
        self.folder = folder.resolve()
        self.database = self.folder / "gateway.db"
        self.toml = self.folder / "gateway.toml"
        self.outbox = self.folder / "outbox-mail"
        self.pids = self.folder / "demo.pids"
        self.gateway_log = self.folder / "gateway.log"
        self.imap_log = self.folder / "imap-server.log"
        self.try_me = self.folder / "try-me.eml"

    def prepare(self, keep: bool) -> bool:
        """Make the folder ready; True when the last run's database is kept."""
        self.folder.mkdir(parents=True, exist_ok=True)
        running = self.running_demo()
        if running is not None:
            raise DemoError(f"a demo is already running in {self.folder} (pid {running}); "
                            "stop it first or choose another --folder")
        self._end_orphan()
        if keep and self.database.exists():
            return True
        for suffix in ("", "-wal", "-shm", "-journal"):
            self.database.with_name(self.database.name + suffix).unlink(missing_ok=True)
        for file in (self.toml, self.pids, self.gateway_log, self.imap_log, self.try_me):
            file.unlink(missing_ok=True)
        if self.outbox.is_dir():
            shutil.rmtree(self.outbox)
        return False

    def running_demo(self) -> int | None:
        """The pid of a demo still running in this folder, from its pid file."""
        pid = self._recorded().get("demo")
        return pid if pid is not None and pid != os.getpid() and process_alive(pid) else None

    def _end_orphan(self) -> None:
        """A demo killed with SIGKILL leaves its IMAP server behind: end it (if it is still pymap)."""
        pid = self._recorded().get("imap")
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if pid else b""
        except OSError:
            return
        if pid and b"pymap" in cmdline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)

    def _recorded(self) -> dict[str, int]:
        try:
            lines = self.pids.read_text(encoding="utf-8").splitlines()
        except OSError:
            return {}
        pairs = (line.split() for line in lines)
        return {p[0]: int(p[1]) for p in pairs if len(p) == 2 and p[1].isdigit()}

    def write_pids(self, **pids: int) -> None:
        """One ``name pid`` line per process (``demo`` first), for the curious and the tests."""
        self.pids.write_text("".join(f"{name} {pid}\n" for name, pid in pids.items()), encoding="utf-8")

    def forget_pids(self) -> None:
        self.pids.unlink(missing_ok=True)

    def kept_secret(self) -> str | None:
        """The reference secret of the last run, so its tokens keep matching (``--keep``)."""
        with contextlib.suppress(OSError, tomllib.TOMLDecodeError):
            data = tomllib.loads(self.toml.read_text(encoding="utf-8"))
            secret = data.get("reference", {}).get("secret")
            if isinstance(secret, str) and len(secret) >= 16:
                return secret
        return None

    def write_settings(self, ports: Ports, password: str, secret: str) -> Settings:
        """Write ``gateway.toml`` and read it back: the demo runs on exactly what the user gets."""
        text = _TOML.format(
            toml=self.display(self.toml), db_url=_q(f"sqlite+aiosqlite:///{self.database}"),
            outbox=self.display(self.outbox), host=HOST, smtp_port=ports.smtp, imap_port=ports.imap,
            mailbox=MAILBOX_NAME, user=_q(CARE_ADDRESS), password=_q(password), care=_q(CARE_ADDRESS),
            secret=_q(secret),
        )
        self.toml.write_text(text, encoding="utf-8")
        return load_settings(self.toml, environ={})

    @staticmethod
    def new_secret() -> str:
        return secrets.token_urlsafe(32)

    @staticmethod
    def display(path: Path) -> str:
        """``path`` relative to the working folder when it is inside it (shorter to read)."""
        with contextlib.suppress(ValueError):
            return str(path.relative_to(Path.cwd()))
        return str(path)


def _q(value: str) -> str:
    """A TOML basic string (JSON's escapes are valid TOML)."""
    return json.dumps(value)
