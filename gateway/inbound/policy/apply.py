"""The last stage: a designated contact's mail about a case takes effect.

Closed cases are not updated by mail: within 30 days the sender learns how to request a
re-open (the attempt goes on the timeline); after that, that the case cannot be re-opened.
On an open case the new text (our quoted mail, quote headers and signature stripped, raw kept;
the whole text, flagged, when stripping would leave nothing) and the attachments go on the
timeline; a case waiting for the customer goes back to in progress, which stops the
follow-up timer; "Escalation Request" on the first line escalates to care management.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway import cases
from gateway.cases.mail import case_context, closed_context, contact_context
from gateway.db import queue_insert
from gateway.domain import WHOLE_TEXT_KEPT, CaseStatus, Disposition, EventKind
from gateway.inbound.mail.reply_text import NewText, first_line
from gateway.inbound.policy.context import Finish, MessageContext, Outcome, Reply, Services
from gateway.models import Attachment, Case, CaseEvent
from gateway.outbound.kinds import MailKind

ESCALATION = re.compile(r"^\W*escalation\s+request\b", re.IGNORECASE)


async def apply_update(ctx: MessageContext, session: AsyncSession, services: Services) -> Outcome:
    assert ctx.case is not None and ctx.contact is not None
    case, mail = ctx.case, ctx.mail
    extracted = await _new_text(ctx, services)
    text = extracted.text
    ctx.row.new_text = text
    now = services.clock.now()
    if case.status == CaseStatus.CLOSED:
        return await _closed(ctx, session, services, case, text, _case_ctx(ctx, services))
    data: dict[str, Any] = {"attachments": len(mail.attachments)} if mail.attachments else {}
    if extracted.kept_whole:
        data[WHOLE_TEXT_KEPT] = True
    queue_insert(session, CaseEvent, **cases.event(
        case, services.clock, EventKind.CUSTOMER_REPLY, ctx.contact.email, text,
        inbound_message_id=ctx.row.id,
        data=data or None))
    for part in mail.attachments:
        queue_insert(
            session, Attachment,
            inbound_message_id=ctx.row.id, case_id=case.id, filename=part.filename[:500] or "attachment",
            content_type=part.content_type[:200], size=len(part.payload),
            sha256=part.sha256, content=part.payload,
        )
    detail = "update added" + ("; whole text kept, extraction in doubt" if extracted.kept_whole else "")
    if CaseStatus(case.status).waits_for_customer:
        cases.set_status(case, CaseStatus.IN_PROGRESS, now)
        detail += "; back to in progress, follow-up timer stopped"
    else:
        case.updated_at = now
    if ESCALATION.match(first_line(text)):
        detail += "; " + await _escalate(ctx, session, services, case, text, _case_ctx(ctx, services))
    return Finish(Disposition.APPLIED, detail)


async def _new_text(ctx: MessageContext, services: Services) -> NewText:
    """The reply's new text, our quoted mail taken out by comparing it with what we sent on
    the case (read only when the reply quotes something that may be ours)."""
    assert ctx.case is not None
    mail = ctx.mail
    extracted = ctx.new_text
    assert extracted is not None, "a message that may update a case comes with its new text"
    if extracted.pending is None:
        return extracted
    sent = await ctx.lookups.sent_text(ctx.case.id, [*mail.in_reply_to, *mail.references])
    return extracted.settle(sent)


def _case_ctx(ctx: MessageContext, services: Services) -> dict[str, Any]:
    """What the answers about the case show (only an answer needs it: not worked out for
    every update)."""
    assert ctx.case is not None and ctx.contact is not None
    return {"case": case_context(services.settings, services.keys[0], ctx.case),
            "contact": contact_context(ctx.contact), "recipient_tz": ctx.case.organisation.timezone}


async def _closed(
    ctx: MessageContext, session: AsyncSession, services: Services, case: Case, text: str,
    case_ctx: dict[str, Any],
) -> Outcome:
    assert ctx.contact is not None
    context = {**case_ctx, **closed_context(case), "message": text}
    if cases.reopenable(case, services.clock.now()):
        queue_insert(session, CaseEvent, **cases.event(
            case, services.clock, EventKind.REOPEN_REQUESTED, ctx.contact.email, text,
            inbound_message_id=ctx.row.id))
        ctx.replies.append(Reply(MailKind.CLOSED_CASE_REPLY, context))
        return Finish(Disposition.REFUSED_CLOSED_CASE, "case closed less than 30 days ago: re-open guidance")
    queue_insert(session, CaseEvent, **cases.event(
        case, services.clock, EventKind.REOPEN_REFUSED, ctx.contact.email, text,
        inbound_message_id=ctx.row.id))
    ctx.replies.append(Reply(MailKind.NOT_REOPENABLE, context))
    return Finish(Disposition.REFUSED_NOT_REOPENABLE, "case closed 30 days ago or more")


async def _escalate(
    ctx: MessageContext, session: AsyncSession, services: Services, case: Case, text: str,
    case_ctx: dict[str, Any],
) -> str:
    assert ctx.contact is not None
    case.escalated = True
    case.escalated_at = services.clock.now()
    queue_insert(session, CaseEvent, **cases.event(
        case, services.clock, EventKind.ESCALATED, ctx.contact.email, text, inbound_message_id=ctx.row.id))
    address = services.settings.mail.escalation_address
    ctx.replies.append(Reply(
        MailKind.ESCALATION_TO_MANAGEMENT,
        {**case_ctx, "message": text, "organisation": {"name": case.organisation.name}},
        automatic=False, to=("Care management", address),
    ))
    return f"escalated to {address}"
