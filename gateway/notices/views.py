"""What ``notice show``, ``maintenance list`` and ``incident list/show`` print."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.domain import NoticeKind
from gateway.models import Notice, NoticeDelivery, NoticeUpdate, Organisation, Outbox, OutboxRecipient
from gateway.notices import mails, maintenance, references, targets


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def updates_of(session: AsyncSession, notice: Notice) -> list[NoticeUpdate]:
    return list((await session.scalars(select(NoticeUpdate).where(NoticeUpdate.notice_id == notice.id)
                                       .order_by(NoticeUpdate.sequence))).all())


async def summary(session: AsyncSession, notice: Notice, now: datetime) -> dict[str, Any]:
    updates = await updates_of(session, notice)
    state = notice.status
    if notice.kind in mails.MAINTENANCE:
        state = maintenance.state(notice, updates, now)
    return {
        "reference": notice.reference, "kind": notice.kind, "state": state, "title": notice.title,
        "organisations": await targets.names(session, notice), "starts_at": iso(notice.starts_at),
        "ends_at": iso(notice.ends_at), "send_at": iso(notice.send_at),
        "next_mail_at": iso(notice.next_update_at), "restored_at": iso(notice.restored_at),
        "rca_due_at": iso(notice.rca_due_at), "cancelled_at": iso(notice.cancelled_at),
        "sequence": notice.sequence,
    }


async def detail(session: AsyncSession, reference: str, now: datetime) -> dict[str, Any]:
    notice = await references.get_notice(session, reference)
    data = await summary(session, notice, now)
    data.update(summary_text=notice.summary, impact=notice.impact, services=notice.services,
                instructions=notice.instructions, link=notice.link)
    updates = await updates_of(session, notice)
    data["mails"] = [
        {"sequence": u.sequence, "kind": u.kind, "at": iso(u.at), "due_at": iso(u.due_at),
         "sent_at": iso(u.sent_at), "outcome": u.outcome, "state": u.state, "text": u.status_text,
         "next_steps": u.next_steps} for u in updates]
    data["deliveries"] = await deliveries(session, notice, {u.id: u.sequence for u in updates})
    return data


async def deliveries(
    session: AsyncSession, notice: Notice, sequences: dict[int, int]
) -> list[dict[str, Any]]:
    stmt = (select(NoticeDelivery, Organisation.name, Outbox.kind, Outbox.message_id, OutboxRecipient)
            .join(Organisation, Organisation.id == NoticeDelivery.organisation_id)
            .join(Outbox, Outbox.id == NoticeDelivery.outbox_id)
            .join(OutboxRecipient, OutboxRecipient.outbox_id == Outbox.id)
            .where(NoticeDelivery.notice_id == notice.id).order_by(NoticeDelivery.id))
    return [
        {"mail": sequences.get(d.update_id), "kind": kind, "organisation": org, "address": d.address,
         "timezone": d.timezone, "queued_at": iso(d.created_at), "status": r.status,
         "sent_at": iso(r.sent_at), "code": r.last_code, "reply": r.last_reply,
         "message_id": message_id}
        for d, org, kind, message_id, r in (await session.execute(stmt)).all()
    ]


async def listing(session: AsyncSession, kinds: Sequence[NoticeKind], now: datetime) -> list[dict[str, Any]]:
    rows = (await session.scalars(select(Notice).where(Notice.kind.in_([k.value for k in kinds]))
                                  .order_by(Notice.created_at, Notice.id))).all()
    return [await summary(session, n, now) for n in rows]
