"""Pieces for mail sent alike to many single recipients (a notice's fan-out): a header block
folded once with only ``To`` and ``Message-ID`` written per address, and a body with an
iCalendar part beside the text and HTML."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import datetime

from gateway.errors import InvalidValue
from gateway.identity import random_hex
from gateway.outbound.compose import (
    ComposedBody,
    _domain,
    _fold,
    _mailboxes,
    check_message_id,
    compose_headers,
)
from gateway.outbound.kinds import KindSpec, MailKind


@dataclass(frozen=True, slots=True)
class HeaderTemplate:
    """Everything but ``To`` and ``Message-ID`` folded and checked once."""

    head: bytes
    """Date and From lines."""
    middle: bytes
    """Reply-To and Subject lines."""
    tail: bytes
    """The lines after Message-ID."""

    def render(self, address: str, message_id: str) -> bytes:
        to = _fold("To:", _mailboxes([("", address)])).encode("ascii")
        mid = check_message_id(message_id).encode("ascii")
        return b"".join((self.head, to, b"\r\n", self.middle, b"Message-ID: ", mid, b"\r\n", self.tail))


def header_template(
    *, subject: str, kind: MailKind | KindSpec, from_address: str, from_name: str, date: datetime,
    id_domain: str, reply_to: str | None = None,
) -> HeaderTemplate:
    """The lines :func:`compose_headers` writes for one recipient and no thread headers."""
    probe_id = f"<probe@{_domain(id_domain)}>"
    block = compose_headers(subject=subject, kind=kind, from_address=from_address,
                            from_name=from_name, to=[from_address], message_id=probe_id, date=date,
                            id_domain=id_domain, reply_to=reply_to).decode("ascii")
    before_to, _, rest = block.partition("\r\nTo: ")
    after_to = rest.split("\r\n", 1)[1]
    middle, _, tail = after_to.partition(f"Message-ID: {probe_id}\r\n")
    return HeaderTemplate((before_to + "\r\n").encode("ascii"), middle.encode("ascii"),
                          tail.encode("ascii"))


@dataclass(frozen=True, slots=True)
class CalendarPart:
    """An iCalendar object (RFC 5545 bytes) and its iTIP method (PUBLISH, CANCEL)."""

    data: bytes
    method: str
    filename: str = "invite.ics"


def with_calendar(body: ComposedBody, calendar: CalendarPart) -> ComposedBody:
    """``body`` (text and HTML) in a ``multipart/mixed`` beside the calendar part."""
    if not re.fullmatch(r"[A-Z-]{1,20}", calendar.method) or not re.fullmatch(
        r"[A-Za-z0-9._-]{1,60}", calendar.filename
    ):
        raise InvalidValue("bad calendar method or file name")
    inner_headers = body.content_headers.removeprefix(b"MIME-Version: 1.0\r\n")
    boundary = f"=_cg{random_hex(12)}"
    delimiter = f"--{boundary}\r\n".encode("ascii")
    head = (f'Content-Type: text/calendar; charset="utf-8"; method={calendar.method}; '
            f'name="{calendar.filename}"\r\nContent-Transfer-Encoding: base64\r\n'
            f'Content-Disposition: attachment; filename="{calendar.filename}"\r\n\r\n')
    ics = head.encode("ascii") + base64.encodebytes(calendar.data).replace(b"\n", b"\r\n")
    end = f"\r\n--{boundary}--\r\n".encode("ascii")
    payload = b"".join((delimiter, inner_headers, b"\r\n", body.payload, b"\r\n", delimiter, ics, end))
    content = f'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="{boundary}"\r\n'
    return ComposedBody(content.encode("ascii"), payload)
