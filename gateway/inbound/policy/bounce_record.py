"""A bounce is matched to the outbound message it reports on, and each failed recipient is
recorded on that message (and on the case's timeline); it is never answered."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from gateway import cases
from gateway.clock import Clock
from gateway.db import queue_insert
from gateway.domain import EventKind, RecipientStatus
from gateway.inbound.mail.bounce import BounceReport
from gateway.inbound.policy.lookups import Lookups, bounced_ids
from gateway.inbound.policy.record import DecidedRow
from gateway.models import Case, CaseEvent, Outbox, OutboxRecipient


async def record_bounce(
    session: AsyncSession, lookups: Lookups, clock: Clock, row: DecidedRow, report: BounceReport | None
) -> str:
    if report is None or not report.recipients:
        return "no failed recipient found"
    ids = bounced_ids(report)
    outbound = await lookups.outbound(ids) if ids else []
    if not outbound:
        failed = ", ".join(r.address for r in report.recipients)
        return f"failed {failed}; the original message is not one of ours"
    now = clock.now()
    notes = []
    for message in outbound:
        by_address = {r.address.lower(): r for r in message.recipients}
        for failure in report.recipients:
            target: OutboxRecipient | None = by_address.get(failure.address.lower())
            if target is None:
                continue
            target.last_reply = f"bounce {failure.status}: {failure.diagnostic}"[:2000]
            if failure.permanent:
                target.status = RecipientStatus.BOUNCED
                target.bounced_at = now
            notes.append(f"{failure.address} {failure.status or '?'} "
                         f"{'permanent' if failure.permanent else 'temporary'} on outbox {message.id}")
            if message.case_id is not None:
                await _case_event(session, clock, message, failure.address, failure.status,
                                  failure.permanent, row.id)
    return "; ".join(notes) or "failed recipients are not among the message's recipients"


async def _case_event(
    session: AsyncSession, clock: Clock, message: Outbox, address: str, status: str, permanent: bool,
    inbound_id: int,
) -> None:
    case = await session.get(Case, message.case_id)
    if case is None:
        return
    text = (f"Delivery of {message.kind} to {address} failed "
            f"({'permanently' if permanent else 'temporarily'}, status {status or 'unknown'})")
    queue_insert(session, CaseEvent, **cases.event(
        case, clock, EventKind.DELIVERY_FAILED, cases.SYSTEM, text, inbound_message_id=inbound_id,
        outbox_id=message.id))
