"""Text taken from a mail, made safe once, where it enters (the end of parsing).

Every byte of a mail is written by a stranger: a header value may decode to a NUL (which
PostgreSQL refuses in text), to other control characters (which forge log lines or terminal
output), to lone surrogates (which no database can encode) or to bidirectional overrides
(which make a shown name read as another). :func:`cleaned` removes them from every text of
a parsed mail, so that whatever is stored, shown or logged from it can be, on both databases.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from typing import Any, TypeVar

_T = TypeVar("_T")

_LINE_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]")
"""What a one-line value (a header, a file name) must not hold: C0 and C1 controls, DEL,
zero-width and bidirectional formatting characters, surrogates (lone, or undecodable bytes
kept by ``surrogateescape``)."""
_TEXT_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
"""The same for a body text, which keeps its tabs and line breaks (and zero-width joiners,
which some scripts need)."""

MULTI_LINE = frozenset({"text_body", "html_body", "diagnostic"})
"""Fields of the parsed mail (and its bounce report) that are texts of several lines."""


def clean_line(value: str) -> str:
    """One line of text: tabs and line breaks become spaces, surrogates U+FFFD, and the
    other controls and formatting characters go."""
    if not _LINE_UNSAFE.search(value):
        return value
    return _LINE_UNSAFE.sub(_line_replacement, value)


def clean_text(value: str) -> str:
    """A text of several lines: controls other than tab and line breaks go, surrogates become
    U+FFFD; a lone CR becomes a line break."""
    if "\r" in value:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    if not _TEXT_UNSAFE.search(value):
        return value
    return _TEXT_UNSAFE.sub(_text_replacement, value)


def _line_replacement(found: re.Match[str]) -> str:
    char = found.group()
    if char in "\t\n\r":
        return " "
    return "\ufffd" if "\ud800" <= char <= "\udfff" else ""


def _text_replacement(found: re.Match[str]) -> str:
    return "\ufffd" if "\ud800" <= found.group() <= "\udfff" else ""


def short_name(name: str, limit: int = 64) -> str:
    """A display name fit to be repeated to anyone: one clean line, at most ``limit`` characters."""
    text = " ".join(clean_line(name).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _clean_already(value: Any, field: str) -> bool:
    """Whether a container of texts (a dict of header values, a tuple of Message-IDs) holds
    nothing to clean: one search over all of it, rather than one call per text."""
    if field in MULTI_LINE or not isinstance(value, (tuple, list, dict)):
        return False
    try:
        joined = "".join(itertools.chain(value, *value.values()) if isinstance(value, dict) else value)
    except TypeError:  # not texts only
        return False
    return not _LINE_UNSAFE.search(joined)


def cleaned(value: _T, field: str = "") -> _T:
    """``value`` with every text in it cleaned: a str, or the strs inside tuples, lists, dicts
    and frozen dataclasses (a parsed mail, its attachments, its bounce report), whatever the
    depth; other values as they are. ``field`` names the dataclass field ``value`` is in. What
    needs no cleaning is returned as it is (the same object): nearly every mail."""
    result: Any = value
    if isinstance(value, str):
        result = clean_text(value) if field in MULTI_LINE else clean_line(value)
    elif _clean_already(value, field):
        pass
    elif isinstance(value, (tuple, list)):
        items = [cleaned(item, field) for item in value]
        if any(new is not old for new, old in zip(items, value, strict=True)):
            result = type(value)(items)
    elif isinstance(value, dict):
        pairs = [(cleaned(key, field), cleaned(item, field)) for key, item in value.items()]
        if any(new_key is not key or new is not old
               for (new_key, new), (key, old) in zip(pairs, value.items(), strict=True)):
            result = dict(pairs)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: new for f in dataclasses.fields(value)
                   if (new := cleaned(old := getattr(value, f.name), f.name)) is not old}
        if changes:
            result = dataclasses.replace(value, **changes)
    return result  # type: ignore[no-any-return]
