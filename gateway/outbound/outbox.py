"""The transactional outbox: an email to send is a row written in the caller's transaction.

:meth:`Mailer.enqueue` renders and serialises the message at once (a template error fails the
operation that schedules the mail, not the sender hours later), fixes its Message-ID, and
writes the row and one row per recipient. A dedupe key that exists already returns the
existing row: repeating the cause never sends twice. The inbound pipeline, which answers a
group of messages in one transaction, queues with :meth:`Mailer.enqueue_new` and inserts the
group's answers at once (:func:`insert_queued_in_bulk`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.clock import Clock
from gateway.config import Settings
from gateway.domain import OutboxStatus, RecipientStatus
from gateway.errors import InvalidValue, NotFound
from gateway.identity import make_message_id
from gateway.models import Outbox, OutboxRecipient
from gateway.outbound.compose import MAX_REFERENCES, compose
from gateway.outbound.kinds import MailGroup, MailKind
from gateway.outbound.render import Renderer


@dataclass
class Mail:
    """One message to schedule. ``to`` holds ``(display name, address)`` pairs."""

    kind: MailKind
    to: Sequence[tuple[str, str]]
    context: Mapping[str, Any]
    dedupe_key: str
    case_id: int | None = None
    notice_id: int | None = None
    inbound_message_id: int | None = None
    in_reply_to: str | None = None
    references: Sequence[str] = field(default_factory=tuple)


class Mailer:
    """Renders, composes and enqueues; one per process (it holds the template cache)."""

    def __init__(
        self, settings: Settings, renderer: Renderer, clock: Clock, keys: Sequence[bytes]
    ) -> None:
        if not keys:
            raise ValueError("the mailer needs the reference key")
        self.keys = list(keys)  # reference-token keys, current first (gateway.keys)
        self.settings = settings
        self.renderer = renderer
        self.clock = clock

    def max_age(self, kind: MailKind) -> timedelta:
        return max_age(self.settings, kind)

    async def enqueue(self, session: AsyncSession, mail: Mail) -> Outbox:
        """Queue ``mail`` (flushed, so the row has its id), or return the row queued before
        with its dedupe key."""
        existing = await session.scalar(select(Outbox).where(Outbox.dedupe_key == mail.dedupe_key))
        if existing is not None:
            return existing
        values, recipients = await self._prepare(session, mail)
        row = Outbox(**values)
        row.recipients = [OutboxRecipient(**recipient) for recipient in recipients]
        session.add(row)
        await session.flush()
        return row

    async def enqueue_new(self, session: AsyncSession, mail: Mail) -> None:
        """Queue ``mail``, whose dedupe key the caller has checked is new, for
        :func:`insert_queued_in_bulk` to insert with the rest of the transaction's: no row
        object, no lookup, no flush (the inbound pipeline answers a group of messages at once)."""
        session.info.setdefault(_QUEUED, []).append(await self._prepare(session, mail))

    async def _prepare(
        self, session: AsyncSession, mail: Mail
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The outbox row's columns (the message rendered and serialised) and its recipients'."""
        if not mail.to:
            raise InvalidValue(f"{mail.kind.value}: no recipient")
        now = self.clock.now()
        in_reply_to, references = mail.in_reply_to, list(mail.references)
        if mail.case_id is not None and mail.kind.spec.case_thread and in_reply_to is None:
            in_reply_to, references = await thread_headers(session, mail.case_id)
        rendered = self.renderer.render(mail.kind, mail.context)
        mail_settings = self.settings.mail
        message_id = make_message_id(mail_settings.id_domain)
        data = compose(
            rendered, kind=mail.kind, from_address=mail_settings.from_address,
            from_name=mail_settings.from_name, to=[(name or "", addr) for name, addr in mail.to],
            message_id=message_id, date=now, id_domain=mail_settings.id_domain,
            reply_to=mail_settings.reply_to, in_reply_to=in_reply_to, references=references,
        )
        values = {
            "dedupe_key": mail.dedupe_key, "kind": mail.kind.value, "case_id": mail.case_id,
            "notice_id": mail.notice_id, "inbound_message_id": mail.inbound_message_id,
            "message_id": message_id, "envelope_from": mail_settings.from_address,
            "subject": rendered.subject, "data": data, "status": OutboxStatus.PENDING, "created_at": now,
            "next_attempt_at": now, "expires_at": now + self.max_age(mail.kind), "attempts": 0,
        }
        addresses = dict.fromkeys(addr.lower() for _, addr in mail.to)  # once each
        pending = RecipientStatus.PENDING
        return values, [{"address": addr, "status": pending, "attempts": 0} for addr in addresses]


def max_age(settings: Settings, kind: MailKind) -> timedelta:
    """How long the sender keeps trying a mail of ``kind`` before it expires."""
    spec, limits = kind.spec, settings.outbox
    if spec.time_critical:
        return timedelta(minutes=limits.incident_max_age_minutes)
    if spec.group is MailGroup.NOTICE:
        return timedelta(hours=limits.notice_max_age_hours)
    return timedelta(hours=limits.case_max_age_hours)


_QUEUED = "gateway.outbox.queued"
"""``session.info`` key: what :meth:`Mailer.enqueue_new` queued, not inserted yet."""


async def insert_queued_in_bulk(session: AsyncSession) -> None:
    """Insert what :meth:`Mailer.enqueue_new` queued in the session's transaction: the outbox
    rows in one statement, their recipients in another (the unit of work would take two per
    row on SQLite)."""
    queued: list[tuple[dict[str, Any], list[dict[str, Any]]]] = session.info.pop(_QUEUED, [])
    if not queued:
        return
    recipients = {values["dedupe_key"]: rows for values, rows in queued}
    ids = await session.execute(
        insert(Outbox).returning(Outbox.id, Outbox.dedupe_key).execution_options(render_nulls=True),
        [values for values, _ in queued],
    )
    rows = [{**r, "outbox_id": outbox_id} for outbox_id, key in ids.all() for r in recipients[key]]
    await session.execute(insert(OutboxRecipient).execution_options(render_nulls=True), rows)


async def thread_headers(session: AsyncSession, case_id: int) -> tuple[str | None, list[str]]:
    """In-Reply-To and References that chain a new case mail to the case's earlier mail."""
    ids = list((await session.scalars(
        select(Outbox.message_id).where(Outbox.case_id == case_id).order_by(Outbox.id)
    )).all())
    if not ids:
        return None, []
    refs = ids if len(ids) <= MAX_REFERENCES else [ids[0], *ids[-(MAX_REFERENCES - 1):]]
    return ids[-1], refs


async def retry(session: AsyncSession, mailer: Mailer, outbox_id: int) -> Outbox:
    """Ops: send a failed or expired row again, to the recipients that did not get it."""
    row = await session.get(Outbox, outbox_id)
    if row is None:
        raise NotFound(f"no outbox row {outbox_id}")
    now = mailer.clock.now()
    if row.status in (OutboxStatus.SENT, OutboxStatus.SENDING):
        raise InvalidValue(f"outbox row {outbox_id} is {row.status}; nothing to retry")
    await session.execute(
        update(OutboxRecipient)
        .where(OutboxRecipient.outbox_id == row.id,
               OutboxRecipient.status.in_([RecipientStatus.FAILED, RecipientStatus.EXPIRED]))
        .values(status=RecipientStatus.PENDING)
    )
    row.status = OutboxStatus.PENDING
    row.next_attempt_at = now
    row.expires_at = max(row.expires_at, now + mailer.max_age(MailKind(row.kind)))
    row.finished_at = None
    await session.flush()
    await session.refresh(row, ["recipients"])
    return row


async def list_rows(session: AsyncSession, status: str | None = None, limit: int = 200) -> Sequence[Outbox]:
    stmt = select(Outbox).order_by(Outbox.id.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(Outbox.status == status)
    return (await session.scalars(stmt)).all()
