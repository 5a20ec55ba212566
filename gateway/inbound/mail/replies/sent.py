"""What we sent, to recognise in a reply: the words of the text and HTML parts of our own
outbound mail (the outbox keeps its bytes), and the test of whether a reply's line reproduces
them, whatever the quoting, wrapping, whitespace or HTML rendering did to it."""

from __future__ import annotations

import email
import re
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from gateway.inbound.mail.mime_text import decoded_text, quietly
from gateway.inbound.mail.replies.lines import BELOW_MARKER, CANDIDATES, MARKED, OURS, QUOTED, Reply, words_of
from gateway.threading.text import html_to_text

_MAX_CHARS = 100_000
_WORD = re.compile(r"\w")
LOOSE_SHARE = 0.6
_CACHE_SIZE = 256
"""Sent mails whose words are kept (about 17 KB each)."""


@dataclass
class SentText:
    """The words of the mails we sent, as whole lines and as word triples (a line that a
    mail program rewrapped is still made of our triples); kept as hashes, which is all the
    membership tests need (this lives in one process; a cache holds many)."""

    lines: set[int] = field(default_factory=set)
    triples: set[int] = field(default_factory=set)

    def add_text(self, text: str) -> None:
        words: list[str] = []
        for line in text.splitlines():
            found = words_of(line)
            if found:
                self.lines.add(hash(" ".join(found)))
                words.extend(found)
        self.triples.update(map(hash, zip(words, words[1:], words[2:], strict=False)))

    def update(self, other: SentText) -> None:
        self.lines |= other.lines
        self.triples |= other.triples

    def reproduces(self, words: list[str], loosely: bool = False) -> bool:
        """Whether a line of these words is ours: a line of ours, or made of our triples
        (``loosely``: most of them, for quoted lines, in which mail programs render our HTML's
        links as "text <url>")."""
        if hash(" ".join(words)) in self.lines:
            return True
        if len(words) < 3:
            return False
        triples = list(zip(words, words[1:], words[2:], strict=False))
        found = sum(1 for t in triples if hash(t) in self.triples)
        return found == len(triples) or (loosely and found >= LOOSE_SHARE * len(triples))


_cache: OrderedDict[str, SentText] = OrderedDict()


def forget_sent_texts() -> None:
    """Empty the cache of sent mail's words (tests)."""
    _cache.clear()


def known_sent_text(message_id: str) -> SentText | None:
    """The cached words of one of our sent mails, if it was read before."""
    return _cache.get(message_id)


def sent_text_of(message_id: str, data: bytes) -> SentText:
    """The words of one of our sent mails (its bytes in the outbox), cached by its
    Message-ID: ours carry 128 random bits, and sent mail never changes."""
    found = _cache.get(message_id)
    if found is not None:
        _cache.move_to_end(message_id)
        return found
    found = SentText()
    message = quietly(lambda: email.message_from_bytes(data))
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "text/plain":
            found.add_text(decoded_text(part)[:_MAX_CHARS])
        elif kind == "text/html":
            found.add_text(html_to_text(decoded_text(part), _MAX_CHARS))
    _cache[message_id] = found
    if len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return found


def combined(texts: Iterable[SentText]) -> SentText:
    result = SentText()
    for text in texts:
        result.update(text)
    return result


def mark_ours(reply: Reply, sent: SentText) -> None:
    """Candidate lines that reproduce ``sent`` become ours. A line of one or two words (the
    tail of a rewrapped sentence) counts with the end of the line above it."""
    previous: list[str] = []
    previous_ours = False
    for i, line in enumerate(reply.lines):
        words = words_of(line) if reply.roles[i] in CANDIDATES else []
        if not words:
            previous, previous_ours = [], False
            continue
        ours = sent.reproduces(words, loosely=reply.roles[i] in (QUOTED, MARKED))
        if not ours and len(words) < 3 and previous_ours:
            ours = sent.reproduces(previous[-2:] + words)
        if ours:
            reply.roles[i] = OURS
        previous, previous_ours = words, ours
    _mark_wordless(reply)


def _mark_wordless(reply: Reply) -> None:
    """A quoted line without a word ("--", a rule: our footer has one) says nothing: it goes
    with our text."""
    for i, line in enumerate(reply.lines):
        if reply.roles[i] in CANDIDATES and line.strip() and not _WORD.search(line):
            reply.roles[i] = OURS


def marked_is_ours(reply: Reply) -> None:
    """Without our sent text, what our marker heads is taken for our mail (the marker asks
    the customer to write above it)."""
    for i, role in enumerate(reply.roles):
        if role in (BELOW_MARKER, MARKED):
            reply.roles[i] = OURS
