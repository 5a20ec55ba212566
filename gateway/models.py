"""The tables of the whole product (DESIGN.md). The schema itself exists only through the
Alembic migrations in ``migrations/``; these classes must match them (a test checks)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    exists,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, column_property, mapped_column, relationship

from gateway.db import UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Id = BigInteger().with_variant(Integer(), "sqlite")
"""Primary keys: BIGINT on PostgreSQL, INTEGER (the rowid alias, so autoincrementing) on SQLite."""


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


class Organisation(Base):
    __tablename__ = "organisations"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    timezone: Mapped[str] = mapped_column(String(64))
    holiday_country: Mapped[str] = mapped_column(String(8))
    holiday_subdivision: Mapped[str | None] = mapped_column(String(16))
    total_agents: Mapped[int] = mapped_column(Integer, default=0)
    business_hours: Mapped[str] = mapped_column(String(11), default="09:00-17:00",
                                                server_default="09:00-17:00")
    """Local opening hours ("08:00-18:00") for the response targets."""
    created_at: Mapped[datetime]


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("organisation_id", "email"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    """Stored lower-cased: senders are compared case-insensitively."""
    name: Mapped[str | None] = mapped_column(String(200))
    designated: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    removed_at: Mapped[datetime | None]
    """Set by ``contact remove``: the row stays for the cases' history, never designated again
    until the contact is added anew."""
    organisation: Mapped[Organisation] = relationship(lazy="joined")


class Case(Base):
    __tablename__ = "cases"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    number: Mapped[str | None] = mapped_column(String(8), unique=True)
    """8 digits, zero-padded; set from the id right after insert."""
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    """The designated contact who opened the case: follow-ups go to them."""
    case_type: Mapped[str] = mapped_column(String(32))
    sub_type: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(24), index=True)
    environment: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(500))
    opened_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    close_reason: Mapped[str | None] = mapped_column(String(32))
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)
    escalated_at: Mapped[datetime | None]
    followup_started_at: Mapped[datetime | None]
    """When care last asked the customer for something; None while no timer runs."""
    followups_sent: Mapped[int] = mapped_column(Integer, default=0)
    """The step the current cycle has reached (0: none yet; 3: closed)."""
    followup_cycle: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """How many times the timer has started; a step's dedupe key names its cycle."""
    followup_due_at: Mapped[datetime | None] = mapped_column(index=True)
    """When the timer's next step is due; None while no timer runs."""
    organisation: Mapped[Organisation] = relationship(lazy="joined")
    contact: Mapped[Contact] = relationship(lazy="joined")


class CaseEvent(Base):
    """The case timeline: every change and every message, in order."""

    __tablename__ = "case_events"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(320))
    body: Mapped[str | None] = mapped_column(Text)
    inbound_message_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"))
    data: Mapped[dict[str, Any] | None]


class MailboxState(Base):
    __tablename__ = "mailbox_state"
    mailbox: Mapped[str] = mapped_column(String(100), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


class MailboxHealth(Base):
    """How each mailbox's intake is doing, written by the replica polling it (``status``)."""

    __tablename__ = "mailbox_health"
    mailbox: Mapped[str] = mapped_column(String(100), primary_key=True)
    connected: Mapped[bool] = mapped_column(Boolean, default=False)
    last_poll_at: Mapped[datetime | None]
    """The end of the last round that searched the mailbox without error."""
    waiting: Mapped[int | None] = mapped_column(Integer)
    """Messages in the watched folder at that search."""
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class InboundMoved(Base):
    """An inbound message whose IMAP copy reached its folder: a row of its own, inserted once,
    instead of a flag on the message's row. On PostgreSQL an update writes a new version of the
    whole row (the decided row: its trail, its text) and, off its page, an entry in each of its
    indexes; the flag was the row's fourth version (migration 0007)."""

    __tablename__ = "inbound_moved"
    inbound_message_id: Mapped[int] = mapped_column(
        Id, ForeignKey("inbound_messages.id"), primary_key=True, autoincrement=False
    )


class InboundMessage(Base):
    """One fetched message and its fate. Unique on (mailbox, uidvalidity, uid)."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        UniqueConstraint("mailbox", "uidvalidity", "uid"),
        Index("ix_inbound_messages_dedupe", "message_id", "content_hash"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(100))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[str | None] = mapped_column(String(998))
    content_hash: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    from_address: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]
    disposition: Mapped[str | None] = mapped_column(String(32), index=True)
    """None until the pipeline has finished with the message."""
    trail: Mapped[list[Any]] = mapped_column(default=list)
    """The stages that ran and what each decided."""
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    new_text: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    target_folder: Mapped[str | None] = mapped_column(String(200))
    moved: Mapped[bool] = column_property(
        exists().where(InboundMoved.inbound_message_id == id).correlate_except(InboundMoved)
    )
    """Whether the IMAP copy reached its folder (:class:`InboundMoved`); read-only."""


class InboundRaw(Base):
    """The bytes of an inbound message as fetched (only its headers when it is over the size
    limit), written once with its row. Apart from the row because the row is rewritten as the
    pipeline records the message's fate (twice per message), and SQLite rewrites a
    row's whole record on every update, a 13 KB message included."""

    __tablename__ = "inbound_raw"
    inbound_message_id: Mapped[int] = mapped_column(
        Id, ForeignKey("inbound_messages.id"), primary_key=True, autoincrement=False
    )
    raw: Mapped[bytes] = mapped_column(LargeBinary)


class Attachment(Base):
    __tablename__ = "attachments"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    inbound_message_id: Mapped[int] = mapped_column(ForeignKey("inbound_messages.id"), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    filename: Mapped[str] = mapped_column(String(500))
    content_type: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)


class SecurityEvent(Base):
    """Forged or tampered references, DMARC failures: kept for review, never shown to senders."""

    __tablename__ = "security_events"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text)
    inbound_message_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))


class Outbox(Base):
    """One email to send, written in the transaction of the change that causes it."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_kind_created", "kind", "created_at"),  # the hourly cap on answers
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(300), unique=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    notice_id: Mapped[int | None] = mapped_column(ForeignKey("notices.id"), index=True)
    inbound_message_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"), index=True)
    message_id: Mapped[str] = mapped_column(String(300), unique=True)
    envelope_from: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    """The serialised message, rendered at enqueue."""
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    last_error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None]
    recipients: Mapped[list[OutboxRecipient]] = relationship(
        lazy="selectin", order_by="OutboxRecipient.id", cascade="all, delete-orphan"
    )


class OutboxRecipient(Base):
    __tablename__ = "outbox_recipients"
    __table_args__ = (
        UniqueConstraint("outbox_id", "address"),
        Index("ix_outbox_recipients_failed", "outbox_id",
              postgresql_where=text("status IN ('failed', 'bounced')"),
              sqlite_where=text("status IN ('failed', 'bounced')")),
    )
    """The partial index holds the few permanent failures (distribution-list suspension)."""
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id"), index=True)
    address: Mapped[str] = mapped_column(String(320), index=True)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_code: Mapped[int | None] = mapped_column(Integer)
    last_reply: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
    bounced_at: Mapped[datetime | None]


class DistributionList(Base):
    __tablename__ = "distribution_lists"
    __table_args__ = (UniqueConstraint("organisation_id", "address"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    address: Mapped[str] = mapped_column(String(320))
    timezone: Mapped[str | None] = mapped_column(String(64))
    """None: the organisation's zone."""
    kinds: Mapped[list[Any]] = mapped_column(default=list)
    """Notice kinds this list receives; empty: all."""
    created_at: Mapped[datetime]
    failures_since: Mapped[datetime]
    """Permanent failures are counted from here (the list's creation, or its last resume)."""
    suspended_at: Mapped[datetime | None]
    """Set when the failures passed ``notices.suspend_after_failures``; ``dl resume`` clears it."""


class Notice(Base):
    """A maintenance notice, incident or advisory, with a unique reference (MNT-2026-00042)."""

    __tablename__ = "notices"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(24), index=True)
    title: Mapped[str] = mapped_column(String(500))
    summary: Mapped[str] = mapped_column(Text)
    impact: Mapped[str | None] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(1000))
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    send_at: Mapped[datetime | None]
    """When the first notice is due (planned maintenance is held until 14 days before)."""
    next_update_at: Mapped[datetime | None] = mapped_column(index=True)
    """Incidents: when the next 30-minute update is due (None once restored)."""
    created_at: Mapped[datetime]
    restored_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    services: Mapped[str | None] = mapped_column(Text)
    instructions: Mapped[str | None] = mapped_column(Text)
    """Incidents: the recommendation, then the return-to-normal instructions."""
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    """The iCalendar SEQUENCE of a maintenance window: raised on every change and on cancellation."""
    warned_for: Mapped[datetime | None]
    """Incidents: the ``next_update_at`` ops were last warned about (the warning is sent once)."""
    rca_due_at: Mapped[datetime | None]
    """Incidents: the root cause analysis is due 5 business days after restoration."""


class NoticeTarget(Base):
    """Which organisations a notice goes to; incidents also record affected agents."""

    __tablename__ = "notice_targets"
    __table_args__ = (UniqueConstraint("notice_id", "organisation_id"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("notices.id"), index=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    affected_agents: Mapped[int | None] = mapped_column(Integer)


class NoticeUpdate(Base):
    """One mail about a notice (sequence 0 is the first), sent to its lists when due."""

    __tablename__ = "notice_updates"
    __table_args__ = (UniqueConstraint("notice_id", "sequence"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("notices.id"), index=True)
    sequence: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(24))
    """first, changed, cancelled, reminder, update (ops), status (no news), restored."""
    at: Mapped[datetime]
    status_text: Mapped[str] = mapped_column(Text)
    next_steps: Mapped[str | None] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str | None] = mapped_column(String(24))
    """Incidents: the status this update reports (investigating, identified, monitoring, ...)."""
    due_at: Mapped[datetime | None] = mapped_column(index=True)
    """When the mail goes out; None once it has been sent or dropped."""
    sent_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(Text)
    """What became of it: how many messages were queued, or why none were."""


class NoticeDelivery(Base):
    """Who got which mail of a notice: one row per list address, beside its outbox row."""

    __tablename__ = "notice_deliveries"
    __table_args__ = (
        UniqueConstraint("update_id", "organisation_id", "address"),
        Index("ix_notice_deliveries_list", "organisation_id", "address"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("notices.id"), index=True)
    update_id: Mapped[int] = mapped_column(ForeignKey("notice_updates.id"))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    address: Mapped[str] = mapped_column(String(320))
    timezone: Mapped[str] = mapped_column(String(64))
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id"), index=True)
    created_at: Mapped[datetime]


class InstanceSecret(Base):
    """Secrets the gateway made for itself (the reference key when none is configured)."""

    __tablename__ = "instance_secrets"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
