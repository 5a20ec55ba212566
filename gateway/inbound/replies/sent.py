"""What we sent, to recognise in a reply: the words of the text and HTML parts of our own
outbound mail (the outbox keeps its bytes), and the test of whether a reply's line reproduces
them, whatever the quoting, wrapping, whitespace or HTML rendering did to it."""

from __future__ import annotations

import email
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from gateway.inbound.mime_text import decoded_text, quietly
from gateway.inbound.replies.lines import BELOW_MARKER, CANDIDATES, OURS, Reply, words_of
from gateway.threading.text import html_to_text

_MAX_CHARS = 100_000
_CACHE_SIZE = 512


@dataclass
class SentText:
    """The words of the mails we sent, as whole lines and as word triples (a line that a
    mail program rewrapped is still made of our triples)."""

    lines: set[str] = field(default_factory=set)
    triples: set[tuple[str, str, str]] = field(default_factory=set)

    def add_text(self, text: str) -> None:
        words: list[str] = []
        for line in text.splitlines():
            found = words_of(line)
            if found:
                self.lines.add(" ".join(found))
                words.extend(found)
        self.triples.update(zip(words, words[1:], words[2:], strict=False))

    def update(self, other: SentText) -> None:
        self.lines |= other.lines
        self.triples |= other.triples

    def reproduces(self, words: list[str]) -> bool:
        if " ".join(words) in self.lines:
            return True
        triples = zip(words, words[1:], words[2:], strict=False)
        return len(words) >= 3 and all(t in self.triples for t in triples)


_cache: OrderedDict[int, SentText] = OrderedDict()


def forget_sent_texts() -> None:
    """Empty the cache of sent mail's words (tests)."""
    _cache.clear()


def known_sent_text(outbox_id: int) -> SentText | None:
    """The cached words of an outbox message, if it was read before."""
    return _cache.get(outbox_id)


def sent_text_of(outbox_id: int, data: bytes) -> SentText:
    """The words of one outbox message (cached by its id: sent mail never changes)."""
    found = _cache.get(outbox_id)
    if found is not None:
        _cache.move_to_end(outbox_id)
        return found
    found = SentText()
    message = quietly(lambda: email.message_from_bytes(data))
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "text/plain":
            found.add_text(decoded_text(part)[:_MAX_CHARS])
        elif kind == "text/html":
            found.add_text(html_to_text(decoded_text(part), _MAX_CHARS))
    _cache[outbox_id] = found
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
        words = words_of(line)
        if reply.roles[i] not in CANDIDATES or not words:
            previous, previous_ours = [], False
            continue
        ours = sent.reproduces(words)
        if not ours and len(words) < 3 and previous_ours:
            ours = sent.reproduces(previous[-2:] + words)
        if ours:
            reply.roles[i] = OURS
        previous, previous_ours = words, ours
    _mark_wordless(reply)


def _mark_wordless(reply: Reply) -> None:
    """A candidate line without a word ("--", a rule) beside our text is ours too."""
    content = [i for i, line in enumerate(reply.lines) if line.strip()]
    for n, i in enumerate(content):
        if reply.roles[i] in CANDIDATES and not words_of(reply.lines[i]):
            beside = [content[m] for m in (n - 1, n + 1) if 0 <= m < len(content)]
            if any(reply.roles[k] == OURS for k in beside):
                reply.roles[i] = OURS


def below_marker_is_ours(reply: Reply) -> None:
    """Without our sent text, what follows our unquoted marker is taken for our mail (the
    marker asks the customer to write above it)."""
    for i, role in enumerate(reply.roles):
        if role == BELOW_MARKER:
            reply.roles[i] = OURS
