"""One inbound message, one transaction: the stages in order, the trail of what each decided,
the disposition, and the answers through the outbox.

``store raw`` happened before (the row exists); ``parse`` ran in a worker process; here:
check -> dedupe -> classify -> identify -> match -> authorise -> apply, then respond. The caller commits,
then moves the IMAP copy to :func:`folder_for` the disposition.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import MailboxSettings
from gateway.domain import Disposition
from gateway.inbound.loop.store import InboundRow
from gateway.inbound.mail.parse import ParsedMail
from gateway.inbound.mail.reply_text import NewText
from gateway.inbound.policy import stages
from gateway.inbound.policy.apply import apply_update
from gateway.inbound.policy.context import Finish, MessageContext, Next, Outcome, Quarantine, Services
from gateway.inbound.policy.lookups import Lookups
from gateway.inbound.policy.respond import respond
from gateway.threading.matcher import TokenScan

Stage = Callable[[MessageContext, AsyncSession, Services], Awaitable[Outcome]]

STAGES: list[tuple[str, Stage]] = [
    ("parse", stages.check_parsed),
    ("dedupe", stages.dedupe),
    ("classify", stages.classify),
    ("identify", stages.identify),
    ("match", stages.match),
    ("authorise", stages.authorise),
    ("apply", apply_update),
]

REFUSED = {
    Disposition.REFUSED_NEW_CASE, Disposition.REFUSED_CLOSED_CASE,
    Disposition.REFUSED_NOT_REOPENABLE, Disposition.REFUSED_UNAUTHORIZED,
}


def folder_for(disposition: str, mailbox: MailboxSettings) -> str:
    if disposition == Disposition.QUARANTINED:
        return mailbox.quarantine_folder
    if disposition in REFUSED:
        return mailbox.refused_folder
    return mailbox.processed_folder


async def run_pipeline(
    session: AsyncSession,
    services: Services,
    row: InboundRow,
    mailbox: MailboxSettings,
    parsed: ParsedMail | None,
    parse_error: str | None = None,
    *,
    new_text: NewText | None = None,
    tokens: TokenScan | None = None,
    lookups: Lookups | None = None,
) -> MessageContext:
    """Run the stages on ``row`` and record the outcome on it. The caller inserts what the
    stages queued (answers: :func:`~gateway.outbound.outbox.insert_queued_in_bulk`; timeline
    events, attachments, security events: :func:`~gateway.db.insert_queued`), flushes and
    commits.
    ``new_text`` (the reply's reading, which the apply stage finishes) and ``tokens`` (its reference tokens)
    are passed when a worker worked them out already; ``lookups`` when the caller prefetched
    for a group of messages."""
    if lookups is None:
        lookups = Lookups(session, services.clock.now())
    ctx = MessageContext(row=row, parsed=parsed, lookups=lookups, parse_error=parse_error, new_text=new_text,
              tokens=tokens)
    outcome: Outcome = Next()
    for name, stage in STAGES:
        outcome = await stage(ctx, session, services)
        ctx.trail.append(_trail(name, outcome))
        if not isinstance(outcome, Next):
            break
    if isinstance(outcome, Quarantine):
        finish(row, Disposition.QUARANTINED, ctx.trail, mailbox, services, error=outcome.detail)
        return ctx
    assert isinstance(outcome, Finish), f"the last stage must finish, got {outcome!r}"
    for note in await respond(ctx, session, services):
        ctx.trail.append({"stage": "respond", "outcome": "continue", "detail": note})
    finish(row, outcome.disposition, ctx.trail, mailbox, services)
    return ctx


def finish(
    row: InboundRow, disposition: Disposition, trail: list[dict[str, str]],
    mailbox: MailboxSettings, services: Services, error: str | None = None,
) -> None:
    row.disposition = disposition
    row.trail = trail
    row.processed_at = services.clock.now()
    row.target_folder = folder_for(disposition, mailbox)
    if error is not None:
        row.error = error


def _trail(stage: str, outcome: Outcome) -> dict[str, str]:
    if isinstance(outcome, Next):
        return {"stage": stage, "outcome": "continue", "detail": outcome.detail}
    if isinstance(outcome, Finish):
        return {"stage": stage, "outcome": outcome.disposition.value, "detail": outcome.detail}
    return {"stage": stage, "outcome": "quarantine", "detail": outcome.detail}
