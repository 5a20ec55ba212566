"""An HTML reply as text with its quoting kept: each ``blockquote`` level (Gmail's, Apple
Mail's, Thunderbird's ``type="cite"``) becomes a ``>`` on every line inside it, so that an
HTML-only reply is read line by line like a plain one. Outlook quotes without a blockquote,
under a header block that the line reading finds as in plain text."""

from __future__ import annotations

import html
import re

_INVISIBLE = re.compile(
    r"<!--.*?(?:-->|\Z)|<(script|style|title|head)\b.*?(?:</\1\s*>|\Z)", re.IGNORECASE | re.DOTALL
)
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)\b[^>]*(?:>|\Z)|<[!?/][^>]*(?:>|\Z)")
_BREAKS = frozenset([
    "p", "div", "br", "hr", "tr", "li", "ul", "ol", "dl", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6",
    "table", "thead", "tbody", "tfoot", "pre", "section", "article", "header", "footer", "address",
    "center", "form", "fieldset", "figure",
])
_CELLS = frozenset(["td", "th"])


def html_to_quoted_text(markup: str, max_chars: int) -> str:
    """The visible text of ``markup``, one line per block, quoted lines prefixed with ``>``
    per blockquote level; time linear in the input."""
    text = _INVISIBLE.sub(" ", markup[: max_chars * 4])
    lines: list[str] = []
    current: list[str] = []
    depth = 0
    line_depth: int | None = None  # the depth of the line's first text

    def flush(always: bool = False) -> None:
        nonlocal line_depth
        content = " ".join("".join(current).split())
        level = depth if line_depth is None else line_depth
        if content or always:
            lines.append(("> " * level + content).rstrip())
        current.clear()
        line_depth = None

    pos = 0
    for tag in _TAG.finditer(text):
        chunk = text[pos:tag.start()]
        pos = tag.end()
        if chunk.strip():
            if line_depth is None:
                line_depth = depth
            current.append(html.unescape(chunk))
        elif chunk:
            current.append(" ")
        name = (tag.group(2) or "").lower()
        if name == "blockquote":
            flush()
            depth = max(0, depth + (-1 if tag.group(1) else 1))
        elif name == "br":
            flush(always=True)
        elif name in _BREAKS:
            flush()
        elif name in _CELLS:
            current.append(" ")
    chunk = text[pos:]
    if chunk.strip():
        if line_depth is None:
            line_depth = depth
        current.append(html.unescape(chunk))
    flush()
    return "\n".join(lines)[:max_chars]
