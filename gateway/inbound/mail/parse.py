"""Raw inbound bytes -> :class:`ParsedMail`; the one module that imports mail-parser.

What it promises:

- :func:`parse_message` never raises on any input except :class:`MessageRejected` for a
  message over a configured limit (size, MIME depth, part count, attachment count or size).
  When mail-parser fails, the standard library (compat32) extracts the parts, and when even
  the stdlib parser fails, a minimal header/body split is used; each fallback is a defect.
- It is a module-level function whose argument and result pickle, so the daemon can run it in
  a worker process. Bounce analysis runs here too (:mod:`gateway.inbound.mail.bounce`): it is
  CPU-bound and needs the MIME tree, which the classifier never sees.
- The MIME tree is measured without recursion before mail-parser walks it, so hostile nesting
  is refused rather than exhausting the stack; each payload is decoded once.
"""

from __future__ import annotations

import base64
import binascii
import email
import hashlib
import logging
import re
import warnings
from collections.abc import Callable
from dataclasses import replace
from email.errors import MissingHeaderBodySeparatorDefect
from email.message import Message
from typing import Any, TypeVar

import mailparser

from gateway.errors import MessageRejected
from gateway.inbound.mail.bounce import parse_bounce
from gateway.inbound.mail.clean import cleaned
from gateway.inbound.mail.mime_text import (
    addresses,
    as_str,
    date_of,
    decode_words,
    decoded_text,
    header_text,
    payload_of,
    quietly,
    return_path_of,
    safe,
)
from gateway.inbound.mail.parsed import Attachment, Limits, ParsedMail
from gateway.inbound.mail.sender import sender_of

# mail-parser logs each part it does not render and each header it cannot decode; we record
# defects ourselves.
logging.getLogger("mailparser").setLevel(logging.CRITICAL)

MAX_PARTS = 5000
"""MIME parts past which a message is refused: far above real mail (the corpus peaks at a few
hundred), low enough that one message cannot keep a worker busy for long."""
_MAX_IDS = 100
_MAX_DEFECTS = 50
_ID = re.compile(r"<[^<>\s]{1,500}>")
_HEADER_START = re.compile(rb"[!-9;-~]{1,200}:")
_HEADER_LINE = re.compile(r"([!-9;-~]+)[ \t]*:(.*)")
_T = TypeVar("_T")


class _MailParser(mailparser.MailParser):  # type: ignore[misc]
    """mail-parser without the summary it builds at the end of parsing (``parsed.mail``: every
    header looked up and decoded again, addresses parsed again; a quarter of its time), which
    we do not read: the parts, attachments and defects we read are found before it."""

    def _make_mail(self, complete: bool = True) -> dict[str, Any]:
        return {}

    def _build_header_index(self) -> dict[str, list[Any]]:
        """No header index: mail-parser builds it (every header decoded, every address header
        parsed) for its summary and header properties, which we do not use; its parse of the
        parts does not read it. We read the headers and parse the addresses ourselves
        (:func:`_header_fields`, the same on every parsing path)."""
        return {}


def parse_message(raw: bytes, limits: Limits) -> ParsedMail:
    """Parse ``raw``; raise :class:`MessageRejected` only for a message over ``limits``."""
    with warnings.catch_warnings():  # once for the message, not in each guarded call
        warnings.simplefilter("ignore")
        return _parse(raw, limits)


def _parse(raw: bytes, limits: Limits) -> ParsedMail:
    if len(raw) > limits.max_message_bytes:
        raise MessageRejected(f"message is {len(raw)} bytes, over the limit of {limits.max_message_bytes}")
    _precheck(raw)
    defects: list[str] = []
    data = raw.lstrip(b" \t\r\n")
    if raw[:1] in (b"\r", b"\n") and _HEADER_START.match(data):
        defects.append("leading blank lines before the header block were ignored")
    else:
        data = raw
    message = _guarded(lambda: email.message_from_bytes(data), None, defects, "stdlib parser")
    if message is not None and any(isinstance(d, MissingHeaderBodySeparatorDefect) for d in message.defects):
        # A line in the header block that is no header: the stdlib takes it, and everything
        # after it (the other headers, the raw MIME parts), for the body. Read without it.
        repaired = _without_bad_header_lines(data, defects)
        if repaired is not None:
            data = repaired
            message = _guarded(lambda: email.message_from_bytes(data), None, defects, "stdlib parser")
    mail = _minimal(data, defects) if message is None else _from_message(message, limits, defects)
    mail = cleaned(mail)  # every text of the mail made safe here, once
    report = _guarded(lambda: parse_bounce(mail, data, message=message), None, defects, "bounce analysis")
    sender_hash = _guarded(lambda: fingerprint(mail), "", defects, "fingerprint")
    return replace(mail, bounce=cleaned(report), defects=cleaned(tuple(defects[:_MAX_DEFECTS])),
                   fingerprint=sender_hash)


_HEADER_OR_CONTINUATION = re.compile(rb"From |[!-9;-~]+:|[ \t]")
"""What the stdlib's parser takes for a header line (or a folded one's continuation)."""


def _without_bad_header_lines(data: bytes, defects: list[str]) -> bytes | None:
    """``data`` without the lines of its header block (up to the first blank line) that are
    no header line; None when there is no blank line or no such line."""
    ends = [i for i in (data.find(b"\r\n\r\n"), data.find(b"\n\n")) if i >= 0]
    if not ends:
        return None
    end = min(ends)
    lines = data[:end].splitlines(keepends=True)
    kept = [line for line in lines if _HEADER_OR_CONTINUATION.match(line)]
    if len(kept) == len(lines):
        return None
    for line in lines:
        if not _HEADER_OR_CONTINUATION.match(line):
            defects.append(f"header line that is no header dropped: {line[:80]!r}")
    return b"".join(kept).rstrip(b"\r\n") + data[end:]


def fingerprint(mail: ParsedMail) -> str:
    """What makes two deliveries the same mail (the dedupe key beside the Message-ID): the
    content the sender wrote, not the Received or Delivered-To lines each delivery adds."""
    digest = hashlib.sha256()
    for part in (mail.from_address, mail.subject, mail.text_body, mail.html_body):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    for attachment in mail.attachments:
        digest.update(bytes.fromhex(attachment.sha256))
    return digest.hexdigest()


def _precheck(raw: bytes) -> None:
    """Refuse, before the stdlib builds an object per part, a
    message that cannot stay under :data:`MAX_PARTS`: parts open with a ``--`` line, and the
    blocks of a delivery-status part are separated by blank lines."""
    starts = raw.count(b"\n--") + raw.count(b"\r--")
    if b"delivery-status" in raw.lower():
        starts += raw.count(b"\n\n") + raw.count(b"\n\r\n") + raw.count(b"\r\r")
    if starts > 2 * MAX_PARTS:
        raise MessageRejected(f"more than {MAX_PARTS} MIME parts (at least {starts // 2} part boundaries)")


def _guarded(call: Callable[[], _T], default: _T, defects: list[str], what: str) -> _T:
    """Run a library call that may raise or warn on hostile input; only limits escape."""
    try:
        return quietly(call)
    except MessageRejected:
        raise
    except RecursionError:
        raise MessageRejected("MIME structure nested too deeply to parse") from None
    except Exception as exc:
        defects.append(f"{what} failed ({type(exc).__name__}: {str(exc)[:100]})")
        return default


def _measure(message: Message, limits: Limits) -> tuple[int, int]:
    """MIME depth (0 for a single part) and part count, without recursion; refuses past limits."""
    depth = count = 0
    stack: list[tuple[Message, int]] = [(message, 0)]
    while stack:
        part, level = stack.pop()
        count += 1
        depth = max(depth, level)
        if level > limits.max_mime_depth:
            raise MessageRejected(f"MIME depth over the limit of {limits.max_mime_depth}")
        if count > MAX_PARTS:
            raise MessageRejected(f"more than {MAX_PARTS} MIME parts")
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend((child, level + 1) for child in payload if isinstance(child, Message))
    return depth, count


def _from_message(message: Message, limits: Limits, defects: list[str]) -> ParsedMail:
    depth, parts = _measure(message, limits)
    fields = _header_fields([(name, header_text(value)) for name, value in message.raw_items()])
    found = _guarded(lambda: _from_mailparser(message, limits, defects), None, defects, "mail-parser")
    if found is None:
        empty: dict[str, Any] = {}
        found = _guarded(lambda: _from_stdlib(message, limits), empty, defects, "stdlib extraction")
    content_type = _guarded(message.get_content_type, "text/plain", defects, "content type")
    return ParsedMail(**fields, **found, content_type=content_type, mime_depth=depth, part_count=parts)


def _from_mailparser(message: Message, limits: Limits, defects: list[str]) -> dict[str, Any]:
    parsed = _MailParser(message)
    items = list(parsed.attachments)
    _check_count(len(items), limits)
    for entry in parsed.defects:
        for where, details in entry.items() if isinstance(entry, dict) else ():
            defects.extend(f"{where}: {detail}"[:300] for detail in details)
    return {
        "text_body": "\n".join(as_str(t) for t in parsed.text_plain),
        "html_body": "\n".join(as_str(t) for t in parsed.text_html),
        "attachments": tuple(_mailparser_attachment(item, limits) for item in items),
    }


def _mailparser_attachment(item: dict[str, Any], limits: Limits) -> Attachment:
    """mail-parser keeps binary payloads base64 (decoded here, once) and text ones as str."""
    text = as_str(item.get("payload"))
    if item.get("binary"):
        if len(text) // 4 * 3 > limits.max_attachment_bytes * 1.1 + 1024:  # line breaks inflate it
            _too_big(len(text) // 4 * 3, limits)
        data = text.encode("ascii", "ignore")
        try:
            payload = base64.b64decode(data)
        except (binascii.Error, ValueError):
            clean = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
            payload = base64.b64decode(clean[: len(clean) - len(clean) % 4])
    else:
        payload = text.encode("utf-8", "replace")
    return _attachment(as_str(item.get("filename")), as_str(item.get("mail_content_type")), payload, limits)


def _from_stdlib(message: Message, limits: Limits) -> dict[str, Any]:
    """The fallback extraction: leaf parts in order; text parts decoded with replacement."""
    text: list[str] = []
    html: list[str] = []
    attachments: list[Attachment] = []
    stack = [message]
    while stack:
        part = stack.pop()
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend(reversed([p for p in payload if isinstance(p, Message)]))
            continue
        kind = safe(part.get_content_type, "application/octet-stream")
        filename = safe(part.get_filename, None)
        if filename is None and safe(part.get_content_disposition, None) != "attachment" \
                and kind in ("text/plain", "text/html"):
            (html if kind == "text/html" else text).append(decoded_text(part))
            continue
        attachments.append(_attachment(decode_words(filename or ""), kind, payload_of(part), limits))
        _check_count(len(attachments), limits)
    return {"text_body": "\n".join(text), "html_body": "\n".join(html), "attachments": tuple(attachments)}


def _header_fields(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """The header-derived fields of :class:`ParsedMail`, the same on every parsing path."""
    headers: dict[str, list[str]] = {}
    for name, value in pairs:
        headers.setdefault(name.strip().lower(), []).append(value)

    def first(name: str) -> str:
        return headers.get(name, [""])[0]

    ids = _ID.findall(first("message-id"))
    bare = first("message-id").strip()
    sender = sender_of(headers.get("from", []))
    return_path = headers.get("return-path")
    raw_subject = first("subject")
    return dict(
        message_id=ids[0] if ids else (f"<{bare[:500]}>" if bare and " " not in bare else None),
        in_reply_to=tuple(_ID.findall(first("in-reply-to"))[:_MAX_IDS]),
        references=tuple(_ID.findall(" ".join(headers.get("references", [])))[-_MAX_IDS:]),
        from_name=sender.name,
        from_address=sender.address,
        sender_problem=sender.problem,
        return_path=None if return_path is None else return_path_of(return_path[0]),
        to_addresses=tuple(a for _, a in addresses(headers.get("to", []))),
        cc_addresses=tuple(a for _, a in addresses(headers.get("cc", []))),
        raw_subject=raw_subject,
        subject=decode_words(raw_subject),
        date=date_of(first("date")),
        headers={name: tuple(values) for name, values in headers.items()},
    )


def _minimal(raw: bytes, defects: list[str]) -> ParsedMail:
    """Last resort: header lines up to the first blank line, the rest as text."""
    text = raw.decode("utf-8", "surrogateescape").replace("\r\n", "\n").replace("\r", "\n")
    head, _, body = text.partition("\n\n")
    pairs: list[tuple[str, str]] = []
    for line in head.split("\n"):
        if line[:1] in (" ", "\t") and pairs:
            pairs[-1] = (pairs[-1][0], pairs[-1][1] + " " + line.strip())
        elif found := _HEADER_LINE.match(line):
            pairs.append((found.group(1), found.group(2).strip()))
    fields = _header_fields([(name, header_text(value)) for name, value in pairs])
    return ParsedMail(**fields, text_body=body.encode("utf-8", "surrogateescape").decode("utf-8", "replace"),
                      part_count=1)


def _attachment(filename: str, content_type: str, payload: bytes, limits: Limits) -> Attachment:
    if len(payload) > limits.max_attachment_bytes:
        _too_big(len(payload), limits)
    clean = re.sub(r"[\x00-\x1f\x7f]", "", filename).replace("\\", "/").rpartition("/")[2].strip()
    return Attachment(clean[:255], (content_type or "application/octet-stream").lower()[:200],
                      len(payload), payload, hashlib.sha256(payload).hexdigest())


def _check_count(count: int, limits: Limits) -> None:
    if count > limits.max_attachments:
        raise MessageRejected(f"more than {limits.max_attachments} attachments")


def _too_big(size: int, limits: Limits) -> None:
    raise MessageRejected(f"an attachment of {size} bytes is over the limit of {limits.max_attachment_bytes}")
