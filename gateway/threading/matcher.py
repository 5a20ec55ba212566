"""Which case does an inbound message belong to?

In this order (DESIGN.md, "Reference IDs"):
1. In-Reply-To / References naming a Message-ID we sent for a case;
2. the reference token in the (RFC 2047-decoded, decoration-stripped) subject;
3. the token in the body, text or HTML; only when 1 and 2 found nothing, because bodies
   quote older mail.
A header match and a subject token that name different cases, or two cases in one place,
make the message ambiguous: the caller quarantines it, never guesses. Tokens whose MAC fails
count as none; they are returned so the caller can record a security event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import Case, Outbox
from gateway.threading.text import html_to_text
from gateway.threading.token import verified_case_numbers

BODY_SCAN_CHARS = 200_000


@dataclass
class Match:
    case_numbers: set[str] = field(default_factory=set)
    via: str = "none"
    """"header", "subject", "body" or "none"."""
    forged: list[str] = field(default_factory=list)
    """Token-shaped strings whose MAC did not verify."""
    case_ids_by_header: set[int] = field(default_factory=set)

    @property
    def ambiguous(self) -> bool:
        return len(self.case_numbers) > 1


async def match_message(
    session: AsyncSession,
    *,
    message_ids: Sequence[str],
    subject: str,
    text_body: str,
    html_body: str,
    keys: Sequence[bytes],
) -> Match:
    match = Match()
    header_numbers = await _numbers_by_header(session, message_ids)
    subject_numbers, bad = verified_case_numbers(subject, keys)
    match.forged.extend(str(c) for c in bad)
    if header_numbers or subject_numbers:
        match.case_numbers = header_numbers | subject_numbers
        match.via = "header" if header_numbers else "subject"
        if header_numbers and subject_numbers and header_numbers != subject_numbers:
            match.via = "header+subject"
        return match
    body = text_body[:BODY_SCAN_CHARS]
    if html_body:
        body += "\n" + html_to_text(html_body, BODY_SCAN_CHARS)
    body_numbers, bad = verified_case_numbers(body, keys)
    match.forged.extend(str(c) for c in bad)
    if body_numbers:
        match.case_numbers, match.via = body_numbers, "body"
    return match


async def _numbers_by_header(session: AsyncSession, message_ids: Sequence[str]) -> set[str]:
    ids = [m for m in dict.fromkeys(message_ids) if m][:100]
    if not ids:
        return set()
    rows = await session.execute(
        select(Case.number).join(Outbox, Outbox.case_id == Case.id).where(Outbox.message_id.in_(ids))
    )
    return {n for (n,) in rows.all() if n is not None}
