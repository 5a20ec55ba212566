"""The inbound stages before a case is touched. Each answers one question and returns an
explicit outcome (see :mod:`gateway.inbound.policy.context`); the pipeline records the trail."""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import queue_insert
from gateway.domain import Disposition
from gateway.inbound.mail.classify import classify as classify_mail
from gateway.inbound.mail.clean import short_name
from gateway.inbound.mail.parsed import ParsedMail
from gateway.inbound.policy.authenticate import dmarc_failed, dmarc_passed
from gateway.inbound.policy.bounce_record import record_bounce
from gateway.inbound.policy.context import Finish, MessageContext, Next, Outcome, Quarantine, Reply, Services
from gateway.inbound.policy.record import shown_fields
from gateway.models import SecurityEvent
from gateway.outbound.kinds import MailKind
from gateway.threading.matcher import match_message

log = structlog.get_logger(__name__)


async def check_parsed(ctx: MessageContext, session: AsyncSession, services: Services) -> Outcome:
    if ctx.parse_error is not None or ctx.parsed is None:
        return Quarantine(ctx.parse_error or "message could not be parsed")
    mail = ctx.mail
    for key, value in shown_fields(mail).items():
        setattr(ctx.row, key, value)
    ctx.row.content_hash = mail.fingerprint
    return Next(f"from {mail.from_address or '(none)'}")


async def dedupe(ctx: MessageContext, session: AsyncSession, services: Services) -> Outcome:
    """The same mail delivered twice (two of our addresses, two mailboxes) is one update."""
    if not ctx.row.message_id:
        return Next("no Message-ID")
    earlier = await ctx.lookups.original_of(ctx.row.message_id, ctx.row.content_hash, ctx.row.id)
    if earlier is not None:
        return Finish(Disposition.DUPLICATE, f"same as inbound message {earlier}")
    return Next()


async def classify(ctx: MessageContext, session: AsyncSession, services: Services) -> Outcome:
    """Loops, bounces, auto-replies and list traffic are recorded and never answered."""
    found = classify_mail(ctx.mail, our_domain=services.settings.mail.id_domain,
                          our_addresses=services.our_addresses)
    ctx.classification = found
    if found.kind == "loop":
        return Finish(Disposition.LOOP_DROPPED, found.reason)
    if found.kind == "bounce":
        detail = await record_bounce(session, ctx.lookups, services.clock, ctx.row, found.bounce)
        return Finish(Disposition.BOUNCE, f"{found.reason}; {detail}")
    if found.kind in ("auto_reply", "list", "null_sender"):
        return Finish(Disposition.AUTO_REPLY_IGNORED, found.reason)
    return Next(found.reason or "a person's mail")


async def identify(ctx: MessageContext, session: AsyncSession, services: Services) -> Outcome:
    """The sender is the one mailbox of the one From header, parsed strictly; mail whose From
    names no single sender (several, none, group or route syntax, a display name that is
    another address) is never applied, and not answered: whom it came from is unknown."""
    problem = ctx.mail.sender_problem
    if not problem:
        return Next()
    await security_event(session, services, ctx, "ambiguous_sender", problem)
    return Finish(Disposition.REFUSED_UNAUTHORIZED, f"no single sender to trust: {problem}")


async def match(ctx: MessageContext, session: AsyncSession, services: Services) -> Outcome:
    mail = ctx.mail
    tokens = ctx.tokens
    assert tokens is not None, "a parsed mail comes with its reference tokens"
    found = match_message(await ctx.lookups.numbers_by_message_ids([*mail.in_reply_to, *mail.references]),
                          tokens)
    for forged in found.forged:
        await security_event(session, services, ctx, "invalid_reference", f"token {forged!r} failed its MAC")
    if found.ambiguous:
        return Quarantine(f"refers to several cases: {', '.join(sorted(found.case_numbers))} ({found.via})")
    if not found.case_numbers:
        notice = await ctx.lookups.replied_notice(mail.subject, [*mail.in_reply_to, *mail.references])
        ctx.replies.append(Reply(MailKind.NEW_CASE_REFUSED,
                                 {"sender": sender_context(mail), "notice_reference": notice}))
        return Finish(Disposition.REFUSED_NEW_CASE, "no valid reference: cases are not opened by email")
    number = next(iter(found.case_numbers))
    case = await ctx.lookups.case(number)
    if case is None:
        return Quarantine(f"reference to case {number}, which does not exist")
    ctx.case = case
    ctx.row.case_id = case.id
    return Next(f"case {number} by {found.via}")


async def authorise(ctx: MessageContext, session: AsyncSession, services: Services) -> Outcome:
    """Only a designated contact of the case's organisation may update it; the refusal says
    nothing about the case."""
    assert ctx.case is not None
    mail = ctx.mail
    refuse = Finish(Disposition.REFUSED_UNAUTHORIZED, "")
    reason = ""
    inbound = services.settings.inbound
    if dmarc_failed(mail.headers, inbound.trusted_authserv_ids):
        reason = "DMARC failed at a trusted authserv-id"
    elif inbound.require_dmarc_pass and not dmarc_passed(mail.headers, inbound.trusted_authserv_ids,
                                                          mail.from_address):
        reason = "no DMARC pass from a trusted authserv-id (inbound.require_dmarc_pass)"
    else:
        contact = await ctx.lookups.contact(ctx.case.organisation_id, mail.from_address) \
            if mail.from_address else None
        if contact is None or not contact.designated:
            reason = f"{mail.from_address or '(no sender)'} is not a designated contact"
        else:
            ctx.contact = contact
            return Next(f"designated contact {contact.email}")
    await security_event(session, services, ctx, "unauthorized_sender",
                         f"{reason}; valid reference to case {ctx.case.number}")
    ctx.replies.append(Reply(MailKind.UNAUTHORIZED_SENDER, {"sender": sender_context(mail)}))
    return Finish(refuse.disposition, reason)


def sender_context(mail: ParsedMail) -> dict[str, str]:
    """All an automatic answer repeats of the sender's: the address, and a short cleaned name."""
    return {"email": mail.from_address, "name": short_name(mail.from_name)}


async def security_event(
    session: AsyncSession, services: Services, ctx: MessageContext, kind: str, detail: str
) -> None:
    log.warning("security_event", kind=kind, detail=detail, inbound_id=ctx.row.id, sender=ctx.sender)
    queue_insert(session, SecurityEvent, at=services.clock.now(), kind=kind, detail=detail,
                 inbound_message_id=ctx.row.id)
