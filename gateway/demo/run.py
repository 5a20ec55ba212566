"""Runs the demo: servers up, database migrated, daemon started, story told, then the daemon
keeps running until SIGINT/SIGTERM; everything is stopped and a one-line summary printed."""

from __future__ import annotations

import asyncio
import imaplib
import logging
import os
import secrets
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TextIO

from sqlalchemy import func, select

from gateway import migrate
from gateway.app import App
from gateway.config import LoggingSettings
from gateway.daemon import Daemon
from gateway.db import create_engine
from gateway.demo import mails
from gateway.demo.servers import HOST, DemoError, ImapServer, SmtpSink
from gateway.demo.story import ANA, Say, Story, latest_case
from gateway.demo.workspace import CARE_ADDRESS, Ports, Workspace
from gateway.domain import OutboxStatus
from gateway.logs import configure_logging
from gateway.models import Case, InboundMessage, Outbox, OutboxRecipient


class Demo:
    def __init__(self, folder: Path, keep: bool, say: Say) -> None:
        self.ws = Workspace(folder)
        self.keep = keep
        self.say = say
        self.stopping = asyncio.Event()
        self.password = secrets.token_urlsafe(12)
        self.imap = ImapServer(CARE_ADDRESS, self.password, self.ws.imap_log)
        self.sink = SmtpSink(self.ws.outbox)

    async def run(self) -> int:
        """The exit status: 0 after a clean stop, 1 if the story or the daemon failed."""
        self.say(f"Starting the demo in {self.ws.display(self.ws.folder)}/ ...")
        kept = self.ws.prepare(self.keep)
        secret = (self.ws.kept_secret() if kept else None) or self.ws.new_secret()
        async with self._signals(), self._logging(), self._servers():
            settings = self.ws.write_settings(Ports(self.imap.port, self.sink.port), self.password, secret)
            engine = create_engine(settings.database.url)
            try:
                await migrate.upgrade(engine)
                app = App(settings, engine)
                self.sink.labeller = lambda message_id: _kind_of(app, message_id)
                status = await self._with_daemon(app, kept)
                self.say(await _summary(app))
                return status
            finally:
                await engine.dispose()

    async def _with_daemon(self, app: App, kept: bool) -> int:
        daemon = Daemon(app)
        running = asyncio.create_task(daemon.run_forever(), name="daemon")
        self._intro()
        try:
            number = await self._story_or_kept(app, kept, running)
            if number is None and self.stopping.is_set():
                return 0
            await self._how_to_talk(app, number)
            stopper = asyncio.create_task(self.stopping.wait())
            await asyncio.wait({stopper, running}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            return 0 if self.stopping.is_set() else self._daemon_failed(running)
        except DemoError as exc:
            self.say(f"The demo story got stuck: {exc}")
            self.say(f"The gateway's log is {self.ws.display(self.ws.gateway_log)}.")
            return 1
        finally:
            daemon.stop()
            await asyncio.gather(running, return_exceptions=True)

    async def _story_or_kept(self, app: App, kept: bool, running: asyncio.Task[None]) -> str | None:
        if kept:
            number, count = await latest_case(app)
            self.say(f"Kept the database of the last run ({count} case{'s' if count != 1 else ''}); "
                     "the story is not told again.")
            return number
        self.say("")
        story = asyncio.create_task(Story(app, self.sink, self._append, self.say, self.ws.display).run())
        stopper = asyncio.create_task(self.stopping.wait())
        await asyncio.wait({story, stopper, running}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not story.done():
            story.cancel()
            await asyncio.gather(story, return_exceptions=True)
            if not self.stopping.is_set():
                self._daemon_failed(running)
                raise DemoError("the daemon stopped")
            return None
        return story.result()

    def _daemon_failed(self, running: asyncio.Task[None]) -> int:
        error = running.exception() if running.done() and not running.cancelled() else None
        self.say(f"The gateway daemon stopped unexpectedly: {error}")
        return 1

    def _intro(self) -> None:
        ws, show = self.ws, self.ws.display
        self.say(f"Everything runs on {HOST} and lives in {show(ws.folder)}/:")
        self.say(f"  IMAP server  pymap, in memory, port {self.imap.port} (pid {self.imap.pid}): "
                 "the care mailbox the gateway watches")
        self.say(f"  SMTP server  port {self.sink.port}: files every mail the gateway sends in "
                 f"{show(ws.outbox)}/")
        self.say(f"  Database     {show(ws.database)}; settings {show(ws.toml)}; log {show(ws.gateway_log)}")
        self.say("  The gateway daemon is running: it watches the mailbox (IMAP IDLE) and sends its outbox.")

    async def _how_to_talk(self, app: App, number: str | None) -> None:
        show, me = self.ws.display, _self_command()
        self.say("")
        self.say("The gateway keeps running. Talk to it:")
        self.say(f"  IMAP {HOST} port {self.imap.port}, user {CARE_ADDRESS}, password {self.password}, "
                 "no TLS")
        if number is not None and await _write_try_me(app, number, self.ws.try_me):
            self.say(f"  Drop another reply from Ana into the mailbox (the mail is {show(self.ws.try_me)}; "
                     "edit it as you like):")
            self.say(f"    python3 -c \"import imaplib,pathlib; m=imaplib.IMAP4('{HOST}',{self.imap.port}); "
                     f"m.login('{CARE_ADDRESS}','{self.password}'); m.append('INBOX',None,None,"
                     f"pathlib.Path('{show(self.ws.try_me)}').read_bytes()); m.logout()\"")
            self.say("  Then see the effect on the case:")
            self.say(f"    {me} --config {show(self.ws.toml)} case show {number}")
        self.say(f"  Every mail received: {me} --config {show(self.ws.toml)} inbound list")
        self.say(f"  Mail the gateway sends is filed in {show(self.ws.outbox)}/")
        self.say("Press Ctrl-C to stop the demo.")

    async def _append(self, raw: bytes) -> None:
        await asyncio.to_thread(_imap_append, self.imap.port, CARE_ADDRESS, self.password, raw)

    @asynccontextmanager
    async def _servers(self) -> AsyncIterator[None]:
        try:
            await self.imap.start()
            await self.sink.start()
            self.ws.write_pids(demo=os.getpid(), imap=self.imap.pid)
            yield
        finally:
            await self.sink.stop()
            await self.imap.stop()
            self.ws.forget_pids()

    @asynccontextmanager
    async def _signals(self) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopping.set)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    @asynccontextmanager
    async def _logging(self) -> AsyncIterator[None]:
        """The daemon's log goes to a file: the terminal is for the story."""
        with self.ws.gateway_log.open("a", encoding="utf-8") as log:
            _log_to(log)
            yield


def _log_to(file: TextIO) -> None:
    configure_logging(LoggingSettings(level="info"), file)
    handler = logging.StreamHandler(file)
    handler.setLevel(logging.WARNING)
    logging.getLogger().addHandler(handler)


def _imap_append(port: int, user: str, password: str, raw: bytes) -> None:
    with imaplib.IMAP4(HOST, port, timeout=30) as client:
        client.login(user, password)
        client.append("INBOX", "", None, raw)
        client.logout()


async def _kind_of(app: App, message_id: str) -> str | None:
    async with app.sessions() as session:
        return await session.scalar(select(Outbox.kind).where(Outbox.message_id == message_id))


async def _write_try_me(app: App, number: str, path: Path) -> bool:
    """A reply from Ana to the newest mail of the case, ready to drop into the mailbox."""
    stmt = (select(Outbox.data).join(Case, Outbox.case_id == Case.id)
            .join(OutboxRecipient, OutboxRecipient.outbox_id == Outbox.id)
            .where(Case.number == number, OutboxRecipient.address == ANA)
            .order_by(Outbox.id.desc()).limit(1))
    async with app.sessions() as session:
        data = await session.scalar(stmt)
    if data is None:
        return False
    raw = mails.reply(data, sender=ANA, to=CARE_ADDRESS,
                      text="One more thing: it only happens on calls to mobile numbers.")
    await asyncio.to_thread(path.write_bytes, raw)
    return True


async def _summary(app: App) -> str:
    async with app.sessions() as session:
        count = await session.scalar(select(func.count()).select_from(Case)) or 0
        received = await session.scalar(select(func.count()).select_from(InboundMessage)) or 0
        sent = await session.scalar(
            select(func.count()).select_from(Outbox).where(Outbox.status == OutboxStatus.SENT)) or 0
    return (f"demo stopped: {_n(count, 'case')}, {_n(received, 'mail')} received, "
            f"{_n(sent, 'mail')} sent")


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _self_command() -> str:
    """How the user started us, so the commands we print work as they are."""
    program = Path(sys.argv[0]).absolute()
    if program.name == "case-gateway":
        found = shutil.which("case-gateway")
        if found is not None and Path(found).absolute() == program:
            return "case-gateway"
        return Workspace.display(program)
    return f"{Workspace.display(Path(sys.executable))} -m gateway"
