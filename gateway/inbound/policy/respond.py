"""Answers decided by the stages go through the outbox, in the message's transaction.

Automatic answers are capped per address and 24 hours
(``limits.auto_replies_per_sender_per_day``) and for all addresses together per hour
(``limits.auto_replies_per_hour``; care management is told once an hour when that cap holds
answers back), so that a loop with another robot, or a flood of forged mail to ever new
addresses, cannot make us a spam cannon. They repeat nothing of the sender's but a short
cleaned display name. We never answer an empty sender or ourselves.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.addresses import ascii_lower
from gateway.errors import InvalidValue
from gateway.inbound.mail.clean import short_name
from gateway.inbound.policy.context import MessageContext, Services
from gateway.outbound import dedupe
from gateway.outbound.compose import check_address, check_message_id
from gateway.outbound.kinds import MailKind
from gateway.outbound.outbox import Mail

REFERENCES_KEPT = 5
"""Message-IDs of the thread repeated in an answer's References (besides the message's own)."""
ANONYMOUS = frozenset({MailKind.UNAUTHORIZED_SENDER, MailKind.NEW_CASE_REFUSED})
"""Answers tied to no case, so that nothing, not even a reply to them, leads back to one."""


async def respond(ctx: MessageContext, session: AsyncSession, services: Services) -> list[str]:
    """Enqueue the context's replies; returns what happened to each, for the trail."""
    notes: list[str] = []
    for reply in ctx.replies:
        name, address = reply.to or (short_name(ctx.mail.from_name), ctx.sender)
        address = ascii_lower(address)
        if not address or address in services.our_addresses:
            notes.append(f"{reply.kind.value}: not sent (no sender to answer)")
            continue
        if not _deliverable(address):
            notes.append(f"{reply.kind.value}: not sent (cannot send to {address!r})")
            continue
        limit = services.settings.limits.auto_replies_per_sender_per_day
        if reply.automatic and await ctx.lookups.answers_today(address) >= limit:
            notes.append(f"{reply.kind.value}: not sent (rate limit for {address})")
            continue
        hourly = services.settings.limits.auto_replies_per_hour
        if reply.automatic and await ctx.lookups.answers_this_hour() >= hourly:
            notes.append(f"{reply.kind.value}: not sent (limits.auto_replies_per_hour, {hourly}, reached)")
            await _tell_care_once(ctx, session, services, hourly)
            continue
        key = dedupe.inbound_answer(ctx.row.id, reply.kind.value)
        if await ctx.lookups.answered(ctx.row.id, key):
            notes.append(f"{reply.kind.value}: queued before")
            continue
        message_id = _valid_message_id(ctx.mail.message_id)
        await services.mailer.enqueue_new(session, Mail(
            kind=reply.kind, to=[(name, address)], context=reply.context,
            dedupe_key=key,
            case_id=ctx.case.id if ctx.case is not None and reply.kind not in ANONYMOUS else None,
            inbound_message_id=ctx.row.id,
            in_reply_to=message_id or None,
            references=_references(ctx.mail.references, message_id),
        ))
        ctx.lookups.count_answer(reply.kind, address)
        notes.append(f"{reply.kind.value}: queued to {address}")
    return notes


async def _tell_care_once(ctx: MessageContext, session: AsyncSession, services: Services, limit: int) -> None:
    """Mail care management that automatic answers are held back, once per clock hour."""
    now = services.clock.now()
    key = dedupe.auto_replies_paused(now)
    if await ctx.lookups.queued(key):
        return
    await services.mailer.enqueue_new(session, Mail(
        kind=MailKind.AUTO_REPLIES_PAUSED,
        to=[("Care management", services.settings.mail.escalation_address)],
        context={"limit": limit, "paused_at": now}, dedupe_key=key,
    ))
    ctx.lookups.remember_queued(key)


def _references(theirs: Sequence[str], message_id: str | None) -> list[str]:
    """Our answer's References: the message's own and the last few of its thread, not the
    hundred a stranger may list (each echoed to whatever address the From names)."""
    kept = [i for i in theirs[-REFERENCES_KEPT:] if _valid_message_id(i)]
    return [*kept, message_id] if message_id else kept


def _deliverable(address: str) -> bool:
    try:
        check_address(address)
    except InvalidValue:
        return False
    return True


def _valid_message_id(message_id: str | None) -> str | None:
    """The sender's Message-ID if it can go into our In-Reply-To (some clients write junk)."""
    if not message_id:
        return None
    try:
        return check_message_id(message_id)
    except InvalidValue:
        return None
