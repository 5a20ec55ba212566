"""The mails of a notice: each is a :class:`NoticeUpdate` due at a time, sent to its
recipients when due. The first mail goes to the subscribed, unsuspended lists of the
notice's organisations; every later mail (change, cancellation, reminder, incident update,
all-clear) goes to exactly the addresses that got the first one, less those suspended or
removed since."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import Settings
from gateway.domain import NoticeKind
from gateway.models import DistributionList, Notice, NoticeDelivery, NoticeTarget, NoticeUpdate, Organisation
from gateway.notices import lists
from gateway.notices.fanout import fan_out, send_internal
from gateway.notices.invitation import invitation
from gateway.notices.lists import Recipient
from gateway.outbound import dedupe
from gateway.outbound.kinds import MailKind
from gateway.outbound.render import Renderer


class UpdateKind(StrEnum):
    FIRST = "first"
    CHANGED = "changed"
    CANCELLED = "cancelled"
    REMINDER = "reminder"
    UPDATE = "update"
    """Posted by ops."""
    STATUS = "status"
    """Sent by the scheduler when ops posted nothing for 30 minutes."""
    RESTORED = "restored"


_FIRST = {
    NoticeKind.MAINTENANCE_PLANNED: MailKind.MAINTENANCE_PLANNED,
    NoticeKind.MAINTENANCE_EMERGENCY: MailKind.MAINTENANCE_EMERGENCY,
    NoticeKind.INCIDENT: MailKind.INCIDENT_ALERT,
    NoticeKind.ADVISORY_PRODUCT: MailKind.ADVISORY_PRODUCT,
    NoticeKind.ADVISORY_SECURITY: MailKind.ADVISORY_SECURITY,
}
_LATER = {
    UpdateKind.CHANGED: MailKind.MAINTENANCE_CHANGED,
    UpdateKind.CANCELLED: MailKind.MAINTENANCE_CANCELLED,
    UpdateKind.REMINDER: MailKind.MAINTENANCE_REMINDER,
    UpdateKind.UPDATE: MailKind.INCIDENT_UPDATE,
    UpdateKind.STATUS: MailKind.INCIDENT_UPDATE,
    UpdateKind.RESTORED: MailKind.INCIDENT_RESTORED,
}
MAINTENANCE = (NoticeKind.MAINTENANCE_PLANNED, NoticeKind.MAINTENANCE_EMERGENCY)


def mail_kind(notice: Notice, update: NoticeUpdate) -> MailKind:
    if update.kind == UpdateKind.FIRST:
        return _FIRST[NoticeKind(notice.kind)]
    return _LATER[UpdateKind(update.kind)]


async def add_update(
    session: AsyncSession, notice: Notice, kind: UpdateKind, *, now: datetime, due_at: datetime,
    text: str = "", next_steps: str | None = None, state: str | None = None,
) -> NoticeUpdate:
    last = await session.scalar(
        select(func.max(NoticeUpdate.sequence)).where(NoticeUpdate.notice_id == notice.id))
    update = NoticeUpdate(notice_id=notice.id, sequence=0 if last is None else last + 1,
                          kind=kind.value, at=now, status_text=text, next_steps=next_steps,
                          state=state, due_at=due_at)
    session.add(update)
    await session.flush()
    return update


def context(notice: Notice, update: NoticeUpdate, recipient: Recipient,
            update_number: int | None) -> dict[str, Any]:
    return {
        "notice": {
            "reference": notice.reference, "kind": notice.kind, "title": notice.title,
            "summary": notice.summary, "impact": notice.impact, "starts_at": notice.starts_at,
            "ends_at": notice.ends_at, "status_text": update.status_text or None,
            "next_steps": update.next_steps, "instructions": notice.instructions,
            "link": notice.link, "severity": None, "update_number": update_number,
            "services": notice.services, "state": update.state,
        },
        "recipient_tz": recipient.timezone,
        "organisation": {"name": recipient.organisation},
    }


async def deliver(session: AsyncSession, settings: Settings, renderer: Renderer, notice: Notice,
                  update: NoticeUpdate, now: datetime) -> int:
    """Queue ``update`` to its recipients (in the caller's transaction) and mark it sent."""
    if update.kind == UpdateKind.FIRST:
        recipients = await _first_recipients(session, settings, renderer, notice, now)
    else:
        recipients = await earlier_recipients(session, notice)
    kind = mail_kind(notice, update)
    calendar = None
    if notice.kind in MAINTENANCE:
        calendar = invitation(notice, organizer=settings.mail.from_address,
                              domain=settings.mail.id_domain, now=now,
                              cancelled=update.kind == UpdateKind.CANCELLED)
    number = await _update_number(session, notice, update) if kind is MailKind.INCIDENT_UPDATE else None
    queued = await fan_out(
        session, settings, renderer, kind=kind, recipients=recipients,
        context=lambda r: context(notice, update, r, number),
        dedupe_key=lambda r: dedupe.notice(notice.reference, update.sequence, r.organisation_id, r.address),
        key_prefix=dedupe.notice_mail(notice.reference, update.sequence), notice_id=notice.id,
        update_id=update.id, now=now, calendar=calendar,
    )
    finish(update, now, f"{queued} messages queued" if recipients else "no recipient")
    return queued


def finish(update: NoticeUpdate, now: datetime, outcome: str) -> None:
    update.due_at = None
    update.sent_at = now
    update.outcome = outcome


async def _update_number(session: AsyncSession, notice: Notice, update: NoticeUpdate) -> int:
    """1 for the first incident update after the alert, and so on."""
    count = await session.scalar(select(func.count()).select_from(NoticeUpdate).where(
        NoticeUpdate.notice_id == notice.id, NoticeUpdate.sequence <= update.sequence,
        NoticeUpdate.kind.in_([UpdateKind.UPDATE.value, UpdateKind.STATUS.value])))
    return int(count or 0)


async def recipients_of(session: AsyncSession, notice: Notice, update: NoticeUpdate) -> list[Recipient]:
    """Who ``update`` will go to if it were sent now (read only: nobody is suspended here);
    a later mail of a notice still held goes to whom the first will."""
    if update.kind != UpdateKind.FIRST:
        first_sent = await session.scalar(select(NoticeUpdate.sent_at).where(
            NoticeUpdate.notice_id == notice.id, NoticeUpdate.sequence == 0))
        if first_sent is not None:
            return await earlier_recipients(session, notice)
    org_ids = (await session.scalars(
        select(NoticeTarget.organisation_id).where(NoticeTarget.notice_id == notice.id))).all()
    active, _ = await lists.subscribers(session, org_ids, NoticeKind(notice.kind))
    return active


async def _first_recipients(session: AsyncSession, settings: Settings, renderer: Renderer,
                            notice: Notice, now: datetime) -> list[Recipient]:
    org_ids = (await session.scalars(
        select(NoticeTarget.organisation_id).where(NoticeTarget.notice_id == notice.id))).all()
    active, _ = await lists.subscribers(session, org_ids, NoticeKind(notice.kind))
    failing = await _suspend_failing(session, settings, renderer, org_ids, now)
    return [r for r in active if (r.organisation_id, r.address) not in failing]


async def earlier_recipients(session: AsyncSession, notice: Notice) -> list[Recipient]:
    first = select(NoticeUpdate.id).where(NoticeUpdate.notice_id == notice.id,
                                          NoticeUpdate.sequence == 0).scalar_subquery()
    stmt = (select(NoticeDelivery.organisation_id, Organisation.name, NoticeDelivery.address,
                   NoticeDelivery.timezone)
            .join(Organisation, Organisation.id == NoticeDelivery.organisation_id)
            .join(DistributionList, (DistributionList.organisation_id == NoticeDelivery.organisation_id)
                  & (DistributionList.address == NoticeDelivery.address))
            .where(NoticeDelivery.update_id == first, DistributionList.suspended_at.is_(None))
            .order_by(NoticeDelivery.id))
    return [Recipient(*row) for row in (await session.execute(stmt)).all()]


async def _suspend_failing(session: AsyncSession, settings: Settings, renderer: Renderer,
                           org_ids: Sequence[int], now: datetime) -> set[tuple[int, str]]:
    """Suspend the organisations' lists whose failures reached the threshold; tell care
    management once for each. Returns the (organisation, address) pairs suspended now."""
    counts = await lists.failure_counts(session, org_ids)
    threshold = settings.notices.suspend_after_failures
    failing = [lid for lid, (n, _) in counts.items() if n >= threshold]
    if not failing:
        return set()
    suspended: set[tuple[int, str]] = set()
    rows = (await session.scalars(select(DistributionList).where(
        DistributionList.id.in_(failing), DistributionList.suspended_at.is_(None)))).all()
    for row in rows:
        failures, reply = counts[row.id]
        row.suspended_at = now
        suspended.add((row.organisation_id, row.address))
        org = await session.get(Organisation, row.organisation_id)
        await send_internal(
            session, settings, renderer, kind=MailKind.LIST_SUSPENDED, now=now,
            context={"list": {"address": row.address, "failures": failures, "last_failure": reply},
                     "organisation": {"name": org.name if org else "?"}},
            dedupe_key=dedupe.list_suspended(row.id, now),
        )
    return suspended
