"""``case-gateway demo`` as a newcomer runs it: a real process, its narration on stdout, the
files it leaves, the CLI against its database while it runs, then Ctrl-C (or SIGTERM)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READY = "Press Ctrl-C to stop the demo."
STORY_SECONDS = 60.0
STOP_SECONDS = 30.0


@pytest.fixture(autouse=True)
def _demo_extra() -> None:
    missing = [m for m in ("pymap", "aiosmtpd") if importlib.util.find_spec(m) is None]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the demo extra: {missing}")
        pytest.skip(f"the demo needs the demo extra: {missing}")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@dataclass
class DemoRun:
    folder: Path
    proc: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)

    @classmethod
    async def start(cls, folder: Path, *flags: str) -> DemoRun:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "demo", "--folder", str(folder), *flags,
            cwd=folder.parent, env=_env(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        return cls(folder, proc)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    async def until_ready(self) -> str:
        """The narration up to the how-to-talk part's last line."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(STORY_SECONDS):
            while not self.lines or self.lines[-1].strip() != READY:
                line = (await self.proc.stdout.readline()).decode()
                if not line:
                    err = await self.proc.stderr.read() if self.proc.stderr else b""
                    raise AssertionError(f"demo ended early:\n{self.text}\n{err.decode()}")
                self.lines.append(line)
        return self.text

    def pids(self) -> dict[str, int]:
        pairs = (line.split() for line in (self.folder / "demo.pids").read_text().splitlines())
        return {name: int(pid) for name, pid in pairs}

    async def stop(self, sig: signal.Signals = signal.SIGINT) -> tuple[int, str]:
        self.proc.send_signal(sig)
        async with asyncio.timeout(STOP_SECONDS):
            out, err = await self.proc.communicate()
        assert self.proc.returncode is not None
        return self.proc.returncode, out.decode() + err.decode()

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        pids = (self.folder / "demo.pids")
        if pids.exists():
            for name, pid in self.pids().items():
                if name != "demo" and _alive(pid):
                    os.killpg(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _gateway(folder: Path, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "--config", str(folder / "gateway.toml"), *args,
        cwd=folder.parent, env=_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), STOP_SECONDS)
    assert proc.returncode == 0, err.decode()
    return out.decode()


def _filed(text: str) -> list[Path]:
    return [Path(m) for m in re.findall(r"^\s+-> (\S+\.eml)$", text, re.MULTILINE)]


async def test_demo_tells_the_story_and_stops_cleanly(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    demo = await DemoRun.start(folder)
    try:
        story = await demo.until_ready()
        number = re.search(r"opened case (\d{8})", story)
        assert number, story
        number_ = number.group(1)
        for step in ("1. Customer", "2. Care asks", "3. Ana answers", "4. A stranger",
                     "5. Ana's out-of-office", "6. bob@acme.example"):
            assert step in story, story
        assert 'the case is back to "in progress"' in story
        assert "| Here are two of them: 7f3a-1192 and 7f3a-1207." in story
        assert "auto_reply_ignored; nothing was sent" in story
        assert "nothing about the case is revealed" in story

        filed = [tmp_path / p for p in _filed(story)]
        assert [p.name for p in filed] == ["0001-case_received.eml", "0002-info_requested.eml",
                                           "0003-new_case_refused.eml", "0004-unauthorized_sender.eml"]
        assert sorted(p.name for p in (folder / "outbox-mail").iterdir()) == [p.name for p in filed]
        for case_mail in filed[:2]:
            assert f"REF:{number_}.".encode() in case_mail.read_bytes()
        refusal = filed[3].read_bytes()
        assert number_.encode() not in refusal and b"REF:" not in refusal

        pids = demo.pids()
        assert pids["demo"] == demo.proc.pid and _alive(pids["imap"])

        shown = json.loads(await _gateway(folder, "case", "show", number_, "--json"))
        assert shown["status"] == "in_progress"
        replies = [e for e in shown["timeline"] if e["kind"] == "customer_reply"]
        assert [e["body"] for e in replies] == [
            "Here are two of them: 7f3a-1192 and 7f3a-1207.\nBoth dropped after exactly 30 seconds."
        ]

        code, rest = await demo.stop(signal.SIGINT)
        assert code == 0, rest
        assert "demo stopped: 1 case, 4 mails received, 4 mails sent" in rest
        assert not _alive(pids["imap"])
        assert not (folder / "demo.pids").exists()
    finally:
        await demo.kill()


async def test_a_second_run_starts_fresh_and_keep_continues(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    for _ in range(2):
        demo = await DemoRun.start(folder)
        try:
            story = await demo.until_ready()
            assert "opened case 00000001" in story
            assert len(list((folder / "outbox-mail").iterdir())) == 4
            code, rest = await demo.stop(signal.SIGTERM)
            assert code == 0, rest
            assert "demo stopped: 1 case, 4 mails received, 4 mails sent" in rest
        finally:
            await demo.kill()

    kept = await DemoRun.start(folder, "--keep")
    try:
        story = await kept.until_ready()
        assert "Kept the database of the last run (1 case)" in story
        assert "case show 00000001" in story
        code, rest = await kept.stop()
        assert code == 0, rest
        assert "demo stopped: 1 case, 4 mails received, 4 mails sent" in rest
    finally:
        await kept.kill()


async def test_demo_imap_server_takes_any_generated_password(tmp_path: Path) -> None:
    """Generated passwords may start with "-"; pymap must not read them as an option."""
    import imaplib

    from gateway.demo.servers import HOST, ImapServer

    server = ImapServer("care@cloud.example", "-dash-first-password", tmp_path / "imap.log")
    await server.start(attempts=1)
    try:
        client = imaplib.IMAP4(HOST, server.port)
        assert client.login("care@cloud.example", "-dash-first-password")[0] == "OK"
        client.logout()
    finally:
        await server.stop()
