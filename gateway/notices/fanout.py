"""One message per list address, through the outbox: rendered once per (mail, organisation,
zone), its body encoded once, and only the header block written per address. Rows, their
recipients and the deliveries are inserted in bulk, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import Settings
from gateway.domain import OutboxStatus, RecipientStatus
from gateway.identity import make_message_id
from gateway.models import NoticeDelivery, Outbox, OutboxRecipient
from gateway.notices.lists import Recipient
from gateway.outbound.bulk import CalendarPart, HeaderTemplate, header_template, with_calendar
from gateway.outbound.compose import ComposedBody, assemble, compose_body
from gateway.outbound.kinds import MailKind
from gateway.outbound.outbox import max_age
from gateway.outbound.render import Rendered, Renderer


@dataclass(frozen=True)
class Message:
    """One outbox row to insert: ``address`` is its one recipient."""

    values: dict[str, Any]
    address: str
    recipient: Recipient | None = None


def template(settings: Settings, kind: MailKind, subject: str, now: datetime) -> HeaderTemplate:
    mail = settings.mail
    return header_template(subject=subject, kind=kind, from_address=mail.from_address,
                           from_name=mail.from_name, date=now, id_domain=mail.id_domain,
                           reply_to=mail.reply_to)


def message(settings: Settings, kind: MailKind, subject: str, headers: HeaderTemplate,
            body: ComposedBody, address: str, *, now: datetime, dedupe_key: str,
            notice_id: int | None = None, recipient: Recipient | None = None) -> Message:
    mail = settings.mail
    message_id = make_message_id(mail.id_domain)
    values = {
        "dedupe_key": dedupe_key, "kind": kind.value, "case_id": None, "notice_id": notice_id,
        "inbound_message_id": None, "message_id": message_id, "envelope_from": mail.from_address,
        "subject": subject, "data": assemble(headers.render(address, message_id), body),
        "status": OutboxStatus.PENDING, "created_at": now, "next_attempt_at": now,
        "expires_at": now + max_age(settings, kind), "attempts": 0, "lease_until": None,
        "claimed_by": None, "last_error": None, "finished_at": None,
    }
    return Message(values, address.lower(), recipient)


async def insert_messages(
    session: AsyncSession, messages: Sequence[Message], *, existing: set[str],
    update_id: int | None = None,
) -> int:
    """Insert the messages whose dedupe key is not in ``existing`` (a repeat enqueues
    nothing), their recipients, and a delivery row for each that went to a list. Returns how
    many were new. Core inserts: no ORM objects for thousands of rows."""
    fresh = [m for m in messages if m.values["dedupe_key"] not in existing]
    if not fresh:
        return 0
    outbox, recipients, deliveries = (
        _table(Outbox), _table(OutboxRecipient), _table(NoticeDelivery))
    result = await session.execute(
        insert(outbox).returning(outbox.c.id, outbox.c.dedupe_key), [m.values for m in fresh])
    ids = {key: oid for oid, key in result.all()}
    await session.execute(insert(recipients), [
        {"outbox_id": ids[m.values["dedupe_key"]], "address": m.address,
         "status": RecipientStatus.PENDING, "attempts": 0, "last_code": None, "last_reply": None,
         "sent_at": None, "bounced_at": None} for m in fresh])
    rows = [
        {"notice_id": m.values["notice_id"], "update_id": update_id,
         "organisation_id": m.recipient.organisation_id, "address": m.address,
         "timezone": m.recipient.timezone, "outbox_id": ids[m.values["dedupe_key"]],
         "created_at": m.values["created_at"]}
        for m in fresh if m.recipient is not None
    ]
    if rows:
        await session.execute(insert(deliveries), rows)
    return len(fresh)


def _table(model: type[Any]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


async def fan_out(
    session: AsyncSession, settings: Settings, renderer: Renderer, *, kind: MailKind,
    recipients: Sequence[Recipient], context: Callable[[Recipient], Mapping[str, Any]],
    dedupe_key: Callable[[Recipient], str], key_prefix: str, notice_id: int, update_id: int,
    now: datetime, calendar: CalendarPart | None = None,
) -> int:
    """Queue ``kind`` to every recipient, rendered once per (organisation, zone). Keys that
    start with ``key_prefix`` and exist already (a repeat after a restart) are skipped."""
    existing = set((await session.scalars(select(Outbox.dedupe_key).where(
        Outbox.notice_id == notice_id, Outbox.dedupe_key.startswith(key_prefix, autoescape=True)))).all())
    parts: dict[tuple[int, str], tuple[str, HeaderTemplate, ComposedBody]] = {}
    messages: list[Message] = []
    for recipient in recipients:
        group = (recipient.organisation_id, recipient.timezone)
        if group not in parts:
            rendered = renderer.render(kind, context(recipient))
            parts[group] = (rendered.subject, template(settings, kind, rendered.subject, now),
                            _body(rendered, calendar))
        subject, headers, body = parts[group]
        messages.append(message(settings, kind, subject, headers, body, recipient.address, now=now,
                                dedupe_key=dedupe_key(recipient), notice_id=notice_id,
                                recipient=recipient))
    return await insert_messages(session, messages, existing=existing, update_id=update_id)


def _body(rendered: Rendered, calendar: CalendarPart | None) -> ComposedBody:
    body = compose_body(rendered)
    return body if calendar is None else with_calendar(body, calendar)


async def send_internal(
    session: AsyncSession, settings: Settings, renderer: Renderer, *, kind: MailKind,
    context: Mapping[str, Any], dedupe_key: str, now: datetime, notice_id: int | None = None,
) -> int:
    """One mail to care management (``mail.escalation_address``), once per dedupe key."""
    if await session.scalar(select(Outbox.id).where(Outbox.dedupe_key == dedupe_key)) is not None:
        return 0
    rendered = renderer.render(kind, context)
    one = message(settings, kind, rendered.subject, template(settings, kind, rendered.subject, now),
                  compose_body(rendered), settings.mail.escalation_address, now=now,
                  dedupe_key=dedupe_key, notice_id=notice_id)
    return await insert_messages(session, [one], existing=set())
