"""A reply's lines and the role of each: the customer's new text, a quoted line, our own
text, a quote header or a signature. Worked out in the parse workers, without the database;
lines that may be quoted mail of ours are left as candidates (:data:`CANDIDATES`) for the
pipeline to compare with what we sent (:mod:`gateway.inbound.mail.replies.sent`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from gateway.identity import REPLY_MARKER
from gateway.inbound.mail.replies.headers import MOBILE_SIGNATURE, header_field, is_attribution, separator

NEW = "n"
"""The customer's own line: kept."""
QUOTED = "q"
"""A ``>``-quoted line not known to be ours: kept as quoted unless it reproduces our mail."""
REGION = "r"
"""An unprefixed line below a quote header or our unquoted marker (Outlook, Notes and web mail
quote the original so): kept unless it reproduces our mail."""
BELOW_MARKER = "b"
"""An unprefixed line below our unquoted marker: the mail it heads, as far as the reply alone
tells (removed without our sent text to compare with; kept if it does not reproduce it)."""
MARKED = "m"
"""A ``>``-quoted line of the block our quoted marker heads: our mail, as far as the reply
alone tells (removed without our sent text to compare with). A line that does not reproduce
it is the customer's, typed into the quote (HTML mail programs let them), and is kept."""
OURS = "o"
"""Our own mail: removed."""
HEADER = "h"
"""A quote header line: removed (or, above mail that is kept, named in one line)."""
SIGNATURE = "s"
"""The customer's signature: removed."""
FORWARD = "F"
"""The line naming a forwarded mail (an attached one): kept."""
CANDIDATES = QUOTED + REGION + BELOW_MARKER + MARKED

MOBILE_SIGNATURE_MAX = 80
SIGNATURE_MAX_LINES = 10
SIGNATURE_LINE_MAX = 100
"""Lines below a ``-- `` delimiter that still make a signature (RFC 3676 suggests four)."""
HEADER_BLOCK_MAX_LINES = 15
_QUOTE_PREFIX = re.compile(r"^(?:[ \t]*>)+[ \t]?")
_MARKER = re.compile(r"\W+".join(re.findall(r"\w+", REPLY_MARKER)), re.IGNORECASE)
"""Our reply marker's words, however a mail program spaced or styled them."""


@dataclass(frozen=True)
class Header:
    """A quote header: its lines, the lines it introduces, and how to name it if they stay."""

    first: int
    last: int
    scope_end: int
    """One past the last line of the quoted or forwarded mail it introduces."""
    naming: str
    """The attribution line, or the sender and date of a header block."""
    forward: bool = False
    attribution: bool = False


@dataclass
class Reply:
    """A reply's lines (quote prefixes removed), their quote depths and roles, its headers."""

    lines: list[str]
    depths: list[int]
    roles: list[str]
    headers: list[Header]
    following: list[int] = field(default_factory=list)
    """For each line, the first line from it on that is not blank (the count of lines if none)."""

    def next_content(self, start: int) -> int | None:
        if len(self.following) != len(self.lines) + 1:
            self.following = _following(self.lines)
        found = self.following[min(start, len(self.lines))]
        return found if found < len(self.lines) else None

    @property
    def pending(self) -> bool:
        """Whether some lines may be our mail and need comparing with what we sent."""
        return any(r in CANDIDATES and self.lines[i].strip() for i, r in enumerate(self.roles))


def is_marker(line: str) -> bool:
    """Whether ``line`` carries our reply marker."""
    return _MARKER.search(line) is not None


_WORDS = re.compile(r"\w+")


def words_of(text: str) -> list[str]:
    return _WORDS.findall(text.lower())


def analyse(text: str) -> Reply:
    """The roles of ``text``'s lines, as far as they can be told without our sent mail."""
    lines, depths = [], []
    for line in text.split("\n"):
        prefix = _QUOTE_PREFIX.match(line) if line.lstrip(" \t")[:1] == ">" else None
        depths.append(line[: prefix.end()].count(">") if prefix else 0)
        lines.append((line[prefix.end():] if prefix else line).rstrip())
    reply = Reply(lines, depths, [NEW if d == 0 else QUOTED for d in depths], [])
    _find_headers(reply)
    _find_marker(reply)
    _find_signatures(reply)
    return reply


def _following(lines: list[str]) -> list[int]:
    found = [len(lines)] * (len(lines) + 1)
    for i in range(len(lines) - 1, -1, -1):
        found[i] = i if lines[i].strip() else found[i + 1]
    return found


def _find_headers(reply: Reply) -> None:
    regions: set[int] = set()  # depths whose lines are candidates down to the end already
    i = 0
    while i < len(reply.lines):
        found = _header_at(reply, i)
        if found is None:
            i += 1
            continue
        first, last, named, forward = found
        for k in range(first, last + 1):
            reply.roles[k] = HEADER
        end = _scope(reply, last, regions)
        opener = reply.lines[first]
        attribution = not forward and header_field(opener) is None and separator(opener) is None
        reply.headers.append(Header(first, last, end, named, forward, attribution))
        i = last + 1
    _end_scopes(reply)


def _end_scopes(reply: Reply) -> None:
    """A header whose scope runs to the end ends where the next header at its depth begins."""
    next_at: dict[int, int] = {}
    for n in range(len(reply.headers) - 1, -1, -1):
        header = reply.headers[n]
        depth = reply.depths[header.first]
        following = next_at.get(depth)
        if following is not None and header.last < following < header.scope_end:
            reply.headers[n] = replace(header, scope_end=following)
        next_at[depth] = header.first


def _header_at(reply: Reply, i: int) -> tuple[int, int, str, bool] | None:
    """(first line, last line, naming, forward) of a quote header starting or ending at ``i``."""
    line = reply.lines[i]
    if reply.roles[i] == HEADER or not _may_head(line):
        return None
    kind = separator(line)
    if kind is not None:
        following = reply.next_content(i + 1)
        block = None if following is None else _header_block(reply, following, reply.depths[following])
        if block is not None:
            return i, block[0], block[1], kind == "forward"
        if kind == "rule":
            return None
        return i, i, "", kind == "forward"
    block = _header_block(reply, i, reply.depths[i])
    if block is not None:
        return i, block[0], block[1], False
    if line.rstrip().endswith((":", "：")):
        return _attribution(reply, i)
    return None


def _may_head(line: str) -> bool:
    """What every quote header's first line has: a colon, or a separator's dash, underscore
    or equals sign at its start (string tests: this runs on every line)."""
    return ":" in line or "：" in line or line.lstrip(" \t")[:1] in ("-", "_", "=")


def _header_block(reply: Reply, start: int, depth: int) -> tuple[int, str] | None:
    """(last line, naming) of an Outlook/Notes header block of at least three fields
    (From, and a date or a subject) starting at ``start``, wrapped values included."""
    if start >= len(reply.lines) or reply.depths[start] != depth or header_field(reply.lines[start]) is None:
        return None
    fields: dict[str, str] = {}
    last = start
    for k in range(start, min(len(reply.lines), start + HEADER_BLOCK_MAX_LINES)):
        if reply.depths[k] != depth or not reply.lines[k].strip():
            break
        found = header_field(reply.lines[k])
        if found is not None:
            fields.setdefault(found.kind, found.value)
            last = k
        elif reply.lines[k][:1] in (" ", "\t") or (k == last + 1 and "@" in reply.lines[k]):
            last = k  # a wrapped value (a long To: list)
        else:
            break
    if "from" not in fields or not ({"date", "subject"} & fields.keys()) or len(fields) < 3:
        return None
    return last, " ".join(filter(None, [fields["from"], f"({fields['date']})" if fields.get("date") else ""]))


def naming(header: Header) -> str:
    """The one line that stands for a quote header above mail that is kept."""
    if header.attribution or not header.naming:
        return header.naming
    if header.forward:
        return f"---------- Forwarded message from {header.naming} ----------"
    return f"{header.naming} wrote:"


def _attribution(reply: Reply, end: int) -> tuple[int, int, str, bool] | None:
    """An attribution line ending at ``end``, wrapped over up to three lines (the lines above
    it count while they do not end a sentence: those are the customer's)."""
    depth = reply.depths[end]
    start = end
    while start > 0 and end - start < 2 and reply.depths[start - 1] == depth \
            and reply.roles[start - 1] in (NEW, QUOTED, REGION) and _unfinished(reply.lines[start - 1]):
        start -= 1
    following = reply.next_content(end + 1)
    quote_follows = following is not None and reply.depths[following] > depth
    for first in range(start, end + 1):
        joined = " ".join(x.strip() for x in reply.lines[first:end + 1])
        if is_attribution(joined, quote_follows):
            return first, end, joined, False
    return None


def _unfinished(line: str) -> bool:
    """Whether ``line`` may be the start of a wrapped attribution: it does not end a
    sentence, and it opens like one or names a date or an address."""
    stripped = line.strip()
    return bool(stripped) and len(stripped) <= 120 and stripped[-1] not in ".!?;:" \
        and bool(_ATTRIBUTION_START.search(stripped))


_ATTRIBUTION_START = re.compile(
    r"^(?:on|am|le|el|il|op|em|den|dnia|w dniu|quoting|citando|zitat von)\b"
    r"|@|\d{1,2}[:.h]\d{2}\b|\b(?:19|20)\d{2}\b",
    re.IGNORECASE,
)


def _scope(reply: Reply, last: int, regions: set[int]) -> int:
    """One past the end of what the header on lines up to ``last`` introduces: the deeper
    quoted block right below it, or else (mail quoted without prefixes) every following line
    at its depth, which become candidates."""
    depth = reply.depths[last]
    following = reply.next_content(last + 1)
    if following is None:
        return len(reply.lines)
    if reply.depths[following] > depth:
        end = following
        while end < len(reply.lines) and (reply.depths[end] > depth or (
                not reply.lines[end].strip() and (n := reply.next_content(end)) is not None
                and reply.depths[n] > depth)):
            end += 1
        return end
    if depth not in regions:
        regions.add(depth)
        for k in range(last + 1, len(reply.lines)):
            if reply.depths[k] == depth and reply.roles[k] == NEW:
                reply.roles[k] = REGION
    return len(reply.lines)


def _find_marker(reply: Reply) -> None:
    """Our marker is ours wherever it is; where it is not quoted, the lines below it are the
    mail it heads (quoted without prefixes); where it is quoted, so is the rest of its block."""
    text = "\n".join(reply.lines)
    for found in _MARKER.finditer(text):
        i = text.count("\n", 0, found.start())
        if reply.roles[i] == OURS or "\n" in found.group():
            continue
        reply.roles[i] = OURS
        depth = reply.depths[i]
        for k in range(i + 1, len(reply.lines)):
            if depth == 0 and reply.depths[k] == 0 and reply.roles[k] in (NEW, REGION):
                reply.roles[k] = BELOW_MARKER
            elif depth > 0:
                if reply.depths[k] < depth and (reply.lines[k].strip() or reply.depths[k] == 0):
                    break
                if reply.roles[k] == QUOTED:
                    reply.roles[k] = MARKED


def _find_signatures(reply: Reply) -> None:
    """The customer's ``-- `` signature (a short block of short lines up to the next quote;
    prose below a ``--`` line stays) and the one-line signatures of mobile mail apps."""
    for i, line in enumerate(reply.lines):
        if reply.roles[i] != NEW:
            continue
        if len(line) <= MOBILE_SIGNATURE_MAX and MOBILE_SIGNATURE.match(line):
            reply.roles[i] = SIGNATURE
        elif line == "--":
            end = i + 1
            while end < len(reply.lines) and reply.roles[end] == NEW:
                end += 1
            block = [reply.lines[k] for k in range(i + 1, end) if reply.lines[k].strip()]
            if len(block) <= SIGNATURE_MAX_LINES and all(len(x) <= SIGNATURE_LINE_MAX for x in block):
                for k in range(i, end):
                    reply.roles[k] = SIGNATURE

