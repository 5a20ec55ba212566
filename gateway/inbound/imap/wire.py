"""Pure IMAP wire syntax: a defensive FETCH response parser, plus SELECT/SEARCH parsing and
UID sets, independent of any IMAP library.

aioimaplib hands back a FETCH response as a list of pieces: text lines (``bytes``, CRLF
removed, the ``* `` prefix usually stripped but not always — see aioimaplib issue #51)
and literal payloads (``bytearray``) that follow a line ending in ``{n}``. This module
turns such pieces, or the raw bytes from the wire, into :class:`FetchRecord` objects.

What it promises:

- literals are taken by their byte count, so a message may contain anything (parentheses,
  CRLF, lines that look like ``* 5 FETCH (``) without confusing the parser;
- a ``* `` prefix is accepted or not on every response line;
- a response it cannot understand is skipped *and reported* in :attr:`FetchParse.errors`,
  never silently: callers compare the UIDs they asked for with the UIDs they got.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

Value: TypeAlias = "bytes | int | list[Value] | None"
"""An attribute value: a number, a string (quoted or literal), NIL, or a parenthesised list."""

_FETCH_START = re.compile(rb"(?:\* )?(\d+) FETCH \(")
_NUMBER = re.compile(rb"\d+")
_ATOM = re.compile(rb"[^\s()\[\]{}\"]+")
_LITERAL = re.compile(rb"~?\{(\d+)\}\r\n")


class FetchSyntaxError(ValueError):
    """The response is not a FETCH response this parser understands."""


@dataclass(frozen=True)
class FetchRecord:
    """One ``* n FETCH (...)`` response: the sequence number and its attributes by upper-case name."""

    seq: int
    attributes: dict[str, Value]

    @property
    def uid(self) -> int | None:
        value = self.attributes.get("UID")
        return value if isinstance(value, int) else None

    @property
    def size(self) -> int | None:
        value = self.attributes.get("RFC822.SIZE")
        return value if isinstance(value, int) else None

    def section(self, name: str) -> bytes | None:
        """The content of ``BODY[name]`` (``""`` for the whole message), or None if absent or NIL."""
        value = self.attributes.get(f"BODY[{name.upper()}]")
        return value if isinstance(value, bytes) else None


@dataclass
class FetchParse:
    """Everything found in a response: the records, and a description of each part skipped."""

    records: list[FetchRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def join_pieces(pieces: Iterable[bytes | bytearray]) -> bytes:
    """Rebuild the wire bytes from aioimaplib's pieces: text lines get their CRLF back,
    literal payloads (``bytearray``) are inserted as they are. One ``join``: growing a
    ``bytearray`` by each piece copied a batch's messages several times over."""
    return b"".join([piece if isinstance(piece, bytearray) else piece + b"\r\n" for piece in pieces])


def parse_pieces(pieces: Sequence[bytes | bytearray]) -> FetchParse:
    """Parse aioimaplib's response lines (without the final tagged-status line)."""
    return parse_fetch(join_pieces(pieces))


def parse_fetch(data: bytes) -> FetchParse:
    """Parse every FETCH response in ``data``; other untagged lines (EXISTS, EXPUNGE, ...) are ignored."""
    result = FetchParse()
    pos = 0
    while pos < len(data):
        match = _FETCH_START.match(data, pos)
        if match is None:
            pos = _next_line(data, pos)
            continue
        try:
            found = _common(data, match.end())
            attributes, end = found if found is not None else _Reader(data, match.end()).attribute_list()
            if not data.startswith(b"\r\n", end) and end != len(data):
                raise FetchSyntaxError(f"text after the attribute list at offset {end}")
            result.records.append(FetchRecord(int(match.group(1)), attributes))
            pos = end + 2
        except FetchSyntaxError as error:
            snippet = data[match.start() : match.start() + 80]
            result.errors.append(f"{error} in response starting {snippet!r}")
            pos = _next_line(data, match.end())
    return result


_COMMON = re.compile(rb"UID (\d+) (?:RFC822\.SIZE (\d+)\)|BODY\[\] \{(\d+)\}\r\n)")
"""The two responses the gateway asks for, as Dovecot and most servers write them."""


def _common(data: bytes, pos: int) -> tuple[dict[str, Value], int] | None:
    """:meth:`_Reader.attribute_list` of ``(UID n RFC822.SIZE n)`` and ``(UID n BODY[] {n}
    ...)``, the responses to the gateway's two FETCHes, by one regular expression (the
    reader's walk was a tenth of the event loop's CPU); None for anything else, which the
    reader then parses (a property test holds the two to the same answers)."""
    found = _COMMON.match(data, pos)
    if found is None:
        return None
    uid, size, literal = found.groups()
    if size is not None:
        return {"UID": int(uid), "RFC822.SIZE": int(size)}, found.end()
    end = found.end() + int(literal)
    if data[end : end + 1] != b")":  # truncated, or more attributes after the body
        return None
    return {"UID": int(uid), "BODY[]": data[found.end() : end]}, end + 1


def _next_line(data: bytes, pos: int) -> int:
    end = data.find(b"\r\n", pos)
    return len(data) if end < 0 else end + 2


class _Reader:
    """A cursor over one response; every method returns a value and leaves ``pos`` after it."""

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def attribute_list(self) -> tuple[dict[str, Value], int]:
        """Name/value pairs up to the closing parenthesis (the opening one is consumed)."""
        attributes: dict[str, Value] = {}
        while True:
            self._skip_spaces()
            if self._peek() == b")":
                return attributes, self.pos + 1
            name = self._attribute_name()
            self._expect(b" ")
            attributes[name] = self.value()

    def value(self) -> Value:
        char = self._peek()
        if char == b"(":
            return self._list()
        if char == b'"':
            return self._quoted()
        if char in (b"{", b"~"):
            return self._literal()
        number = _NUMBER.match(self.data, self.pos)
        atom = _ATOM.match(self.data, self.pos)
        if atom is None:
            raise FetchSyntaxError(f"unexpected {char!r} at offset {self.pos}")
        self.pos = atom.end()
        if number is not None and number.end() == atom.end():
            return int(number.group())
        return None if atom.group().upper() == b"NIL" else atom.group()

    def _attribute_name(self) -> str:
        """``UID``, ``RFC822.SIZE``, ``BODY[HEADER.FIELDS (A B)]<0>``, ... in upper case."""
        atom = _ATOM.match(self.data, self.pos)
        if atom is None:
            raise FetchSyntaxError(f"attribute name expected at offset {self.pos}")
        self.pos = atom.end()
        name = atom.group()
        if self._peek() == b"[":
            close = self.data.find(b"]", self.pos)
            if close < 0 or b"\r\n" in self.data[self.pos : close]:
                raise FetchSyntaxError(f"unclosed section at offset {self.pos}")
            name += self.data[self.pos : close + 1]
            self.pos = close + 1
            partial = re.compile(rb"<\d+>").match(self.data, self.pos)
            if partial is not None:  # BODY[]<0>: the origin is not part of the name we look up
                self.pos = partial.end()
        return name.decode("ascii", "replace").upper()

    def _list(self) -> list[Value]:
        self.pos += 1
        items: list[Value] = []
        while True:
            self._skip_spaces()
            if self._peek() == b")":
                self.pos += 1
                return items
            items.append(self.value())

    def _quoted(self) -> bytes:
        out = bytearray()
        pos = self.pos + 1
        while pos < len(self.data):
            char = self.data[pos]
            if char == 0x5C and pos + 1 < len(self.data):  # backslash escapes the next byte
                out.append(self.data[pos + 1])
                pos += 2
            elif char == 0x22:
                self.pos = pos + 1
                return bytes(out)
            elif char in (0x0D, 0x0A):
                break
            else:
                out.append(char)
                pos += 1
        raise FetchSyntaxError(f"unterminated quoted string at offset {self.pos}")

    def _literal(self) -> bytes:
        match = _LITERAL.match(self.data, self.pos)
        if match is None:
            raise FetchSyntaxError(f"malformed literal at offset {self.pos}")
        size = int(match.group(1))
        end = match.end() + size
        if end > len(self.data):
            raise FetchSyntaxError(f"literal of {size} bytes is truncated at offset {self.pos}")
        self.pos = end
        return self.data[match.end() : end]

    def _peek(self) -> bytes:
        if self.pos >= len(self.data):
            raise FetchSyntaxError("response ends inside the attribute list")
        return self.data[self.pos : self.pos + 1]

    def _expect(self, token: bytes) -> None:
        if not self.data.startswith(token, self.pos):
            raise FetchSyntaxError(f"expected {token!r} at offset {self.pos}")
        self.pos += len(token)

    def _skip_spaces(self) -> None:
        while self.data.startswith(b" ", self.pos):
            self.pos += 1


# -- other wire syntax the client needs, kept pure so it is tested on its own ---------------

MAX_UIDS_PER_COMMAND = 200
"""UIDs per UID FETCH: aioimaplib recursed once per response line (issue #118); our reader
(:class:`~gateway.inbound.imap.protocol.LeanProtocol`) loops, and a batch (150 messages by default,
500 at most) takes one to three commands. A move's UIDs are cut by the length of their set
instead (:func:`uid_sets`)."""

_SELECT_CODE = re.compile(rb"\[(UIDVALIDITY|UIDNEXT) (\d+)\]", re.IGNORECASE)
_EXISTS = re.compile(rb"^(?:\* )?(\d+) EXISTS\b", re.IGNORECASE)


@dataclass(frozen=True)
class FolderState:
    """What SELECT reports. A different ``uidvalidity`` than last time means every UID the
    caller knows for this folder is void: it must forget them and start over."""

    name: str
    uidvalidity: int
    uidnext: int | None
    exists: int


def parse_select(name: str, lines: Iterable[bytes | bytearray]) -> FolderState:
    """FolderState from SELECT's untagged lines; UIDVALIDITY is mandatory (RFC 3501 6.3.1)."""
    codes: dict[bytes, int] = {}
    exists = 0
    for line in lines:
        for key, number in _SELECT_CODE.findall(bytes(line)):
            codes[key.upper()] = int(number)
        if match := _EXISTS.match(bytes(line)):
            exists = int(match.group(1))
    if b"UIDVALIDITY" not in codes:
        raise FetchSyntaxError(f"SELECT {name!r} reported no UIDVALIDITY")
    return FolderState(name, codes[b"UIDVALIDITY"], codes.get(b"UIDNEXT"), exists)


def parse_search(lines: Iterable[bytes | bytearray], min_uid: int = 1) -> list[int]:
    """UIDs from SEARCH response lines, ascending, only those >= ``min_uid`` (``n:*`` always
    matches the highest UID, even when it is below n).

    aioimaplib strips ``* SEARCH`` (``b"2 3"``); the full form ``* SEARCH 2 3`` is accepted too.
    A line with anything but numbers after that is not a SEARCH result and is ignored.
    """
    uids: set[int] = set()
    for line in lines:
        words = bytes(line).split()
        if words[:1] == [b"*"]:
            words = words[1:]
        if words[:1] and words[0].upper() == b"SEARCH":
            words = words[1:]
        if all(word.isdigit() for word in words):
            uids.update(int(word) for word in words)
    return sorted(uid for uid in uids if uid >= min_uid)


MAX_UID_SET_CHARS = 7000
"""Characters of a UID set in one command at most (:func:`uid_sets`): RFC 7162 (section 4)
asks clients to keep a command line to about 8192 octets."""


def uid_set(uids: Iterable[int]) -> str:
    """``[1, 2, 3, 7, 9, 10]`` -> ``"1:3,7,9:10"``."""
    found = _ranges(uids)
    if not found:
        raise ValueError("an empty UID set cannot be sent")
    return ",".join(found)


def uid_sets(uids: Iterable[int], max_chars: int = MAX_UID_SET_CHARS) -> list[str]:
    """The UID set of ``uids`` cut into sets of at most ``max_chars`` characters (a range longer
    than that alone is a set of its own); none for no UIDs."""
    sets: list[str] = []
    current: list[str] = []
    length = 0
    for item in _ranges(uids):
        if current and length + 1 + len(item) > max_chars:
            sets.append(",".join(current))
            current, length = [], 0
        length += len(item) + (1 if current else 0)
        current.append(item)
    if current:
        sets.append(",".join(current))
    return sets


def _ranges(uids: Iterable[int]) -> list[str]:
    """The ranges of a UID set in order: ``[1, 2, 3, 7]`` -> ``["1:3", "7"]``."""
    ranges: list[list[int]] = []
    for uid in sorted(set(uids)):
        if ranges and uid == ranges[-1][1] + 1:
            ranges[-1][1] = uid
        else:
            ranges.append([uid, uid])
    return [str(a) if a == b else f"{a}:{b}" for a, b in ranges]


def chunks(items: Sequence[int], size: int) -> list[list[int]]:
    """``items`` cut into lists of at most ``size``."""
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def encode_folder(name: str) -> str:
    """A folder name as an IMAP quoted string, non-ASCII in modified UTF-7 (RFC 3501 5.1.3)."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            encoded = base64.b64encode("".join(pending).encode("utf-16-be")).decode("ascii")
            out.append("&" + encoded.rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return '"' + "".join(out).replace("\\", "\\\\").replace('"', '\\"') + '"'
