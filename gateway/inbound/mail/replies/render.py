"""The text that goes on the case from a reply whose lines have their roles: the customer's
lines in order, quoted lines that are not ours marked as quoted, a quote header only above
mail that stays, and, where answers interleave with our quoted questions, the question above
each answer as context."""

from __future__ import annotations

import re

from gateway.inbound.mail.replies.lines import (
    BELOW_MARKER,
    FORWARD,
    MARKED,
    NEW,
    OURS,
    QUOTED,
    REGION,
    Header,
    Reply,
    is_marker,
    naming,
    words_of,
)

CONTEXT_LINES = 3
"""Lines of our quoted text kept above an interleaved answer, at most."""
_BLANK_RUNS = re.compile(r"\n{3,}")
_WORD = re.compile(r"\w")


def render(reply: Reply) -> str:
    out: list[str | None] = [_shown(reply, i) for i in range(len(reply.lines))]
    for header in reply.headers:
        content = _content_lines(reply, header)
        kept = sum(1 for k in content if reply.roles[k] in (QUOTED, REGION, BELOW_MARKER))
        ours = sum(1 for k in content if reply.roles[k] == OURS)
        if kept and kept >= ours and (named := naming(header)):
            out[header.first] = _quoted(reply.depths[header.first], named)
    context = _context(reply)
    lines: list[str] = []
    for i, shown in enumerate(out):
        lines.extend(context.get(i, []))
        if shown is not None:
            lines.append(shown)
    return _BLANK_RUNS.sub("\n\n", "\n".join(_inner_quote_blanks(lines))).strip()


def _inner_quote_blanks(lines: list[str]) -> list[str]:
    """A blank quoted line (``>``) stays between two quoted lines; elsewhere it is blank."""
    content = [i for i, line in enumerate(lines) if line.strip(">").strip()]
    result = list(lines)
    for n, i in enumerate(content[:-1]):
        for k in range(i + 1, content[n + 1]):
            if lines[k] and not lines[k].strip(">"):
                inside = lines[i].startswith(">") and lines[content[n + 1]].startswith(">")
                result[k] = lines[k] if inside else ""
    for k in range(len(lines)):
        if (not content or k < content[0] or k > content[-1]) and not lines[k].strip(">"):
            result[k] = ""
    return result


def _section_length(reply: Reply, last: int) -> int:
    """Non-blank lines of the run of our text that ends on line ``last``."""
    count = 0
    while last >= 0 and (reply.roles[last] == OURS or not reply.lines[last].strip()):
        count += bool(reply.lines[last].strip())
        last -= 1
    return count


def _ends_sentence(line: str) -> bool:
    """A line that ends a sentence, or a greeting ("Dear Ana Alves,")."""
    stripped = line.rstrip()
    greeting = stripped.endswith(",") and len(words_of(line)) <= 4
    return greeting or stripped.endswith((".", "?", "!", ":", ";"))


def _content_lines(reply: Reply, header: Header) -> list[int]:
    """The non-blank lines of the mail a header introduces, at that mail's own depth (not
    the mails it quotes in turn)."""
    scope = [k for k in range(header.last + 1, header.scope_end) if reply.lines[k].strip()]
    if not scope:
        return []
    depth = reply.depths[scope[0]]
    return [k for k in scope if reply.depths[k] == depth]


def _shown(reply: Reply, i: int) -> str | None:
    role = reply.roles[i]
    if role in (NEW, REGION, BELOW_MARKER, MARKED, FORWARD):
        return reply.lines[i]
    if role == QUOTED:
        return _quoted(reply.depths[i], reply.lines[i]) if reply.lines[i].strip() else ">" * reply.depths[i]
    return None


def _quoted(depth: int, text: str) -> str:
    return (">" * depth + " " + text).rstrip() if depth else text


def _context(reply: Reply) -> dict[int, list[str]]:
    """For each answer right below our quoted text, when answers interleave with it (ours
    both above and below some answer), the sentence of ours above it (its last lines up to a
    line that ends a sentence or greets), unless that is the long tail of our mail below
    the last answer (its footer, not a question)."""
    ours = [i for i, r in enumerate(reply.roles) if r == OURS and reply.lines[i].strip()]
    if not ours:
        return {}
    answers = [i for i, r in enumerate(reply.roles)
               if r in (NEW, REGION, BELOW_MARKER, MARKED) and _WORD.search(reply.lines[i])]
    if not any(ours[0] < i < ours[-1] for i in answers):
        return {}
    found: dict[int, list[str]] = {}
    for i in answers:
        above = i - 1
        while above >= 0 and not reply.lines[above].strip():
            above -= 1
        if above < 0 or reply.roles[above] != OURS:
            continue
        if i > ours[-1] and _section_length(reply, above) > CONTEXT_LINES:
            continue
        paragraph: list[str] = []
        while above >= 0 and reply.roles[above] == OURS and reply.lines[above].strip() \
                and len(paragraph) < CONTEXT_LINES:
            if paragraph and _ends_sentence(reply.lines[above]):
                break
            if not is_marker(reply.lines[above]):
                paragraph.insert(0, "> " + reply.lines[above].strip())
            above -= 1
        if paragraph:
            found[i] = [*paragraph, ""] if reply.lines[i - 1].strip() == "" else paragraph
    return found
