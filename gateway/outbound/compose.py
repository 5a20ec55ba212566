"""Rendered mail to RFC 5322 bytes, assembled by hand because it is on the hot path.

``EmailMessage(policy=default).as_bytes()`` is far too slow for the outbox's pace; this module
writes the header block itself and encodes the two body parts with the C codecs
(``binascii.b2a_qp``, ``base64``); bench/compose_micro.py compares the two.

What it promises:

* 7-bit output with CRLF line ends: non-ASCII header text becomes RFC 2047 encoded-words;
  a body part is sent as is (``7bit``) when it is ASCII with lines under 999 characters, else
  quoted-printable (mostly-ASCII text) or base64 (mostly non-ASCII text).
* No CR, LF, NUL or other control character taken from data ever reaches a header: display
  names and subjects are flattened to one line, addresses and Message-IDs are validated and
  a bad one raises :class:`~gateway.errors.InvalidValue` instead of being "repaired".
* Header lines stay within 78 characters where there is whitespace to fold at, and always
  within 998.
* The stdlib parser (``email.message_from_bytes(..., policy=default)``) reads back the same
  subject, names, text and HTML.

For notice fan-out, build the body once (:func:`compose_body`) and pair it with each
recipient's header block (:func:`compose_headers`, :func:`assemble`).

Header decisions: ``Auto-Submitted`` comes from the kind (see ``kinds.py``);
``X-Auto-Response-Suppress: OOF, AutoReply`` asks Exchange for no out-of-office or other
auto-replies but, unlike ``All``, keeps its non-delivery reports, which the bounce handling
needs. No ``Precedence: bulk``: RFC 3834 does not rely on it, and sendmail-style MTAs give
negative precedence mail lower queue priority and drop its error reports, which is wrong for
incident alerts and for bounce tracking.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

from gateway.errors import InvalidValue
from gateway.identity import LOOP_HEADER, random_hex
from gateway.outbound.kinds import KindSpec, MailKind
from gateway.outbound.render import Rendered, one_line

AUTO_RESPONSE_SUPPRESS = "OOF, AutoReply"
MAX_REFERENCES = 20
"""References keeps the thread's first Message-ID and the most recent ones, up to this many."""

Recipient = str | tuple[str, str]
"""An address, or ``(display name, address)``."""

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ADDRESS_RE = re.compile(
    rf"{_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
)
_MSGID_RE = re.compile(r"<[!-;=?-~]+@[!-;=?-~]+>")
_FIELD_NAME_RE = re.compile(r"[!-9;-~]+")
_PHRASE_SAFE_RE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*")
_RESERVED = frozenset(
    f"date from to cc bcc reply-to subject message-id in-reply-to references mime-version "
    f"content-type content-transfer-encoding auto-submitted x-auto-response-suppress sender "
    f"return-path {LOOP_HEADER.lower()}".split()
)
"""Headers ``extra_headers`` may not set: ours, and the ones that would add recipients."""
_LINE = 78
_EW_BYTES = 42
"""UTF-8 bytes per encoded-word: 56 base64 characters, 68 with the ``=?utf-8?b?...?=`` frame."""
_EW_NAME_BYTES = 45
"""Display names: 72-character encoded-words, the most RFC 2047 allows (75) in 4-byte steps.

A name longer than this needs several encoded-words. RFC 2047 decoders join them; the
stdlib's ``policy.default`` address parser shows a space between them (a stdlib quirk), so
names are kept in one word whenever they fit."""
_RAW_WORD_MAX = 66
_ASCII = bytes(range(128))
_7BIT = b"\t\r\n" + bytes(range(32, 127))
"""The bytes a 7bit part may hold (besides the 998-character line limit)."""


@dataclass(frozen=True, slots=True)
class ComposedBody:
    """The MIME body of one rendered mail, built once and shared by every recipient.

    ``content_headers`` is the ``MIME-Version`` and ``Content-Type`` lines (CRLF-terminated);
    ``payload`` is everything after the blank line.
    """

    content_headers: bytes
    payload: bytes


def compose(
    rendered: Rendered,
    *,
    kind: MailKind | KindSpec,
    from_address: str,
    from_name: str,
    to: Sequence[Recipient],
    message_id: str,
    date: datetime,
    id_domain: str,
    reply_to: str | None = None,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    extra_headers: Mapping[str, str] | None = None,
) -> bytes:
    """One complete message: our headers, then ``multipart/alternative`` (text, then HTML)."""
    headers = compose_headers(
        subject=rendered.subject, kind=kind, from_address=from_address, from_name=from_name,
        to=to, message_id=message_id, date=date, id_domain=id_domain, reply_to=reply_to,
        in_reply_to=in_reply_to, references=references, extra_headers=extra_headers,
    )
    return assemble(headers, compose_body(rendered))


def assemble(headers: bytes, body: ComposedBody) -> bytes:
    """Join a header block from :func:`compose_headers` with a shared body."""
    return b"".join((headers, body.content_headers, b"\r\n", body.payload))


def compose_body(rendered: Rendered) -> ComposedBody:
    """Encode the text and HTML parts once. The boundary starts with ``=_``, which neither
    quoted-printable nor base64 can produce, and carries 96 random bits against 7bit text."""
    boundary = f"=_cg{random_hex(12)}"
    delimiter = f"--{boundary}\r\n".encode("ascii")
    text, html = _part("text/plain", rendered.text), _part("text/html", rendered.html)
    end = f"\r\n--{boundary}--\r\n".encode("ascii")
    content = f'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="{boundary}"\r\n'
    payload = b"".join((delimiter, text, b"\r\n", delimiter, html, end))
    return ComposedBody(content.encode("ascii"), payload)


def _part(mime_type: str, text: str) -> bytes:
    """One leaf part: 7bit when it already is (no encoding cost), else quoted-printable for
    mostly-ASCII text, base64 when QP would bloat it."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    data = text.replace("\n", "\r\n").encode("utf-8", "replace")
    if not data.translate(None, _7BIT) and max(map(len, data.split(b"\r\n"))) <= 998:
        cte = "7bit"
        encoded = data
    elif len(data.translate(None, _ASCII)) * 6 > len(data):
        cte = "base64"
        encoded = base64.encodebytes(data).replace(b"\n", b"\r\n")
    else:
        cte = "quoted-printable"
        encoded = binascii.b2a_qp(data, istext=True)
    head = f'Content-Type: {mime_type}; charset="utf-8"\r\nContent-Transfer-Encoding: {cte}\r\n\r\n'
    return head.encode("ascii") + encoded


def compose_headers(
    *,
    subject: str,
    kind: MailKind | KindSpec,
    from_address: str,
    from_name: str,
    to: Sequence[Recipient],
    message_id: str,
    date: datetime,
    id_domain: str,
    reply_to: str | None = None,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    extra_headers: Mapping[str, str] | None = None,
) -> bytes:
    """The header block of one message, without the MIME headers, CRLF-terminated lines."""
    spec = kind.spec if isinstance(kind, MailKind) else kind
    if date.tzinfo is None or date.utcoffset() is None:
        raise InvalidValue("message date must be timezone-aware")
    if not to:
        raise InvalidValue("a message needs at least one recipient")
    lines = [
        "Date: " + format_datetime(date),
        _fold("From:", _mailbox(from_name, from_address)),
        _fold("To:", _mailboxes(_pair(r) for r in to)),
    ]
    if reply_to:
        lines.append("Reply-To: " + check_address(reply_to))
    lines.append(_fold("Subject:", _unstructured_words(subject)))
    lines.append("Message-ID: " + check_message_id(message_id))
    if in_reply_to:
        lines.append("In-Reply-To: " + check_message_id(in_reply_to))
    refs = clean_references(references)
    if refs:
        lines.append(_fold("References:", refs))
    if spec.auto_submitted:
        lines.append("Auto-Submitted: " + spec.auto_submitted)
    lines.append("X-Auto-Response-Suppress: " + AUTO_RESPONSE_SUPPRESS)
    lines.append(f"{LOOP_HEADER}: {_domain(id_domain)}")
    for name, value in (extra_headers or {}).items():
        lines.append(_extra(name, value))
    lines.append("")
    return "\r\n".join(lines).encode("ascii")


def check_address(address: str) -> str:
    """``address`` if it is a plain ASCII ``local@domain``; else :class:`InvalidValue`."""
    if not _ADDRESS_RE.fullmatch(address) or len(address) > 254:
        raise InvalidValue(f"not a deliverable email address: {address!r}")
    return address


def check_message_id(message_id: str) -> str:
    """``message_id`` if it is one bracketed ``<left@right>``; else :class:`InvalidValue`."""
    if not _MSGID_RE.fullmatch(message_id) or len(message_id) > 250:
        raise InvalidValue(f"not a Message-ID: {message_id!r}")
    return message_id


def clean_references(references: Iterable[str]) -> list[str]:
    """Well-formed Message-IDs from ``references`` (customer data: junk is dropped),
    in order, without duplicates: the first and the latest :data:`MAX_REFERENCES`."""
    seen: dict[str, None] = {}
    for value in references:
        for candidate in value.split():
            if _MSGID_RE.fullmatch(candidate) and len(candidate) <= 250:
                seen[candidate] = None
    refs = list(seen)
    if len(refs) > MAX_REFERENCES:
        refs = [refs[0], *refs[-(MAX_REFERENCES - 1) :]]
    return refs


def _pair(recipient: Recipient) -> tuple[str, str]:
    return ("", recipient) if isinstance(recipient, str) else recipient


def _mailboxes(mailboxes: Iterable[tuple[str, str]]) -> list[str]:
    """Fold tokens of an address list: each mailbox's words, a comma after all but the last."""
    tokens: list[str] = []
    for name, address in mailboxes:
        if tokens:
            tokens[-1] += ","
        tokens.extend(_mailbox(name, address))
    return tokens


def _mailbox(name: str, address: str) -> list[str]:
    """``Name <address>`` as fold tokens; the name quoted if it needs it, encoded if not ASCII."""
    check_address(address)
    name = one_line(name)
    if not name:
        return [address]
    if name.isascii() and len(name) <= _RAW_WORD_MAX and "=?" not in name:
        if _PHRASE_SAFE_RE.fullmatch(name):
            return [*name.split(" "), f"<{address}>"]
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return [f'"{quoted}"', f"<{address}>"]
    return [*_encoded_words(name, _EW_NAME_BYTES), f"<{address}>"]


def _unstructured_words(text: str) -> list[str]:
    """``text`` as header words: ASCII words raw, runs of other words as encoded-words.

    Adjacent encoded-words lose the space between them when decoded, so a run of words
    that need encoding is encoded together, spaces included.
    """
    words = one_line(text).split(" ")
    out: list[str] = []
    run: list[str] = []
    for word in words:
        if word.isascii() and len(word) <= _RAW_WORD_MAX and "=?" not in word:
            if run:
                out.extend(_encoded_words(" ".join(run)))
                run = []
            out.append(word)
        else:
            run.append(word)
    if run:
        out.extend(_encoded_words(" ".join(run)))
    return [w for w in out if w]


def _encoded_words(text: str, max_bytes: int = _EW_BYTES) -> list[str]:
    """RFC 2047 B-encoded words of at most ``max_bytes`` bytes, never splitting a
    character (so each word decodes on its own)."""
    words: list[str] = []
    chunk = bytearray()
    for ch in text:
        encoded = ch.encode("utf-8", "replace")
        if len(chunk) + len(encoded) > max_bytes:
            words.append(_ew(chunk))
            chunk = bytearray()
        chunk += encoded
    if chunk:
        words.append(_ew(chunk))
    return words


def _ew(data: bytes | bytearray) -> str:
    return "=?utf-8?b?" + base64.b64encode(data).decode("ascii") + "?="


def _fold(prefix: str, tokens: Sequence[str]) -> str:
    """``prefix`` then ``tokens`` separated by spaces, folded so lines stay under 78
    columns wherever a token boundary allows."""
    line = prefix.rstrip()
    lines: list[str] = []
    for i, token in enumerate(tokens):
        if i and len(line) + 1 + len(token) > _LINE:
            lines.append(line)
            line = " " + token
        else:
            line = f"{line} {token}"
    lines.append(line)
    return "\r\n".join(lines)


def _domain(domain: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", domain):
        raise InvalidValue(f"not a domain: {domain!r}")
    return domain


def _extra(name: str, value: str) -> str:
    if not _FIELD_NAME_RE.fullmatch(name) or len(name) > 60 or name.lower() in _RESERVED:
        raise InvalidValue(f"header name not allowed: {name!r}")
    return _fold(f"{name}:", _unstructured_words(value))
