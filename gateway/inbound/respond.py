"""Answers decided by the stages go through the outbox, in the message's transaction.

Automatic answers to a sender are capped per address and 24 hours
(``limits.auto_replies_per_sender_per_day``) so that a loop with another robot, or a flood of
forged mail, cannot make us a spam cannon. We never answer an empty sender or ourselves.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import InvalidValue
from gateway.inbound.context import Ctx, Deps
from gateway.inbound.sender_identity import ascii_lower
from gateway.outbound import dedupe
from gateway.outbound.compose import check_address, check_message_id
from gateway.outbound.kinds import MailKind
from gateway.outbound.outbox import Mail

ANONYMOUS = frozenset({MailKind.UNAUTHORIZED_SENDER, MailKind.NEW_CASE_REFUSED})
"""Answers tied to no case, so that nothing, not even a reply to them, leads back to one."""


async def respond(ctx: Ctx, session: AsyncSession, deps: Deps) -> list[str]:
    """Enqueue the context's replies; returns what happened to each, for the trail."""
    notes: list[str] = []
    for reply in ctx.replies:
        name, address = reply.to or (ctx.mail.from_name, ctx.sender)
        address = ascii_lower(address)
        if not address or address in deps.our_addresses:
            notes.append(f"{reply.kind.value}: not sent (no sender to answer)")
            continue
        if not _deliverable(address):
            notes.append(f"{reply.kind.value}: not sent (cannot send to {address!r})")
            continue
        limit = deps.settings.limits.auto_replies_per_sender_per_day
        if reply.automatic and await ctx.lookups.answers_today(address) >= limit:
            notes.append(f"{reply.kind.value}: not sent (rate limit for {address})")
            continue
        key = dedupe.inbound_answer(ctx.row.id, reply.kind.value)
        if await ctx.lookups.answered(ctx.row.id, key):
            notes.append(f"{reply.kind.value}: queued before")
            continue
        message_id = _valid_message_id(ctx.mail.message_id)
        await deps.mailer.enqueue_new(session, Mail(
            kind=reply.kind, to=[(name, address)], context=reply.context,
            dedupe_key=key,
            case_id=ctx.case.id if ctx.case is not None and reply.kind not in ANONYMOUS else None,
            inbound_message_id=ctx.row.id,
            in_reply_to=message_id or None,
            references=[*ctx.mail.references, message_id] if message_id else list(ctx.mail.references),
        ))
        ctx.lookups.count_answer(reply.kind, address)
        notes.append(f"{reply.kind.value}: queued to {address}")
    return notes


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
