"""What the parse worker processes run: a message's bytes to :class:`Parsed` (the parsed
mail, its reference tokens and the sender's new words), never raising.

The worker processes import this module and only what it needs (no database, no templates,
no IMAP): the fork server they start from loads it once, in a fraction of the time the whole
program takes, so the first batch is not kept waiting for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.errors import MessageRejected
from gateway.inbound.mail.classify import never_applied
from gateway.inbound.mail.clean import clean_line
from gateway.inbound.mail.parse import parse_message
from gateway.inbound.mail.parsed import Limits, ParsedMail
from gateway.inbound.mail.reply_text import NewText, extract, whole_text
from gateway.threading.matcher import TokenScan, scan_tokens


@dataclass(frozen=True)
class Parsed:
    """What a worker process makes of a message's bytes."""

    mail: ParsedMail | None
    problem: str | None = None
    """Why the message cannot be processed (it is quarantined)."""
    new_text: NewText | None = None
    """The sender's new words, quotes stripped as far as the message alone tells (the
    CPU-heavy part of applying a reply); only for a message that may be a reply to a case."""
    tokens: TokenScan | None = None
    """The reference tokens of its subject and body."""

    @property
    def quotes_maybe_ours(self) -> bool:
        """Its new text waits for a comparison with the mail we sent."""
        return self.new_text is not None and self.new_text.pending is not None


def parse_safely(raw: bytes, limits: Limits, keys: Sequence[bytes] = ()) -> Parsed:
    """Runs in a worker process: the parsed mail, its tokens and new text, or why it cannot be
    processed. The pipeline does none of this work again."""
    try:
        mail = parse_message(raw, limits)
    except MessageRejected as exc:
        return Parsed(None, str(exc))
    except Exception as exc:  # the parser promises not to raise; a bug still must not stall us
        return Parsed(None, clean_line(f"parser failed: {type(exc).__name__}: {exc}")[:1000])
    try:
        tokens = scan_tokens(mail.subject, mail.text_body, mail.html_body, keys)
    except Exception as exc:  # a bug: the message cannot be matched, a person must look at it
        return Parsed(None, clean_line(f"reference scan failed: {type(exc).__name__}: {exc}")[:1000])
    text = None
    if _may_be_applied(mail, tokens):
        try:
            text = extract(mail.text_body, mail.html_body, limits.max_new_text_chars, mail.attachments)
        except Exception:  # the extraction must not lose the update: the whole text, flagged
            text = whole_text(mail.text_body, mail.html_body, limits.max_new_text_chars)
    return Parsed(mail, None, text, tokens)


def _may_be_applied(mail: ParsedMail, tokens: TokenScan) -> bool:
    """Whether the message may reach the apply stage: not a bounce or an auto-reply, and it
    refers to a case (or we could not tell)."""
    if never_applied(mail):
        return False
    if mail.in_reply_to or mail.references:
        return True
    return bool(tokens.subject or tokens.body)


def parse_chunk(raws: Sequence[bytes], limits: Limits, keys: Sequence[bytes]) -> list[Parsed]:
    """:func:`parse_safely` of several messages: one round trip to a worker for several
    messages (each call costs both processes pickling and wake-ups)."""
    return [parse_safely(raw, limits, keys) for raw in raws]
