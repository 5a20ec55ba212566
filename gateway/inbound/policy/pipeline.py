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
from gateway.inbound.mail.analysis import Parsed
from gateway.inbound.policy import stages
from gateway.inbound.policy.apply import apply_update
from gateway.inbound.policy.context import Finish, MessageContext, Next, Outcome, Quarantine, Services
from gateway.inbound.policy.lookups import Lookups
from gateway.inbound.policy.record import DecidedRow
from gateway.inbound.policy.respond import respond

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
    row: DecidedRow,
    mailbox: MailboxSettings,
    parsed: Parsed,
    lookups: Lookups,
) -> MessageContext:
    """Run the stages on ``row`` (what a parse worker made of the message: ``parsed``; what
    the database knows, prefetched for its group: ``lookups``) and record the outcome on it.
    The caller writes the row and what the stages queued
    (:func:`~gateway.inbound.loop.store.write_decided`) and commits."""
    ctx = MessageContext(row=row, parsed=parsed.mail, lookups=lookups, parse_error=parsed.problem,
                         new_text=parsed.new_text, tokens=parsed.tokens)
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


def quarantine_after_failures(
    row: DecidedRow, attempts: int, last_error: str, mailbox: MailboxSettings, services: Services
) -> None:
    """The message failed its pipeline ``attempts`` times: quarantined, with the last error."""
    trail = [{"stage": "pipeline", "outcome": "quarantine",
              "detail": f"failed {attempts} times; last error: {last_error}"}]
    finish(row, Disposition.QUARANTINED, trail, mailbox, services, error=last_error)


def finish(
    row: DecidedRow, disposition: Disposition, trail: list[dict[str, str]],
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
