"""A world for unit tests of the inbound policy, without a database: an organisation with its
contacts, cases and the mail we sent them as model objects in memory (:class:`Tables`), read
by the stages through :class:`~tests.unit.memory_lookups.MemoryLookups`; the real settings,
clock, templates and outbox :class:`~gateway.outbound.outbox.Mailer`; and a session that
records what the stages queue (timeline events, security events, attachments, answers) and
refuses any query of its own.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from gateway import cases
from gateway.cases.mail import case_context, closed_context, contact_context
from gateway.clock import FrozenClock
from gateway.config import MailboxSettings, Settings
from gateway.db import _QUEUED_ROWS
from gateway.domain import CaseStatus, CloseReason
from gateway.identity import make_message_id
from gateway.inbound.mail.analysis import Parsed, parse_safely
from gateway.inbound.policy.context import MessageContext, Next, Services
from gateway.inbound.policy.pipeline import STAGES, run_pipeline
from gateway.inbound.policy.record import DecidedRow
from gateway.models import (
    Attachment,
    Case,
    CaseEvent,
    Contact,
    Notice,
    Organisation,
    Outbox,
    OutboxRecipient,
    SecurityEvent,
)
from gateway.outbound.kinds import MailKind
from gateway.outbound.outbox import _QUEUED, Mail, Mailer
from gateway.outbound.render import Renderer
from tests.unit.memory_lookups import MemoryLookups, Tables

SECRET = "unit-test-reference-secret-0123456789"
OUR_ADDRESS = "care@vendor.example"
CARE_MANAGEMENT = "care-management@vendor.example"
TRUSTED_MX = "mx.vendor.example"
ANA = "ana@acme.example"
BOB = "bob@acme.example"  # a contact, not designated
STRANGER = "mallory@evil.example"

_RENDERERS: dict[str, Renderer] = {}


def forged(token: str) -> str:
    """``token`` with the last character of its MAC changed."""
    return token[:-1] + ("a" if token[-1] != "a" else "b")


def settings(**sections: Any) -> Settings:
    data: dict[str, Any] = {
        "reference": {"secret": SECRET},
        "mail": {"from_address": OUR_ADDRESS, "reply_to": OUR_ADDRESS, "escalation_address": CARE_MANAGEMENT},
        "branding": {"vendor_name": "Vendor Cloud", "care_name": "Vendor Cloud Customer Care",
                     "portal_url": "https://support.vendor.example"},
        "inbound": {"trusted_authserv_ids": [TRUSTED_MX]},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return Settings.model_validate(data)


class RecordingSession:
    """The stages' session: rows queued with :func:`gateway.db.queue_insert`, mail queued with
    :meth:`Mailer.enqueue_new`, objects the lookups loaded read back with ``get``. A stage
    that queries the database itself fails the test: the lookups answer the questions."""

    def __init__(self, tables: Tables) -> None:
        self.info: dict[str, Any] = {}
        self._tables = tables

    async def get(self, model: type[Any], ident: int) -> Any:
        assert model is Case, f"session.get({model.__name__}): not loaded by the lookups"
        return self._tables.case_by_id(ident)

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"a stage used session.{name}: only the lookups ask the database")

    def rows(self, model: type[Any]) -> list[dict[str, Any]]:
        """The rows of ``model`` queued so far, in order."""
        queued: dict[type[Any], list[dict[str, Any]]] = self.info.get(_QUEUED_ROWS, {})
        return queued.get(model, [])

    def mail(self) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """The outbox rows queued so far, each with its recipients' rows."""
        queued: list[tuple[dict[str, Any], list[dict[str, Any]]]] = self.info.get(_QUEUED, [])
        return queued


@dataclass
class Decision:
    """What deciding one message did, as its transaction would write it."""

    row: DecidedRow
    ctx: MessageContext
    events: list[dict[str, Any]] = field(default_factory=list)
    security_events: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    answers: list[Outbox] = field(default_factory=list)

    @property
    def trail(self) -> list[tuple[str, str]]:
        return [(step["stage"], step["outcome"]) for step in self.row.trail]

    @property
    def answered(self) -> list[tuple[str, list[str]]]:
        """(kind, recipients) of each answer queued."""
        return [(a.kind, [r.address for r in a.recipients]) for a in self.answers]


class PolicyWorld:
    """Acme Corp with Ana (designated), Bob (not designated), and whatever cases a test opens."""

    def __init__(self, **sections: Any) -> None:
        self.settings = settings(**sections)
        self.clock = FrozenClock()
        self.keys = self.settings.secrets()
        branding = self.settings.branding.model_dump_json()
        renderer = _RENDERERS.setdefault(branding, Renderer(self.settings.branding))  # templates compile once
        self.mailer = Mailer(self.settings, renderer, self.clock, self.keys)
        self.services = Services(self.settings, self.clock, self.mailer, self.keys, frozenset({OUR_ADDRESS}))
        self.mailbox = MailboxSettings(name="care", host="127.0.0.1")
        self.tables = Tables()
        self.events: list[dict[str, Any]] = []
        """The timeline events committed so far."""
        self.session = RecordingSession(self.tables)
        self._ids = itertools.count(1)
        self.org = self.organisation("Acme Corp")
        self.ana = self.contact(ANA, self.org, name="Ana Alves")
        self.bob = self.contact(BOB, self.org, designated=False)

    # --- the directory and the cases ------------------------------------------------------

    def organisation(self, name: str) -> Organisation:
        return Organisation(id=next(self._ids), name=name, timezone="Europe/Berlin", holiday_country="DE",
                            holiday_subdivision="BY", total_agents=120, business_hours="09:00-17:00",
                            created_at=self.clock.now())

    def contact(self, email: str, org: Organisation, *, name: str | None = None, designated: bool = True,
                removed: bool = False) -> Contact:
        """A contact as :mod:`gateway.directory` leaves it (removed: not designated either)."""
        found = Contact(id=next(self._ids), organisation_id=org.id, email=email, name=name,
                        designated=designated and not removed, created_at=self.clock.now(),
                        removed_at=self.clock.now() if removed else None)
        found.organisation = org
        self.tables.contacts.append(found)
        return found

    def open_case(self, contact: Contact | None = None, *, status: CaseStatus = CaseStatus.NEW,
                  closed: timedelta | None = None, subject: str = "Calls drop after 30 seconds") -> Case:
        """A case in ``status`` (``closed``: closed that long ago)."""
        contact = contact or self.ana
        now = self.clock.now()
        case_id = next(self._ids)
        case = Case(id=case_id, number=cases.format_number(case_id), organisation_id=contact.organisation_id,
                    contact_id=contact.id, case_type="support", sub_type="problem", severity="high",
                    status=CaseStatus.NEW, environment="production", subject=subject, opened_at=now,
                    updated_at=now, escalated=False, followups_sent=0, followup_cycle=0)
        case.organisation, case.contact = contact.organisation, contact
        if closed is not None:
            case.status, case.closed_at = CaseStatus.CLOSED, now - closed
            case.close_reason = CloseReason.RESOLVED
        elif status != CaseStatus.NEW:
            cases.set_status(case, status, now)
        self.tables.cases.append(case)
        return case

    async def send(self, case: Case, kind: MailKind = MailKind.CASE_RECEIVED, **extra: Any) -> bytes:
        """Our mail of ``kind`` about ``case`` to its contact, as the outbox holds it: its bytes."""
        earlier = [o.message_id for o in self.tables.outbox if o.case_id == case.id]
        context = {"case": case_context(self.settings, self.keys[0], case),
                   "contact": contact_context(case.contact), "recipient_tz": case.organisation.timezone,
                   **extra}
        if case.closed_at is not None:
            context.update(closed_context(case))
        scratch = RecordingSession(self.tables)
        await self.mailer.enqueue_new(scratch, Mail(  # threaded here: no query for earlier mail
            kind=kind, to=[(case.contact.name or "", case.contact.email)], context=context,
            dedupe_key=f"case:{case.number}:{kind.value}:{next(self._ids)}",
            in_reply_to=earlier[-1] if earlier else None, references=earlier))
        ((values, recipients),) = scratch.mail()
        return self._store({**values, "case_id": case.id}, recipients).data

    def notice(self, reference: str) -> str:
        """A notice and our mail about it: the Message-ID of that mail."""
        notice = Notice(id=next(self._ids), reference=reference, kind="maintenance_planned",
                        status="scheduled", title="Voice platform upgrade", summary="An upgrade.",
                        created_at=self.clock.now())
        self.tables.notices.append(notice)
        message_id = make_message_id(self.settings.mail.id_domain)
        self._store({"dedupe_key": f"notice:{reference}", "kind": MailKind.MAINTENANCE_PLANNED.value,
                     "notice_id": notice.id, "message_id": message_id, "data": b"",
                     "created_at": self.clock.now()},
                    [{"address": "ops-list@acme.example", "status": "sent", "attempts": 1}])
        return message_id

    def _store(self, values: dict[str, Any], recipients: list[dict[str, Any]]) -> Outbox:
        row = Outbox(id=next(self._ids), **values)
        row.recipients = [OutboxRecipient(id=next(self._ids), outbox_id=row.id, **r) for r in recipients]
        self.tables.outbox.append(row)
        return row

    # --- deciding mail --------------------------------------------------------------------

    def lookups(self) -> MemoryLookups:
        """The lookups of one group of messages, from now."""
        return MemoryLookups(self.tables, self.clock.now())

    def parse(self, raw: bytes) -> Parsed:
        """What a parse worker makes of ``raw``."""
        return parse_safely(raw, self.settings.limits, self.keys)

    def context(self, raw: bytes, lookups: MemoryLookups | None = None) -> MessageContext:
        """A new inbound message's context, as :func:`run_pipeline` starts it (no stage run)."""
        parsed = self.parse(raw)
        return MessageContext(row=DecidedRow(next(self._ids)), parsed=parsed.mail,
                              lookups=lookups or self.lookups(), parse_error=parsed.problem,
                              new_text=parsed.new_text, tokens=parsed.tokens)

    async def run_before(self, ctx: MessageContext, stage: str) -> None:
        """Run the stages that come before ``stage`` on ``ctx``; each must let it go on."""
        for name, run in STAGES:
            if name == stage:
                return
            outcome = await run(ctx, self.session, self.services)
            assert isinstance(outcome, Next), (name, outcome)
        raise AssertionError(f"no stage {stage}")

    async def decide(self, raw: bytes) -> Decision:
        """One message decided in a transaction of its own, committed."""
        (decision,) = await self.decide_group([raw])
        return decision

    async def decide_group(self, raws: Sequence[bytes]) -> list[Decision]:
        """Messages decided as the daemon decides a group: one transaction, one lookups, each
        message remembered for the next; then committed."""
        lookups, session = self.lookups(), self.session
        contexts = []
        for raw in raws:
            row = DecidedRow(next(self._ids))
            parsed = self.parse(raw)
            contexts.append(await run_pipeline(session, self.services, row, self.mailbox, parsed, lookups))
            lookups.remember(row)
        self.tables.decided.extend(ctx.row for ctx in contexts)
        self.commit()
        return [self._decision(ctx, session) for ctx in contexts]

    def commit(self) -> None:
        """What the session queued becomes the tables' (the answers get their ids); a new
        transaction starts."""
        self.events.extend(self.session.rows(CaseEvent))
        for values, recipients in self.session.mail():
            self._store(values, recipients)
        self.session = RecordingSession(self.tables)

    def _decision(self, ctx: MessageContext, session: RecordingSession) -> Decision:
        row = ctx.row

        def mine(model: type[Any]) -> list[dict[str, Any]]:
            return [r for r in session.rows(model) if r["inbound_message_id"] == row.id]

        return Decision(row, ctx, events=mine(CaseEvent), security_events=mine(SecurityEvent),
                        attachments=mine(Attachment),
                        answers=[o for o in self.tables.outbox if o.inbound_message_id == row.id])
