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

from gateway.threading.text import html_to_text
from gateway.threading.token import verified_case_numbers

BODY_SCAN_CHARS = 200_000


@dataclass(frozen=True)
class TokenScan:
    """The reference tokens of a message's subject and body: CPU work without the database,
    done in the parse worker."""

    subject: frozenset[str] = frozenset()
    subject_forged: tuple[str, ...] = ()
    body: frozenset[str] = frozenset()
    """Not scanned (empty) when the subject has a valid token: the body is not consulted then."""
    body_forged: tuple[str, ...] = ()


def scan_tokens(subject: str, text_body: str, html_body: str, keys: Sequence[bytes]) -> TokenScan:
    subject_numbers, bad = verified_case_numbers(subject, keys)
    subject_forged = tuple(str(c) for c in bad)
    if subject_numbers:
        return TokenScan(frozenset(subject_numbers), subject_forged)
    body = text_body[:BODY_SCAN_CHARS]
    if html_body:
        body += "\n" + html_to_text(html_body, BODY_SCAN_CHARS)
    body_numbers, bad = verified_case_numbers(body, keys)
    return TokenScan(frozenset(), subject_forged, frozenset(body_numbers), tuple(str(c) for c in bad))


@dataclass
class Match:
    case_numbers: set[str] = field(default_factory=set)
    via: str = "none"
    """"header", "subject", "body" or "none"."""
    forged: list[str] = field(default_factory=list)
    """Token-shaped strings whose MAC did not verify."""

    @property
    def ambiguous(self) -> bool:
        return len(self.case_numbers) > 1


def match_message(header_numbers: set[str], scan: TokenScan) -> Match:
    """Decide from the case numbers the In-Reply-To/References name (``header_numbers``, looked
    up in the outbox) and the message's tokens."""
    match = Match(forged=list(scan.subject_forged))
    if header_numbers or scan.subject:
        match.case_numbers = header_numbers | scan.subject
        match.via = "header" if header_numbers else "subject"
        if header_numbers and scan.subject and header_numbers != scan.subject:
            match.via = "header+subject"
        return match
    match.forged.extend(scan.body_forged)
    if scan.body:
        match.case_numbers, match.via = set(scan.body), "body"
    return match


def referenced_ids(message_ids: Sequence[str]) -> list[str]:
    """The In-Reply-To/References values worth looking up (distinct, at most 100)."""
    return [m for m in dict.fromkeys(message_ids) if m][:100]
