"""The new text of a customer's reply: what they wrote, without the quoted mail below it.

Our own marker goes first (every case mail we send starts with it, so the customer's text is
everything above the line that carries it); then mail-parser-reply strips quotes and
signatures in the languages our customers write. mail-parser-reply is very slow on long lines
(10 k characters: seconds), so its input is capped and wrapped, and it runs in a worker thread
with a deadline; if it is too slow, the capped text is kept as it is.

Signatures: the text is cut at the RFC 3676 delimiter line ``-- `` when a short block follows
it. mail-parser-reply's own signature search is not used: it takes a line that starts with a
sign-off ("Thanks,", "Grüße", "regards,") for the start of the signature and drops everything
below it, which on a case is often the customer's actual report. (Its search results serve
only that; :class:`Segments` skips it, which also saves about half of its time.)

Its quote-header pattern (an alternation over every language) is tried at every character of
the text, about 5 ms for 6 KB; yet each of its alternatives can only begin at the start of the
text, at a line start or at a newline, and each needs a colon (or a dashed separator) a few
lines further. :class:`LineStartPattern` tries it at those positions only, and only near such
a line, with the same matches (about 20 times faster; ``tests/unit/test_reply_text.py``).
"""

from __future__ import annotations

import asyncio
import functools
import re
import textwrap
from typing import Any

from mailparser_reply.parser import EmailMessage

from gateway.identity import REPLY_MARKER
from gateway.threading.text import html_to_text

LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "ja", "da", "sv", "pl"]
MAX_LINE = 500
STRIP_TIMEOUT_SECONDS = 5.0
_MARKER_CORE = REPLY_MARKER.strip("- ").lower()


class LineStartPattern:
    """``findall`` of mail-parser-reply's quote-header pattern, tried only where one of its
    alternatives can begin: at the start of the text or of a line, on a newline, or on a dash
    (the Danish ``-----Oprindelig meddelelse-----``). ``match`` at a position sees the text
    before it, so ``^`` and look-behinds behave as in a full scan; the result is the list
    ``pattern.findall`` returns. ``tests/unit/test_reply_text.py`` checks both that and that
    every alternative of the installed library's pattern still begins in one of these ways.

    Second, a position is tried only if a line with a colon or five dashes follows within
    :data:`NEAR_LINES` non-blank lines (counting from its own line): every alternative ends its
    first part in a colon ("wrote:", "Von:", ...) or is a dashed separator, and reaches it
    within three lines, or across blank lines only (the Swedish ``12\n\nmaj ... skrev``). Prose
    without colons, most of a customer's text, is then not tried at all."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern

    def findall(self, text: str) -> list[Any]:
        found: list[Any] = []
        pos = 0
        for low, high in _near_spans(text):  # the text of runs of lines near a colon
            for candidate in _CANDIDATES.finditer(text, low, high):
                start = candidate.start()
                if start < pos or start >= high:  # ``^`` can match at ``high``: the next line's
                    continue
                m = self.pattern.match(text, start)
                if m is not None:
                    found.append(_findall_item(m))
                    pos = m.end() if m.end() > start else start + 1
        return found


NEAR_LINES = 5
"""Non-blank lines between a position and the next line with a colon or a dashed separator
within which the quote-header pattern is tried (the pattern needs three at most)."""

_CANDIDATES = re.compile(r"^|\n|-", re.MULTILINE)


def _near_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of each run of lines within :data:`NEAR_LINES` non-blank lines
    above a line with a colon or five dashes (such a line included); a line's span ends after
    its newline. Prose without colons yields no span and is not scanned at all."""
    lines = text.split("\n")
    near = [False] * len(lines)
    between = NEAR_LINES + 1  # non-blank lines since the nearest such line below
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i]
        if ":" in line or "\uff1a" in line or "-----" in line:
            between = 0
            near[i] = True
            continue
        near[i] = between <= NEAR_LINES
        if between <= NEAR_LINES and line.strip():
            between += 1
    spans: list[tuple[int, int]] = []
    offset = 0
    for i, line in enumerate(lines):
        end = offset + len(line) + 1  # past its newline (or one past the text's end)
        if near[i]:
            if spans and spans[-1][1] == offset:
                spans[-1] = (spans[-1][0], end)
            else:
                spans.append((offset, end))
        offset = end
    return spans


def _findall_item(m: re.Match[str]) -> Any:
    groups = m.re.groups
    if groups == 0:
        return m.group(0)
    if groups == 1:
        return m.group(1) or ""
    return tuple(g or "" for g in m.groups())


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


class Segments(EmailMessage):  # type: ignore[misc]
    """mail-parser-reply's split of a text into the replies it quotes, without the signature
    and disclaimer search (see the module docstring), with the fast quote-header scan."""

    text: str

    def __post_init__(self) -> None:
        super().__post_init__()
        self._header_regex = _header_pattern(tuple(self.languages))

    def _process_signatures_disclaimers(self, text: str) -> tuple[list[str], str]:
        return [], ""

    def _normalize_text(self) -> None:
        """The library's normalisation, whose last step (a substitution tried at every
        character) is run only where it can change something: before an Outlook separator
        line, which follows two line breaks."""
        text = "\n".join([line.strip() for line in self.text.replace("\r\n", "\n").split("\n")])
        if _OUTLOOK_SEPARATOR.search(text):
            super()._normalize_text()
        else:
            self.text = text


@functools.cache
def _header_pattern(languages: tuple[str, ...]) -> LineStartPattern:
    """The quote-header scan for these languages, built once: the library builds its pattern
    (every language's alternatives joined) for each message, a tenth of a reply's time."""
    return LineStartPattern(EmailMessage(text="", languages=list(languages)).HEADER_REGEX)


_OUTLOOK_SEPARATOR = re.compile(r"\n\n ?[_-]{32}")
"""What every match of mail-parser-reply's ``OUTLOOK_MAIL_SEPARATOR`` contains."""


SIGNATURE_MAX_LINES = 10
"""Lines below a ``-- `` delimiter that still make a signature (RFC 3676 suggests four)."""


def strip_signature(text: str) -> str:
    """``text`` without a signature below its last ``-- `` delimiter line."""
    lines = text.split("\n")
    for i in range(len(lines) - 1, 0, -1):
        if lines[i].rstrip() == "--":
            if len(lines) - i - 1 <= SIGNATURE_MAX_LINES and "\n".join(lines[:i]).strip():
                return "\n".join(lines[:i]).rstrip()
            break
    return text


def strip_quotes(text: str) -> str:
    """mail-parser-reply's reading of the reply, signature cut (blocking; call through
    :func:`new_text`)."""
    reply: str | None = Segments(text=text, languages=list(LANGUAGES)).read().latest_reply
    return strip_signature(reply or "")


def new_text_now(text_body: str, html_body: str, max_chars: int) -> str:
    """:func:`new_text` without the deadline, for a worker process (input capped all the same)."""
    mine = own_part(text_body, html_body, max_chars)
    return (strip_quotes(mine) or mine).strip()


def own_part(text_body: str, html_body: str, max_chars: int) -> str:
    source = text_body if text_body.strip() else html_to_text(html_body, max_chars * 4)
    return cap(above_marker(source.replace("\r\n", "\n").replace("\r", "\n")), max_chars)


async def new_text(text_body: str, html_body: str, max_chars: int) -> str:
    """The customer's new words from a reply's bodies (plain text preferred)."""
    mine = own_part(text_body, html_body, max_chars)
    try:
        stripped = await asyncio.wait_for(asyncio.to_thread(strip_quotes, mine), STRIP_TIMEOUT_SECONDS)
    except Exception:  # slow or failing, the library must not lose the update
        return mine.strip()
    return (stripped or mine).strip()


def first_line(text: str) -> str:
    """The first line that is not blank, stripped (the lines ``str.splitlines`` sees), without
    splitting the whole text: every character that ends a line is whitespace to ``lstrip``."""
    found = _LINE.match(text.lstrip())
    return found.group().strip() if found else ""


_LINE = re.compile("[^\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]*")
"""A line's text up to the first character ``str.splitlines`` ends a line at."""
