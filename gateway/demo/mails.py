"""The customers' mail in the demo story, written as their mail programs would write it."""

from __future__ import annotations

import email
import email.utils
from email import policy
from email.message import EmailMessage

CUSTOMER_DOMAIN = "acme.example"


def plain_text(raw: bytes) -> str:
    """The text part of a mail (what a mail program quotes in a reply)."""
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    part = msg.get_body(preferencelist=("plain",))
    return str(part.get_content()) if isinstance(part, EmailMessage) else ""


def header(raw: bytes, name: str) -> str:
    msg = email.message_from_bytes(raw, policy=policy.default)
    return str(msg.get(name, "")).strip()


def _finish(msg: EmailMessage, sender: str, to: str) -> bytes:
    msg["From"] = sender
    msg["To"] = to
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg["Message-ID"] = email.utils.make_msgid(domain=CUSTOMER_DOMAIN)
    return msg.as_bytes(policy=policy.SMTP)


def reply(original: bytes, *, sender: str, to: str, text: str) -> bytes:
    """A reply as Outlook or Gmail writes it: ``RE:``, new text on top, the original quoted."""
    msg = EmailMessage()
    msg["Subject"] = "RE: " + header(original, "Subject")
    original_id = header(original, "Message-ID")
    msg["In-Reply-To"] = original_id
    msg["References"] = " ".join(filter(None, [header(original, "References"), original_id]))
    when = header(original, "Date") or "an earlier date"
    quoted = "\n".join("> " + line for line in plain_text(original).splitlines())
    msg.set_content(f"{text}\n\nOn {when}, {header(original, 'From')} wrote:\n{quoted}\n")
    return _finish(msg, sender, to)


def new_mail(*, sender: str, to: str, subject: str, text: str,
             extra_headers: dict[str, str] | None = None) -> bytes:
    msg = EmailMessage()
    msg["Subject"] = subject
    for name, value in (extra_headers or {}).items():
        msg[name] = value
    msg.set_content(text)
    return _finish(msg, sender, to)


def out_of_office(original: bytes, *, sender: str, to: str) -> bytes:
    """An Exchange-style automatic reply to one of the gateway's mails."""
    return new_mail(
        sender=sender, to=to, subject="Automatic reply: " + header(original, "Subject"),
        text="I am out of the office until Monday with limited access to email.",
        extra_headers={"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All",
                       "In-Reply-To": header(original, "Message-ID")},
    )
