"""The new text of a customer's reply: what they wrote, without the quoted mail below it.

Our own marker goes first (every case mail we send starts with it, so the customer's text is
everything above the line that carries it); then mail-parser-reply strips quotes and
signatures in the languages our customers write. mail-parser-reply is very slow on long lines
(10 k characters: seconds), so its input is capped and wrapped, and it runs in a worker thread
with a deadline; if it is too slow, the capped text is kept as it is.
"""

from __future__ import annotations

import asyncio
import textwrap
from functools import cache

from mailparser_reply import EmailReplyParser

from gateway.outbound.render import REPLY_MARKER
from gateway.threading.text import html_to_text

LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "ja", "da", "sv", "pl"]
MAX_LINE = 500
STRIP_TIMEOUT_SECONDS = 5.0
_MARKER_CORE = REPLY_MARKER.strip("- ").lower()


@cache
def _parser() -> EmailReplyParser:
    return EmailReplyParser(languages=LANGUAGES)


def above_marker(text: str) -> str:
    """Everything before the first line that carries our reply marker (quoted or not)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if _MARKER_CORE in line.lower():
            return "\n".join(lines[:i])
    return text


def cap(text: str, max_chars: int) -> str:
    """At most ``max_chars`` characters, no line longer than :data:`MAX_LINE`."""
    text = text[:max_chars]
    if all(len(line) <= MAX_LINE for line in text.splitlines()):
        return text
    return "\n".join(
        textwrap.fill(line, MAX_LINE, break_long_words=True, replace_whitespace=False) or line
        for line in text.splitlines()
    )


def strip_quotes(text: str) -> str:
    """mail-parser-reply's reading of the reply (blocking; call through :func:`new_text`)."""
    reply: str = _parser().parse_reply(text=text)
    return reply


def new_text_now(text_body: str, html_body: str, max_chars: int) -> str:
    """:func:`new_text` without the deadline, for a worker process (input capped all the same)."""
    mine = _own_part(text_body, html_body, max_chars)
    return (strip_quotes(mine) or mine).strip()


def _own_part(text_body: str, html_body: str, max_chars: int) -> str:
    source = text_body if text_body.strip() else html_to_text(html_body, max_chars * 4)
    return cap(above_marker(source.replace("\r\n", "\n").replace("\r", "\n")), max_chars)


async def new_text(text_body: str, html_body: str, max_chars: int) -> str:
    """The customer's new words from a reply's bodies (plain text preferred)."""
    mine = _own_part(text_body, html_body, max_chars)
    try:
        stripped = await asyncio.wait_for(asyncio.to_thread(strip_quotes, mine), STRIP_TIMEOUT_SECONDS)
    except Exception:  # slow or failing, the library must not lose the update
        return mine.strip()
    return (stripped or mine).strip()


def first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""
