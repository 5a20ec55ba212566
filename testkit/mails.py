"""Realistic inbound mail for the end-to-end tests and the benchmarks: replies as mail clients
write them, out-of-office answers, bounces, new-case attempts."""

from __future__ import annotations

import base64
import email
import email.utils
import html
import re
from email import policy
from email.message import EmailMessage, Message

from sqlalchemy import select

from gateway.app import App
from gateway.inbound.loop.store import raw_of
from gateway.models import InboundMessage, Outbox
from testkit.servers.smtp import Received, RecordingSmtpServer

CUSTOMER_DOMAIN = "acme.example"


def parse(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=policy.default)


def text_of(msg: Message) -> str:
    part = msg.get_body(preferencelist=("plain",)) if hasattr(msg, "get_body") else None
    return part.get_content() if part is not None else ""


async def sent_mail(app: App, case_id: int | None = None, kind: str | None = None) -> bytes:
    """The bytes of the newest outbox message (of a case, of a kind): what the customer got."""
    stmt = select(Outbox.data).order_by(Outbox.id.desc()).limit(1)
    if case_id is not None:
        stmt = stmt.where(Outbox.case_id == case_id)
    if kind is not None:
        stmt = stmt.where(Outbox.kind == kind)
    async with app.sessions() as session:
        data = await session.scalar(stmt)
    assert data is not None, "no such outbox message"
    return data


def _finish(msg: EmailMessage, sender: str, to: str) -> bytes:
    msg["From"] = email.utils.formataddr(("", sender)) if "<" not in sender else sender
    msg["To"] = to
    msg["Date"] = email.utils.formatdate(localtime=False)
    if "Message-ID" not in msg:
        msg["Message-ID"] = email.utils.make_msgid(domain=CUSTOMER_DOMAIN)
    return msg.as_bytes(policy=policy.SMTP)


def reply(
    original: bytes,
    *,
    sender: str,
    text: str,
    to: str = "care@vendor.example",
    subject_prefix: str = "RE: ",
    keep_threading: bool = True,
    keep_subject: bool = True,
    html: bool = False,
    extra_headers: dict[str, str] | None = None,
    quote: bool = True,
    attachments: list[tuple[str, str, bytes]] | None = None,
) -> bytes:
    """A reply as Outlook or Gmail writes it: new text on top, the original quoted below
    (``quote=False``: the new text only); ``attachments`` are (filename, MIME type, bytes)."""
    orig = parse(original)
    msg = EmailMessage()
    msg["Subject"] = subject_prefix + (str(orig["Subject"]) if keep_subject else "my reply")
    if keep_threading:
        msg["In-Reply-To"] = orig["Message-ID"]
        msg["References"] = " ".join(filter(None, [str(orig.get("References", "")), str(orig["Message-ID"])]))
    for name, value in (extra_headers or {}).items():
        msg[name] = value
    quoted = "\n".join("> " + line for line in text_of(orig).splitlines())
    body = f"{text}\n\nOn Mon, 2 Nov 2026 at 10:00, Customer Care <care@vendor.example> wrote:\n{quoted}\n"
    msg.set_content(body if quote else f"{text}\n")
    if html:
        msg.add_alternative(
            f"<html><body><p>{text}</p><blockquote>{text_of(orig)}</blockquote></body></html>", subtype="html"
        )
    for filename, mime_type, payload in attachments or []:
        maintype, _, subtype = mime_type.partition("/")
        msg.add_attachment(payload, maintype=maintype, subtype=subtype, filename=filename)
    return _finish(msg, sender, to)


def html_reply(original: bytes, *, sender: str, text: str, subject: str = "Re: my reply") -> bytes:
    """A reply with only an HTML part (some webmail), the original quoted in a blockquote, so
    the token is only in the HTML (escaped as HTML escapes it); no threading headers."""
    orig = parse(original)
    quoted = html.escape(text_of(orig)).replace("\n", "<br>\n")
    msg = EmailMessage()
    msg["Subject"] = subject
    msg.set_content(
        f'<html><body><div>{html.escape(text)}</div><br><blockquote type="cite">'
        f"{quoted}</blockquote></body></html>",
        subtype="html",
    )
    return _finish(msg, sender, "care@vendor.example")


def new_mail(
    *,
    sender: str,
    subject: str,
    text: str,
    to: str = "care@vendor.example",
    extra_headers: dict[str, str] | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["Subject"] = subject
    for name, value in (extra_headers or {}).items():
        msg[name] = value
    msg.set_content(text)
    return _finish(msg, sender, to)


def out_of_office(original: bytes, *, sender: str) -> bytes:
    """An Exchange-style automatic reply to one of our mails."""
    orig = parse(original)
    return new_mail(
        sender=sender,
        subject=f"Automatic reply: {orig['Subject']}",
        text="I am out of the office until Monday with limited access to email.",
        extra_headers={
            "Auto-Submitted": "auto-replied",
            "X-Auto-Response-Suppress": "All",
            "In-Reply-To": str(orig["Message-ID"]),
        },
    )


def bounce(
    original: bytes, *, recipient: str, status: str = "5.1.1", diagnostic: str = "550 5.1.1 user unknown"
) -> bytes:
    """A standard RFC 3464 delivery status notification for ``original``."""
    orig = parse(original)
    headers = "".join(f"{k}: {v}\r\n" for k, v in orig.items())
    mid = email.utils.make_msgid(domain=f"mx.{CUSTOMER_DOMAIN}")
    date = email.utils.formatdate()
    return (
        f"Return-Path: <>\r\nFrom: MAILER-DAEMON@mx.{CUSTOMER_DOMAIN} (Mail Delivery System)\r\n"
        f"To: care@vendor.example\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        f"Date: {date}\r\nMessage-ID: {mid}\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="BOUNDARY"\r\n\r\n'
        "--BOUNDARY\r\nContent-Type: text/plain\r\n\r\n"
        f"Your message could not be delivered to {recipient}.\r\n\r\n"
        "--BOUNDARY\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.{CUSTOMER_DOMAIN}\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; {diagnostic}\r\n\r\n"
        f"--BOUNDARY\r\nContent-Type: text/rfc822-headers\r\n\r\n{headers}\r\n--BOUNDARY--\r\n"
    ).encode()


def token_of(original: bytes) -> str:
    """The reference token (``REF:<number>.<mac>``) in the subject of one of our mails."""
    found = re.search(r"REF:\d{8,12}\.[0-9a-z]{13}", str(parse(original)["Subject"]))
    assert found, "no reference token in the subject"
    return found.group(0)


def with_header(raw: bytes, name: str, value: str) -> bytes:
    """``raw`` with header ``name`` (and its folded lines) replaced by ``name: value``, written
    as given (no encoding: for hand-made RFC 2047 or broken values)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines: list[bytes] = []
    skipping = False
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and skipping:
            continue
        skipping = line.lower().startswith(name.lower().encode() + b":")
        if not skipping:
            lines.append(line)
    lines.append(f"{name}: {value}".encode())
    return b"\r\n".join(lines) + sep + body


def redelivered(raw: bytes, *, hop: str, delivered_to: str = "care@vendor.example") -> bytes:
    """The same mail as another delivery path adds to it: its own Received and Delivered-To."""
    return (
        f"Delivered-To: {delivered_to}\r\n"
        f"Received: from {hop} ({hop} [192.0.2.7]) by mx.vendor.example with ESMTPS id {hop[:6]};"
        f" Mon, 2 Nov 2026 09:00:0{len(hop) % 10} +0000\r\n"
    ).encode() + raw


def raw_mail(
    *,
    sender: str,
    subject: str,
    body: bytes,
    content_type: str = "text/plain; charset=utf-8",
    headers: str = "",
    transfer_encoding: str = "8bit",
) -> bytes:
    """A single-part mail assembled byte by byte, for bodies no mail library would write."""
    mid = email.utils.make_msgid(domain=CUSTOMER_DOMAIN)
    return (
        f"From: {sender}\r\nTo: care@vendor.example\r\nSubject: {subject}\r\n"
        f"Date: {email.utils.formatdate()}\r\nMessage-ID: {mid}\r\n{headers}MIME-Version: 1.0\r\n"
        f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: {transfer_encoding}\r\n\r\n"
    ).encode() + body


def nested_mime(*, sender: str, subject: str, depth: int, text: str = "Deep inside.") -> bytes:
    """A mail whose text part sits ``depth`` multipart levels down."""
    body = f"Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n".encode()
    for level in range(depth):
        boundary = f"b{level:03d}"
        body = (
            f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n--{boundary}\r\n'.encode()
            + body
            + f"\r\n--{boundary}--\r\n".encode()
        )
    head, _, payload = body.partition(b"\r\n\r\n")
    return raw_mail(
        sender=sender,
        subject=subject,
        body=payload,
        content_type=head.decode().removeprefix("Content-Type: "),
        transfer_encoding="7bit",
    )


def encoded_subject(text: str, chunk: int = 0) -> str:
    """``text`` as RFC 2047 base64 encoded-words in UTF-8: one, or (``chunk`` > 0) one per
    ``chunk`` bytes on folded lines, splitting characters and tokens as some mailers do."""
    data = text.encode()
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)] if chunk else [data]
    return "\r\n ".join("=?UTF-8?B?" + base64.b64encode(p).decode() + "?=" for p in pieces)


# --- What became of inbound mail: its row, our answers, what the SMTP server got ------------


async def inbound_rows(app: App) -> list[InboundMessage]:
    """Every inbound row, in the order the messages were fetched."""
    async with app.sessions() as session:
        return list((await session.scalars(select(InboundMessage).order_by(InboundMessage.id))).all())


async def stored_raw(app: App, row: InboundMessage) -> bytes | None:
    """The bytes stored for an inbound row (in ``inbound_raw``, apart from the row)."""
    async with app.sessions() as session:
        return await raw_of(session, row.id)


async def answers(app: App, inbound_id: int) -> list[Outbox]:
    """The outbox rows an inbound message caused (replies, escalations)."""
    async with app.sessions() as session:
        stmt = select(Outbox).where(Outbox.inbound_message_id == inbound_id).order_by(Outbox.id)
        return list((await session.scalars(stmt)).all())


def delivered(server: RecordingSmtpServer, row: Outbox) -> Received:
    """What the SMTP server received for one outbox row (found by its Message-ID)."""
    found = [m for m in server.messages if row.message_id.encode() in m.data]
    assert len(found) == 1, f"outbox {row.id} ({row.kind}) reached the server {len(found)} times"
    return found[0]


DEEP_MAIL = (
    b"From: someone@example.org\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=a\r\n\r\n"
    b"--a\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n"
    b"--c\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
    b"--c--\r\n--b--\r\n--a--\r\n"
)
"""Three multipart levels: quarantined where a test sets ``limits.max_mime_depth`` to 2."""
