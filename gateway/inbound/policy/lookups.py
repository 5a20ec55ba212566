"""What the stages ask the database, answered for a group of messages at once.

A group of messages is decided in one transaction. Asked one message at a time, the stages
would make about eight round trips per message (dedupe, header match, case, contact, rate
limit, answered already, ...); :meth:`Lookups.prefetch` asks each question once for the whole
group, with ``IN`` lists, and the stages read the answers from here. A question about a key
the prefetch did not cover (a message decided alone, a quarantine release) is asked then,
so the answers never depend on whether a prefetch ran.

Effects of the group's own earlier messages that a later message must see are kept here as
they happen, since the group is flushed only at its end: a decided message is a possible
original for the dedupe of the next (:meth:`remember`), and an automatic answer counts
against the sender's daily limit at once (:meth:`count_answer`). Rate-limit counts are taken
at the start of the group (its messages are decided within a second or so).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case as when
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import among, chunks
from gateway.directory import normalise_email
from gateway.errors import InvalidValue
from gateway.inbound.mail.bounce import BounceReport
from gateway.inbound.mail.parsed import ParsedMail
from gateway.inbound.mail.replies.sent import SentText, combined, known_sent_text, sent_text_of
from gateway.inbound.policy.record import DecidedRow
from gateway.models import Case, Contact, InboundMessage, Outbox, OutboxRecipient
from gateway.notices.replies import replied_notice
from gateway.outbound.kinds import MailGroup, MailKind
from gateway.threading.matcher import TokenScan, referenced_ids

AUTOMATIC_KINDS = [k.value for k in MailKind if k.spec.group is MailGroup.REPLY]
"""Kinds that count against a sender's daily limit of automatic answers."""
RATE_WINDOW = timedelta(hours=24)
HOURLY_WINDOW = timedelta(hours=1)
RECENT_SENT = 10
"""Our latest mails on a case that a reply naming none of them is compared with."""


def bounced_ids(report: BounceReport | None) -> list[str]:
    """The Message-IDs of the mail a bounce reports on (at most 20)."""
    if report is None:
        return []
    return [i for i in report.original_message_ids if i][:20]


def _normalised(address: str) -> str | None:
    try:
        return normalise_email(address) if address else None
    except InvalidValue:
        return None  # no contact has it


@dataclass(frozen=True)
class Expected:
    """One message of a group, as far as the prefetch needs it."""

    row_id: int
    mail: ParsedMail | None
    tokens: TokenScan | None = None
    quotes_maybe_ours: bool = False
    """Its new text waits for a comparison with the mail we sent (:meth:`Lookups.sent_text`)."""


class Lookups:
    def __init__(self, session: AsyncSession, now: datetime) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name
        self.now = now
        self.since = now - RATE_WINDOW
        self._this_hour: int | None = None
        self._outbox_keys: dict[str, bool] = {}
        self._originals: dict[tuple[str, str], int] = {}
        self._originals_known: set[str] = set()
        self._numbers: dict[str, set[str]] = {}
        self._sent: dict[str, int | None] = {}  # our Message-ID -> its case id
        self._cases: dict[str, Case | None] = {}
        self._contacts: dict[tuple[int, str], Contact | None] = {}
        self._answers: dict[str, int] = {}
        self._answered: set[str] = set()
        self._answered_rows: set[int] = set()
        self._outbox: dict[str, Outbox | None] = {}

    @classmethod
    async def prefetch(cls, session: AsyncSession, now: datetime, group: Sequence[Expected]) -> Lookups:
        lookups = cls(session, now)
        mails = [e.mail for e in group if e.mail is not None]
        await lookups._load_originals([m.message_id[:998] for m in mails if m.message_id])
        await lookups._load_numbers(i for m in mails for i in referenced_ids([*m.in_reply_to, *m.references]))
        numbers = set().union(*(lookups._numbers.values() or [set()]))
        for e in group:
            if e.tokens is not None:
                numbers |= e.tokens.subject | e.tokens.body
        await lookups._load_cases(numbers)
        organisations = {c.organisation_id for c in lookups._cases.values() if c is not None}
        senders = {a for m in mails if (a := _normalised(m.from_address))}
        await lookups._load_contacts(organisations, senders)
        await lookups._load_answer_counts(senders)
        await lookups._load_answered([e.row_id for e in group])
        await lookups._load_outbox(i for m in mails for i in bounced_ids(m.bounce))
        quoting = [e.mail for e in group if e.quotes_maybe_ours and e.mail is not None]
        await lookups._load_sent_texts(i for m in quoting for i in lookups._named_sent_mail(m))
        return lookups

    # --- dedupe ------------------------------------------------------------------------

    async def original_of(self, message_id: str, content_hash: str, row_id: int) -> int | None:
        """A decided inbound message with this Message-ID and content, other than ``row_id``."""
        if message_id not in self._originals_known:
            await self._load_originals([message_id])
        found = self._originals.get((message_id, content_hash))
        return found if found != row_id else None

    def remember(self, row: DecidedRow) -> None:
        """``row`` was just decided: later messages of the group may be its duplicates."""
        if row.message_id is not None and row.disposition is not None:
            self._originals.setdefault((row.message_id, row.content_hash), row.id)

    async def _load_originals(self, message_ids: Iterable[str]) -> None:
        ids = [i for i in dict.fromkeys(message_ids) if i not in self._originals_known]
        for chunk in chunks(ids):
            rows = await self.session.execute(
                select(InboundMessage.message_id, InboundMessage.content_hash, InboundMessage.id)
                .where(among(InboundMessage.message_id, chunk, self.dialect),
                       InboundMessage.disposition.is_not(None))
                .order_by(InboundMessage.id)
            )
            for message_id, content_hash, row_id in rows.all():
                self._originals.setdefault((str(message_id), content_hash), row_id)
        self._originals_known.update(ids)

    # --- match -------------------------------------------------------------------------

    async def numbers_by_message_ids(self, message_ids: Sequence[str]) -> set[str]:
        """The case numbers of the outbound mail these Message-IDs name."""
        ids = referenced_ids(message_ids)
        await self._load_numbers(ids)
        return set().union(*(self._numbers[i] for i in ids)) if ids else set()

    async def _load_numbers(self, message_ids: Iterable[str]) -> None:
        ids = [i for i in dict.fromkeys(message_ids) if i not in self._numbers]
        for chunk in chunks(ids):
            rows = await self.session.execute(
                select(Outbox.message_id, Case.number, Outbox.case_id)
                .join(Case, Outbox.case_id == Case.id)
                .where(among(Outbox.message_id, chunk, self.dialect))
            )
            for i in chunk:
                self._numbers[i] = set()
            for message_id, number, case_id in rows.all():
                self._sent[message_id] = case_id
                if number is not None:
                    self._numbers[message_id].add(number)

    async def replied_notice(self, subject: str, message_ids: Sequence[str]) -> str | None:
        """The reference of the notice a mail without a case reference answers (asked only of
        such mail, so not prefetched): :func:`gateway.notices.replies.replied_notice`."""
        return await replied_notice(self.session, subject, message_ids)

    async def case(self, number: str) -> Case | None:
        if number not in self._cases:
            await self._load_cases([number])
        return self._cases[number]

    async def _load_cases(self, numbers: Iterable[str]) -> None:
        wanted = [n for n in dict.fromkeys(numbers) if n not in self._cases]
        for chunk in chunks(wanted):
            found = await self.session.execute(select(Case).where(among(Case.number, chunk, self.dialect)))
            for case in found.unique().scalars():
                assert case.number is not None
                self._cases[case.number] = case
        for number in wanted:
            self._cases.setdefault(number, None)

    # --- authorise ---------------------------------------------------------------------

    async def contact(self, organisation_id: int, email: str) -> Contact | None:
        """The contact with this address in this organisation (None for no such contact, and
        for a sender address that no contact could have)."""
        address = _normalised(email)
        if address is None:
            return None
        key = (organisation_id, address)
        if key not in self._contacts:
            await self._load_contacts([organisation_id], [key[1]])
        return self._contacts[key]

    async def _load_contacts(self, organisations: Iterable[int], emails: Iterable[str]) -> None:
        pairs = [(o, e) for o in set(organisations) for e in set(emails) if (o, e) not in self._contacts]
        wanted = {e for _, e in pairs}
        for chunk in chunks(sorted(wanted)):
            found = (await self.session.execute(
                select(Contact).where(among(Contact.email, chunk, self.dialect),
                                      Contact.organisation_id.in_({o for o, _ in pairs}))
            )).unique().scalars()
            for contact in found:
                self._contacts[(contact.organisation_id, contact.email)] = contact
        for pair in pairs:
            self._contacts.setdefault(pair, None)

    # --- respond -----------------------------------------------------------------------

    async def answers_today(self, address: str) -> int:
        """Automatic answers queued to ``address`` in the last 24 hours, this group's included."""
        if address not in self._answers:
            await self._load_answer_counts([address])
        return self._answers[address]

    def count_answer(self, kind: MailKind, address: str) -> None:
        if kind.value in AUTOMATIC_KINDS:
            self._answers[address] = self._answers.get(address, 0) + 1
            if self._this_hour is not None:
                self._this_hour += 1

    async def answers_this_hour(self) -> int:
        """Automatic answers queued to anybody in the last hour, this group's included (one
        range of the index on kind and creation time per kind)."""
        if self._this_hour is None:
            self._this_hour = int(await self.session.scalar(
                select(func.count()).select_from(Outbox)
                .where(Outbox.kind.in_(AUTOMATIC_KINDS), Outbox.created_at > self.now - HOURLY_WINDOW)
            ) or 0)
        return self._this_hour

    async def queued(self, dedupe_key: str) -> bool:
        """Whether a mail with this dedupe key is in the outbox (or queued by this group)."""
        if dedupe_key not in self._outbox_keys:
            found = await self.session.scalar(select(Outbox.id).where(Outbox.dedupe_key == dedupe_key))
            self._outbox_keys[dedupe_key] = found is not None
        return self._outbox_keys[dedupe_key]

    def remember_queued(self, dedupe_key: str) -> None:
        self._outbox_keys[dedupe_key] = True

    async def _load_answer_counts(self, addresses: Iterable[str]) -> None:
        wanted = [a for a in dict.fromkeys(addresses) if a and a not in self._answers]
        for chunk in chunks(wanted):
            # The kind is counted, not filtered: as a condition, SQLite (which has no table
            # statistics unless told to gather them) drove the query from the index on the
            # kind, reading every automatic answer ever sent for each group of messages.
            automatic = func.count(when((Outbox.kind.in_(AUTOMATIC_KINDS), 1)))
            rows = await self.session.execute(
                select(OutboxRecipient.address, automatic)
                .join(Outbox)
                .where(among(OutboxRecipient.address, chunk, self.dialect), Outbox.created_at > self.since)
                .group_by(OutboxRecipient.address)
            )
            self._answers.update({address: count for address, count in rows.all()})
        for address in wanted:
            self._answers.setdefault(address, 0)

    async def answered(self, row_id: int, dedupe_key: str) -> bool:
        """Whether this answer to inbound message ``row_id`` is in the outbox already."""
        if row_id not in self._answered_rows:
            await self._load_answered([row_id])
        return dedupe_key in self._answered

    async def _load_answered(self, row_ids: Iterable[int]) -> None:
        wanted = [r for r in dict.fromkeys(row_ids) if r not in self._answered_rows]
        for chunk in chunks(wanted):
            keys = select(Outbox.dedupe_key).where(among(Outbox.inbound_message_id, chunk, self.dialect))
            self._answered.update(await self.session.scalars(keys))
        self._answered_rows.update(wanted)

    # --- bounces -----------------------------------------------------------------------

    async def outbound(self, message_ids: Sequence[str]) -> list[Outbox]:
        """Our outbound messages with these Message-IDs (with their recipients), oldest first."""
        await self._load_outbox(message_ids)
        found = {id(o): o for i in message_ids if (o := self._outbox.get(i)) is not None}
        return sorted(found.values(), key=lambda o: o.id)

    async def _load_outbox(self, message_ids: Iterable[str]) -> None:
        wanted = [i for i in dict.fromkeys(message_ids) if i not in self._outbox]
        rows: list[Outbox] = []
        for chunk in chunks(wanted):
            found = select(Outbox).where(among(Outbox.message_id, chunk, self.dialect))
            rows.extend(await self.session.scalars(found))
        for row in rows:
            self._outbox[row.message_id] = row
        for i in wanted:
            self._outbox.setdefault(i, None)
        case_ids = {r.case_id for r in rows if r.case_id is not None}
        for ids in chunks(case_ids):  # into the session's identity map, for the timeline
            cases = select(Case).where(among(Case.id, ids, self.dialect))
            (await self.session.execute(cases)).unique().scalars().all()

    # --- apply -------------------------------------------------------------------------

    async def sent_text(self, case_id: int, message_ids: Sequence[str]) -> SentText | None:
        """The words of what we sent on the case that a reply may quote: the mails its
        In-Reply-To/References name, or else our latest ones (None: we sent nothing)."""
        ids = referenced_ids(message_ids)
        await self._load_numbers(ids)
        named = [i for i in ids if i in self._sent and self._sent[i] == case_id]
        if not named:
            latest = select(Outbox.message_id).where(Outbox.case_id == case_id).order_by(Outbox.id.desc())
            named = list(await self.session.scalars(latest.limit(RECENT_SENT)))
        await self._load_sent_texts(named)
        texts = [t for i in dict.fromkeys(named) if (t := known_sent_text(i)) is not None]
        return combined(texts) if texts else None

    def _named_sent_mail(self, mail: ParsedMail) -> list[str]:
        """The Message-IDs of our case mail that a message's In-Reply-To/References name."""
        return [i for i in referenced_ids([*mail.in_reply_to, *mail.references]) if i in self._sent]

    async def _load_sent_texts(self, message_ids: Iterable[str]) -> None:
        """Read (once per process: sent mail never changes) the words of these outbox mails."""
        wanted = [i for i in dict.fromkeys(message_ids) if known_sent_text(i) is None]
        for chunk in chunks(wanted):
            found = await self.session.execute(
                select(Outbox.message_id, Outbox.data).where(among(Outbox.message_id, chunk, self.dialect)))
            for message_id, data in found.all():
                sent_text_of(message_id, data)
