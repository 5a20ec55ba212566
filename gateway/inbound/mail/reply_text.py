"""The new text of a customer's reply: everything they wrote, above, below or between the
mail they quote, without our own quoted mail, quote headers and signatures.

Two steps. The parse worker reads the reply line by line (:mod:`gateway.inbound.mail.replies`):
quote depths, quote headers, signatures, our marker, forwarded mail. Lines that may be our
mail quoted (``>``-quoted, or quoted without prefixes below a header) are left as
candidates; when there are some, the pipeline, which knows the case, compares them with the
mail we sent (:meth:`NewText.settle`), and removes those that reproduce it. When in doubt,
keep: a reply that would come out empty keeps its whole text, flagged (``kept_whole``).
"""

from __future__ import annotations

import email
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, replace
from email.message import Message

from gateway.inbound.mail.mime_text import decoded_text, header_text, quietly
from gateway.inbound.mail.parsed import Attachment
from gateway.inbound.mail.replies.html import html_to_quoted_text
from gateway.inbound.mail.replies.lines import FORWARD, NEW, Header, Reply, analyse
from gateway.inbound.mail.replies.render import render
from gateway.inbound.mail.replies.sent import SentText, mark_ours, marked_is_ours

MAX_LINE = 500
MAX_FORWARDS = 5


@dataclass(frozen=True)
class NewText:
    """A reply's new text, and what it takes to finish it."""

    text: str
    """The new text ("" until :meth:`settle` when ``pending``)."""
    whole: str
    """The reply's whole text (capped), for care when the extraction is in doubt."""
    pending: Reply | None = None
    """The reply's lines when some may be our quoted mail, to compare with what we sent."""
    kept_whole: bool = False
    """The extraction left nothing: ``text`` is the whole text."""

    def settle(self, sent: SentText | None) -> NewText:
        """The final text: candidate lines that reproduce ``sent`` (what we sent on the
        case) removed; without it, what our marker heads counts as ours and other quoted mail
        is kept."""
        if self.pending is None:
            return self
        if sent is not None:
            mark_ours(self.pending, sent)
        else:
            marked_is_ours(self.pending)
        return _checked(render(self.pending), self.whole)


@dataclass(frozen=True)
class Forwarded:
    """A mail forwarded as an attachment: who sent it, when, and its text."""

    naming: str
    text: str


def extract(text_body: str, html_body: str, max_chars: int,
            attachments: Sequence[Attachment] = ()) -> NewText:
    """The new text as far as it can be told without our sent mail (blocking, CPU-bound)."""
    forwards = forwarded_mail(attachments, max_chars)
    source = text_body if text_body.strip() else html_to_quoted_text(html_body, max_chars)
    source = source.replace("\r\n", "\n").replace("\r", "\n")
    for forward in forwards:  # the mail parser put their text in the body too
        source = _without(source, forward.text)
    whole = cap(source, max_chars)
    reply = analyse(whole)
    for forward in forwards:
        part = analyse(cap(forward.text, max_chars))
        offset = len(reply.lines) + 2
        reply.lines += ["", forward.naming, *part.lines]
        reply.depths += [0, 0, *part.depths]
        reply.roles += ["n", FORWARD, *part.roles]
        reply.headers += [replace(h, first=h.first + offset, last=h.last + offset,
                                  scope_end=h.scope_end + offset) for h in part.headers]
        whole += f"\n\n{forward.naming}\n{forward.text}"
    if reply.pending:
        return NewText("", whole, compacted(reply))
    return _checked(render(reply), whole)


def compacted(reply: Reply) -> Reply:
    """``reply`` with each run of the customer's own lines (blank lines inside it included)
    as one line: they are kept as they are whatever the comparison finds, so the pipeline
    need not go through them one by one."""
    lines: list[str] = []
    depths: list[int] = []
    roles: list[str] = []
    index: list[int] = []  # old line -> new line
    for i, line in enumerate(reply.lines):
        joins = reply.roles[i] == NEW and roles[-1:] == [NEW] and (line.strip() or _new_follows(reply, i))
        if joins and lines[-1].strip():
            lines[-1] += "\n" + line
        else:
            lines.append(line)
            depths.append(reply.depths[i])
            roles.append(reply.roles[i])
        index.append(len(lines) - 1)
    index.append(len(lines))

    def moved(header: Header) -> Header:
        return replace(header, first=index[header.first], last=index[header.last],
                       scope_end=index[header.scope_end])
    return Reply(lines, depths, roles, [moved(h) for h in reply.headers])


def _new_follows(reply: Reply, i: int) -> bool:
    """Whether a blank line ``i`` sits inside a run of the customer's lines."""
    following = reply.next_content(i)
    return following is not None and reply.roles[following] == NEW


def _checked(text: str, whole: str) -> NewText:
    if text.strip() or not whole.strip():
        return NewText(text, whole)
    return NewText(whole.strip(), whole, kept_whole=True)


def _without(text: str, part: str) -> str:
    """``text`` without the last copy of ``part`` (compared without line-end differences)."""
    needle = part.replace("\r\n", "\n").replace("\r", "\n").strip()
    at = text.rfind(needle) if needle else -1
    return text if at < 0 else text[:at] + text[at + len(needle):]


def forwarded_mail(attachments: Sequence[Attachment], max_chars: int) -> list[Forwarded]:
    """The mails attached as ``message/rfc822``: each one's sender, date and text."""
    found: list[Forwarded] = []
    for attachment in attachments:
        if attachment.content_type != "message/rfc822" or len(found) >= MAX_FORWARDS:
            continue
        message = _message(attachment.payload)
        sender, date = (header_text(message.get(n, "")) for n in ("From", "Date"))
        plain = html = ""
        for part in message.walk():
            kind = part.get_content_type()
            if kind == "text/plain" and not plain:
                plain = decoded_text(part)
            elif kind == "text/html" and not html:
                html = decoded_text(part)
        text = plain if plain.strip() else html_to_quoted_text(html, max_chars)
        naming = " ".join(filter(None, [sender[:200] or "unknown sender", f"({date[:100]})" if date else ""]))
        found.append(Forwarded(f"---------- Forwarded message from {naming} ----------", text))
    return found


def _message(data: bytes) -> Message:
    return quietly(lambda: email.message_from_bytes(data))


def cap(text: str, max_chars: int) -> str:
    """At most ``max_chars`` characters, no line longer than :data:`MAX_LINE`."""
    text = text[:max_chars]
    if all(len(line) <= MAX_LINE for line in text.split("\n")):
        return text
    return "\n".join(
        textwrap.fill(line, MAX_LINE, break_long_words=True, replace_whitespace=False) or line
        for line in text.split("\n")
    )


def whole_text(text_body: str, html_body: str, max_chars: int) -> NewText:
    """The whole text as the new text, flagged: what is kept when :func:`extract` fails."""
    whole = cap(text_body if text_body.strip() else html_to_quoted_text(html_body, max_chars), max_chars)
    return NewText(whole.strip(), whole, kept_whole=True)


def first_line(text: str) -> str:
    """The first line that is not blank, stripped (the lines ``str.splitlines`` sees), without
    splitting the whole text: every character that ends a line is whitespace to ``lstrip``."""
    found = _LINE.match(text.lstrip())
    return found.group().strip() if found else ""


_LINE = re.compile("[^\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]*")
"""A line's text up to the first character ``str.splitlines`` ends a line at."""
