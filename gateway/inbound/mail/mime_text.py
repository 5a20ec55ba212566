"""Header values and MIME part text as ``str``, never raising: RFC 2047 encoded words, raw
8-bit bytes, unknown or broken charsets, addresses, dates. Shared by the parser
(:mod:`gateway.inbound.mail.parse`) and the bounce analysis (:mod:`gateway.inbound.mail.bounce`)."""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from email.header import decode_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any, TypeVar

_T = TypeVar("_T")


def header_text(value: Any) -> str:
    """A raw header value as text: unfolded, undecodable 8-bit bytes as UTF-8 or cp1252."""
    text = as_str(value)
    if _ESCAPED_BYTE.search(text):
        data = text.encode("utf-8", "surrogateescape")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("cp1252", "replace")
    if "\r" in text or "\n" in text:
        text = _LINE_BREAK.sub("", text)
    return text.strip()


_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
"""An undecodable byte, as the stdlib parser keeps it (``surrogateescape``)."""
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def decode_words(value: str) -> str:
    """RFC 2047 encoded words decoded; unknown charsets and bad encodings never raise."""
    if "=?" not in value:
        return value
    try:
        chunks = decode_header(value)
    except Exception:
        return value
    return "".join(chunk if isinstance(chunk, str) else _decode(chunk, charset) for chunk, charset in chunks)


def decoded_text(part: Message) -> str:
    """A leaf part's text: transfer-decoded, then its charset (UTF-8 when unknown), with replacement."""
    return _decode(payload_of(part), safe(part.get_content_charset, None))


def _decode(data: bytes, charset: str | None) -> str:
    """Bytes in a declared charset; ``x-`` names (X-GBK) tried without the prefix, then UTF-8."""
    name = (charset or "utf-8").strip().lower()
    for candidate in (name, name.removeprefix("x-")):
        with contextlib.suppress(Exception):  # LookupError, and codecs that are not text codecs
            return data.decode(candidate, "replace")
    return data.decode("utf-8", "replace")


def payload_of(part: Message) -> bytes:
    data = safe(lambda: part.get_payload(decode=True), None)
    return data if isinstance(data, bytes) else b""


def addresses(values: list[str]) -> list[tuple[str, str]]:
    """(decoded display name, lower-cased addr-spec) for each well-formed address."""
    none: list[tuple[str, str]] = []
    found = _plain_addresses(values) or safe(lambda: getaddresses(values), none)
    return [(decode_words(name).strip(), addr.strip().lower()) for name, addr in found
            if "@" in addr and len(addr) <= 320 and not re.search(r"[\s\x00-\x1f<>]", addr.strip())]


_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ADDRESS = re.compile(
    rf"[ \t]*(?:((?:{_ATEXT}[ \t]+)*?{_ATEXT})?[ \t]*<({_ATEXT}(?:\.{_ATEXT})*@{_ATEXT}(?:\.{_ATEXT})*)>"
    rf"|({_ATEXT}(?:\.{_ATEXT})*@{_ATEXT}(?:\.{_ATEXT})*))[ \t]*"
)
"""One address in its commonest forms, ``Ana Silva <ana@example.com>`` and ``ana@example.com``:
a display name of plain words (no quotes, comments, dots or commas) and a dot-atom on both
sides of the ``@``."""


def _plain_addresses(values: list[str]) -> list[tuple[str, str]] | None:
    """What :func:`email.utils.getaddresses` returns for a single address in its commonest
    forms (:data:`_PLAIN_ADDRESS`), at a fraction of its cost (its parser walks the header a
    character at a time); None for anything else, which goes to it.
    ``tests/unit/test_mime_text.py`` holds the two to the same answers."""
    if len(values) != 1 or not (found := _PLAIN_ADDRESS.fullmatch(values[0])):
        return None
    name, bracketed, bare = found.groups()
    return [(" ".join((name or "").split()), bracketed or bare)]


def return_path_of(value: str) -> str:
    inner = value.strip()
    if inner.startswith("<"):
        inner = inner[1:].partition(">")[0]
    inner = inner.strip().lower()
    return inner if len(inner) <= 320 and not re.search(r"[\s\x00-\x1f<>]", inner) else ""


def date_of(value: str) -> datetime | None:
    parsed = safe(lambda: parsedate_to_datetime(value), None) if value else None
    if not isinstance(parsed, datetime):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def as_str(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def safe(call: Callable[[], _T], default: _T) -> _T:
    try:
        return quietly(call)
    except Exception:
        return default


_IGNORE_ALL = ("ignore", None, Warning, None, 0)
"""The filter ``warnings.simplefilter("ignore")`` puts first."""


def quietly(call: Callable[[], _T]) -> _T:
    """``call()`` with warnings ignored (the stdlib warns on some hostile input). Where they
    are ignored already (:func:`gateway.inbound.mail.parse.parse_message` does that once for a
    whole message), not again: ``catch_warnings`` copies the filter list each time."""
    if warnings.filters[:1] == [_IGNORE_ALL]:
        return call()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call()
