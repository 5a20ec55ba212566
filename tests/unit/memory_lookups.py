"""The in-memory twin of :class:`gateway.inbound.policy.lookups.Lookups`: the same public
methods, answering the same questions from plain lists of model objects (built without a
database) instead of SQL. What a question means is spelt out beside each method; the twin
keeps the real class's caching where it changes an answer (counts taken at the group's start,
answers queued by the group counted at once, a decided message remembered for the next).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from gateway.directory import normalise_email
from gateway.errors import InvalidValue
from gateway.inbound.mail.replies.sent import SentText, combined, sent_text_of
from gateway.inbound.policy.lookups import AUTOMATIC_KINDS, HOURLY_WINDOW, RATE_WINDOW, RECENT_SENT
from gateway.inbound.policy.record import DecidedRow
from gateway.models import Case, Contact, Notice, Outbox
from gateway.notices.references import find_in
from gateway.outbound.kinds import MailKind
from gateway.threading.matcher import referenced_ids


@dataclass
class Tables:
    """What the database holds, as far as the inbound policy reads it."""

    cases: list[Case] = field(default_factory=list)
    contacts: list[Contact] = field(default_factory=list)
    outbox: list[Outbox] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    decided: list[DecidedRow] = field(default_factory=list)
    """Inbound messages decided earlier (a disposition set), for the dedupe."""

    def case_by_id(self, case_id: int | None) -> Case | None:
        return next((c for c in self.cases if c.id == case_id), None)

    def outbox_by_message_id(self, message_id: str) -> Outbox | None:
        return next((o for o in self.outbox if o.message_id == message_id), None)


class MemoryLookups:
    """:class:`~gateway.inbound.policy.lookups.Lookups` for one group of messages, read from
    ``tables`` at ``now``."""

    def __init__(self, tables: Tables, now: datetime) -> None:
        self.tables = tables
        self.now = now
        self.since = now - RATE_WINDOW
        self._originals: dict[tuple[str, str], int] = {}
        for row in sorted(tables.decided, key=lambda r: r.id):
            self.remember(row)
        self._answers: dict[str, int] = {}
        self._this_hour: int | None = None
        self._queued: set[str] = set()

    # --- dedupe ------------------------------------------------------------------------

    async def original_of(self, message_id: str, content_hash: str, row_id: int) -> int | None:
        """The first decided message with this Message-ID and content, unless it is ``row_id``."""
        found = self._originals.get((message_id, content_hash))
        return found if found != row_id else None

    def remember(self, row: DecidedRow) -> None:
        if row.message_id is not None and row.disposition is not None:
            self._originals.setdefault((row.message_id, row.content_hash), row.id)

    # --- match -------------------------------------------------------------------------

    async def numbers_by_message_ids(self, message_ids: Sequence[str]) -> set[str]:
        """The numbers of the cases our mail with these Message-IDs was about."""
        numbers = set()
        for message_id in referenced_ids(message_ids):
            sent = self.tables.outbox_by_message_id(message_id)
            case = self.tables.case_by_id(sent.case_id) if sent is not None else None
            if case is not None and case.number is not None:
                numbers.add(case.number)
        return numbers

    async def replied_notice(self, subject: str, message_ids: Sequence[str]) -> str | None:
        """The notice our mail named in In-Reply-To/References was about, else the existing
        notice whose reference is in the subject."""
        for message_id in [i for i in message_ids if i][:50]:
            sent = self.tables.outbox_by_message_id(message_id)
            if sent is not None and sent.notice_id is not None:
                return next(n.reference for n in self.tables.notices if n.id == sent.notice_id)
        reference = find_in(subject or "")
        return reference if any(n.reference == reference for n in self.tables.notices) else None

    async def case(self, number: str) -> Case | None:
        return next((c for c in self.tables.cases if c.number == number), None)

    # --- authorise ---------------------------------------------------------------------

    async def contact(self, organisation_id: int, email: str) -> Contact | None:
        """The organisation's contact with this address, removed ones included (they are not
        designated); None for an address no contact could have."""
        try:
            address = normalise_email(email) if email else None
        except InvalidValue:
            return None
        return next((c for c in self.tables.contacts
                     if c.organisation_id == organisation_id and c.email == address), None)

    # --- respond -----------------------------------------------------------------------

    async def answers_today(self, address: str) -> int:
        """Automatic answers to ``address`` in the last 24 hours, this group's included."""
        if address not in self._answers:
            self._answers[address] = sum(
                1 for o in self._automatic(self.since) if address in {r.address for r in o.recipients})
        return self._answers[address]

    def count_answer(self, kind: MailKind, address: str) -> None:
        if kind.value in AUTOMATIC_KINDS:
            self._answers[address] = self._answers.get(address, 0) + 1
            if self._this_hour is not None:
                self._this_hour += 1

    async def answers_this_hour(self) -> int:
        if self._this_hour is None:
            self._this_hour = len(list(self._automatic(self.now - HOURLY_WINDOW)))
        return self._this_hour

    async def queued(self, dedupe_key: str) -> bool:
        return dedupe_key in self._queued or any(o.dedupe_key == dedupe_key for o in self.tables.outbox)

    def remember_queued(self, dedupe_key: str) -> None:
        self._queued.add(dedupe_key)

    async def answered(self, row_id: int, dedupe_key: str) -> bool:
        return any(o.inbound_message_id == row_id and o.dedupe_key == dedupe_key for o in self.tables.outbox)

    def _automatic(self, since: datetime) -> Iterable[Outbox]:
        return (o for o in self.tables.outbox if o.kind in AUTOMATIC_KINDS and o.created_at > since)

    # --- bounces -----------------------------------------------------------------------

    async def outbound(self, message_ids: Sequence[str]) -> list[Outbox]:
        """Our outbound messages with these Message-IDs, oldest first."""
        found = {o.id: o for i in message_ids if (o := self.tables.outbox_by_message_id(i)) is not None}
        return sorted(found.values(), key=lambda o: o.id)

    # --- apply -------------------------------------------------------------------------

    async def sent_text(self, case_id: int, message_ids: Sequence[str]) -> SentText | None:
        """The words of the case's mails the Message-IDs name, else of its latest ten."""
        ours = [o for i in referenced_ids(message_ids)
                if (o := self.tables.outbox_by_message_id(i)) is not None and o.case_id == case_id]
        if not ours:
            ours = sorted((o for o in self.tables.outbox if o.case_id == case_id),
                          key=lambda o: o.id, reverse=True)[:RECENT_SENT]
        texts = [sent_text_of(o.message_id, o.data) for o in ours]
        return combined(texts) if texts else None
