"""The narrated story: care opens a case, asks for information, and the gateway meets the mail
a real care mailbox gets (a customer's reply, a stranger, an out-of-office, a contact who may
not update cases). Every step waits on the real event: the SMTP sink filing a mail, or the
inbound message's disposition in the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from gateway import cases, directory
from gateway.app import App
from gateway.demo import mails
from gateway.demo.servers import DemoError, Filed, SmtpSink
from gateway.demo.workspace import CARE_ADDRESS
from gateway.domain import Disposition, EventKind
from gateway.models import Case, InboundMessage, Outbox

ORG = "Acme Corp"
ANA = "ana@acme.example"
BOB = "bob@acme.example"
STRANGER = "sam@elsewhere.example"
DECIDE_SECONDS = 30.0

Say = Callable[[str], None]
Append = Callable[[bytes], Awaitable[None]]


@dataclass
class Story:
    app: App
    sink: SmtpSink
    append: Append
    """Deliver a raw mail into the gateway's IMAP inbox."""
    say: Say
    show: Callable[[Path], str]
    number: str = ""

    async def run(self) -> str:
        """Tell the whole story; returns the case number."""
        await self.open_case()
        info = await self.request_info()
        await self.customer_replies(info)
        await self.stranger_writes()
        await self.out_of_office(info)
        await self.undesignated_replies(info)
        return self.number

    async def open_case(self) -> None:
        mark = len(self.sink.filed)
        async with self.app.sessions.begin() as session:
            clock = self.app.clock
            await directory.add_organisation(session, clock, name=ORG, timezone="Europe/Berlin",
                                             country="DE", subdivision="BY", total_agents=120)
            await directory.add_contact(session, clock, email=ANA, organisation=ORG, name="Ana Alves")
            await directory.add_contact(session, clock, email=BOB, organisation=ORG, name="Bob Brown",
                                        designated=False)
            care = await self.app.care(session)
            case = await care.open_case(session, organisation=ORG, contact_email=ANA,
                                        subject="Calls drop after 30 seconds", severity="high",
                                        description="Ana phoned: calls drop after 30 seconds.")
            assert case.number is not None
            self.number = case.number
        self.say(f"1. Customer {ORG} has a designated contact, {ANA} ({BOB} is a contact too, "
                 "but not designated).")
        self.say(f"   Care opened case {self.number} for Ana by phone. The gateway sent the acknowledgement:")
        self._filed(await self._mail(mark, "case_received", ANA))

    async def request_info(self) -> Filed:
        mark = len(self.sink.filed)
        async with self.app.sessions.begin() as session:
            care = await self.app.care(session)
            await care.request_info(session, self.number,
                                    "Could you send us the IDs of two calls that dropped?")
        self.say(f"2. Care asks Ana for information on case {self.number} (status: awaiting info):")
        filed = await self._mail(mark, "info_requested", ANA)
        self._filed(filed)
        return filed

    async def customer_replies(self, info: Filed) -> None:
        text = "Here are two of them: 7f3a-1192 and 7f3a-1207.\nBoth dropped after exactly 30 seconds."
        raw = mails.reply(info.data, sender=ANA, to=CARE_ADDRESS, text=text)
        self.say("3. Ana answers from her mail program (\"RE:\", the old mail quoted under her text).")
        row = await self._deliver(raw)
        async with self.app.sessions() as session:
            case = await cases.get_case(session, self.number)
            events = await cases.timeline(session, case)
        reply = next((e for e in reversed(events) if e.kind == EventKind.CUSTOMER_REPLY), None)
        if row.disposition != Disposition.APPLIED or reply is None:
            raise DemoError(f"Ana's reply was not applied ({row.disposition}): {row.trail}")
        self.say(f"   The gateway matched it to case {self.number} by its reference; "
                 f"the case is back to \"{case.status.replace('_', ' ')}\".")
        self.say("   The case timeline holds only her new text, without the quoted mail:")
        for line in (reply.body or "").splitlines():
            self.say(f"     | {line}")

    async def stranger_writes(self) -> None:
        mark = len(self.sink.filed)
        raw = mails.new_mail(sender=STRANGER, to=CARE_ADDRESS, subject="Please open a case: login broken",
                             text="Hello, our agents cannot log in since this morning. Please help!")
        self.say(f"4. A stranger, {STRANGER}, writes to open a new case by email.")
        row = await self._deliver(raw)
        self._expect(row, Disposition.REFUSED_NEW_CASE)
        self.say("   Cases are never opened from email: refused, and the sender was told politely how "
                 "to open one:")
        self._filed(await self._mail(mark, "new_case_refused", STRANGER))

    async def out_of_office(self, info: Filed) -> None:
        raw = mails.out_of_office(info.data, sender=ANA, to=CARE_ADDRESS)
        self.say("5. Ana's out-of-office answers one of the gateway's mails.")
        row = await self._deliver(raw)
        self._expect(row, Disposition.AUTO_REPLY_IGNORED)
        async with self.app.sessions() as session:
            answers = await session.scalar(
                select(func.count()).select_from(Outbox).where(Outbox.inbound_message_id == row.id))
        if answers:
            raise DemoError("the gateway answered an out-of-office mail")
        self.say(f"   Recognised as an automatic reply: {row.disposition}; nothing was sent (no mail loop).")

    async def undesignated_replies(self, info: Filed) -> None:
        mark = len(self.sink.filed)
        raw = mails.reply(info.data, sender=BOB, to=CARE_ADDRESS, text="Any news on this?")
        self.say(f"6. {BOB}, who is not a designated contact, replies to the case mail.")
        row = await self._deliver(raw)
        self._expect(row, Disposition.REFUSED_UNAUTHORIZED)
        filed = await self._mail(mark, "unauthorized_sender", BOB)
        self.say("   Refused: only designated contacts may update a case. The answer was filed:")
        self._filed(filed)
        leaked = self.number in filed.data.decode("ascii", "replace")
        self.say("   It names no case number and no case subject: nothing about the case is revealed."
                 if not leaked else f"   WARNING: the refusal mentions case {self.number}.")

    async def _deliver(self, raw: bytes) -> InboundMessage:
        await self.append(raw)
        message_id = mails.header(raw, "Message-ID")
        return await decided(self.app, message_id)

    async def _mail(self, mark: int, kind: str, to: str) -> Filed:
        return await self.sink.wait_for(lambda f: f.kind == kind and to in f.to, after=mark)

    def _filed(self, filed: Filed) -> None:
        self.say(f"   \"{filed.subject}\"")
        self.say(f"   -> {self.show(filed.path)}")

    @staticmethod
    def _expect(row: InboundMessage, disposition: Disposition) -> None:
        if row.disposition != disposition:
            raise DemoError(f"expected {disposition}, the gateway decided {row.disposition}: {row.trail}")


async def decided(app: App, message_id: str, within: float = DECIDE_SECONDS) -> InboundMessage:
    """The inbound message once the daemon has decided it (polls the database briefly)."""
    stmt = select(InboundMessage).where(InboundMessage.message_id == message_id,
                                        InboundMessage.disposition.is_not(None))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        async with app.sessions() as session:
            row = (await session.scalars(stmt.order_by(InboundMessage.id.desc()).limit(1))).first()
        if row is not None:
            return row
        if loop.time() > deadline:
            raise DemoError(f"the gateway did not decide mail {message_id} within {within:.0f} s")
        await asyncio.sleep(0.1)


async def latest_case(app: App) -> tuple[str | None, int]:
    """The newest case number and how many cases there are (for ``--keep``)."""
    async with app.sessions() as session:
        count = await session.scalar(select(func.count()).select_from(Case)) or 0
        number = await session.scalar(select(Case.number).order_by(Case.id.desc()).limit(1))
    return number, count
