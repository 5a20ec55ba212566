"""Is this message a bounce, and whom and what does it report on?

What it promises:

- A message is a bounce only on strong evidence: an RFC 3464 delivery-status report that is the
  message itself (not one forwarded inside it); or a MAILER-DAEMON/postmaster/null sender with a
  failure subject; or a daemon/null sender, or a failure subject (opening the subject, or
  anywhere in it when the message is not part of a thread), for which flufl.bounce finds
  failed recipients that are well-formed addresses.
  A customer quoting or forwarding a bounce is not a bounce.
- Recipients come from the delivery-status fields (status, action, diagnostic) when the report
  has them, otherwise from flufl.bounce's detectors for the non-standard dialects (qmail, Exim,
  Yahoo, Exchange, ...). ``Action: failed`` is permanent even with a ``4.x.x`` status (RFC 3464:
  the reporting MTA gave up, this message will not arrive); ``delayed`` is temporary; without
  an action, the status class decides.
- ``original_message_ids`` name the message that bounced: the Message-ID of the returned
  message or headers first, then Message-ID lines found in the report's text, then In-Reply-To.
"""

from __future__ import annotations

import email
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from typing import TYPE_CHECKING

from flufl.bounce import all_failures

from gateway.inbound.mail.mime_text import decoded_text

if TYPE_CHECKING:
    from gateway.inbound.mail.parsed import ParsedMail

# flufl.bounce logs a traceback for each detector that trips over a message before re-raising;
# the caller handles the exception.
logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)

_TEXT_SCAN = 200_000
"""Characters of each part's text searched for returned headers and diagnostics."""
_MAX_IDS = 20

DAEMON_LOCAL = re.compile(
    r"^(?:mailer[-_.]?daemon|mail[-_.]?daemon|mdaemon|postmaster|mail[-_.]?delivery[-_.]?"
    r"(?:system|subsystem|service)?|mail[-_.]?administrator|ndr)$", re.IGNORECASE)
_DAEMON_NAME = re.compile(
    r"mailer[-_ ]?daemon|mail delivery (?:system|subsystem|service)|delivery subsystem|postmaster",
    re.IGNORECASE)
_FAILURE = (
    r"undeliver(?:able|ed)|delivery[ _]status[ _]notification|delivery notification|"
    r"(?:delivery|mail)[ _](?:failure|failed|problem|report|error|warning)|delivery has failed|"
    r"returned mail|returning message|failure (?:notice|delivery)|failed mail|mail failed|"
    r"non[- ]?delivery|could not be delivered|not (?:yet )?(?:been )?delivered|mail system error|"
    r"message (?:\S+ )?delayed|delayed mail|delivery delayed|rejected mail|user unknown|"
    r"unzustellbar|nicht zustellbar|zustellung fehlgeschlagen|non remis|non distribuable|"
    r"[ée]chec de (?:la )?(?:remise|distribution)|no se (?:pudo|puede) entregar|no entregado|"
    r"non recapitabile|onbestelbaar|n[ãa]o (?:foi )?entregue|não foi possível entregar"
)
FAILURE_SUBJECT = re.compile(_FAILURE, re.IGNORECASE)
_FAILURE_START = re.compile(r"^\s*(?:\[[^\]]{0,40}\]\s*)?(?:" + _FAILURE + ")", re.IGNORECASE)
_FORWARDED = re.compile(r"^\s*(?:\[[^\]]{0,40}\]\s*)?(?:fwd?|wg|tr|rv|vs|doorst|i|enc|fs)\s*:", re.IGNORECASE)
_REPORT_TYPE = re.compile(r"report-type\s*=\s*\"?([\w-]+)", re.IGNORECASE)
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_CODE = re.compile(r"\b([45])\d\d\b")
_MESSAGE_ID_LINE = re.compile(r"^[ \t>]*Message-ID[ \t]*:[ \t]*\r?\n?[ \t]*(<[^<>\s]{1,500}>)",
                              re.IGNORECASE | re.MULTILINE)
_ADDRESS = re.compile(
    r"(?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+|\"[^\"\\\r\n]{1,64}\")@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+"
    r"|\[[0-9A-Fa-f:.]{2,45}\])")
_DSN_TYPES = ("message/delivery-status", "message/global-delivery-status")
_RETURNED_TYPES = ("message/rfc822", "message/global")
_HEADER_TYPES = ("text/rfc822-headers", "message/rfc822-headers", "message/global-headers")


@dataclass(frozen=True)
class FailedRecipient:
    """One recipient the report says could not be reached. ``status`` is an RFC 3463 code such as
    ``5.1.1``, or '' when the report gives none."""

    address: str
    status: str
    permanent: bool
    diagnostic: str


@dataclass(frozen=True)
class BounceReport:
    recipients: tuple[FailedRecipient, ...]
    original_message_ids: tuple[str, ...]
    evidence: str
    """Why the message counts as a bounce, for the inbound trail."""


def parse_bounce(mail: ParsedMail, raw: bytes, *, message: Message | None = None) -> BounceReport | None:
    """The report when ``mail`` is a bounce, else None. ``message`` is ``raw`` already parsed with
    the compat32 policy (given by the parser, to parse once); it is parsed here when absent."""
    if message is None:
        message = email.message_from_bytes(raw)
    subject = mail.subject[:1000]
    dsn_parts = list(_own_parts(message, _DSN_TYPES))
    recipients: list[FailedRecipient] = [r for part in dsn_parts for r in _dsn_recipients(part)]
    daemon = is_daemon_sender(mail) or mail.return_path == "" or not mail.from_address
    evidence = ""
    if dsn_parts or _report_type(mail) == "delivery-status":
        evidence = "delivery-status report"
    elif daemon and FAILURE_SUBJECT.search(subject):
        evidence = f"{_sender(mail)} sent {subject[:80]!r}"
    if not recipients and (evidence or daemon or _failure_subject_alone(mail)):
        recipients = _flufl_recipients(message, raw, mail.text_body)
        if recipients and not evidence:
            evidence = f"failed recipients found in a report from {_sender(mail)}"
    if not evidence:
        return None
    return BounceReport(tuple(_unique(recipients)), tuple(_original_ids(mail, message)), evidence)


def is_daemon_sender(mail: ParsedMail) -> bool:
    """From, Sender or Return-Path names a mail system (MAILER-DAEMON, postmaster, ...)."""
    for address in (mail.from_address, mail.return_path or ""):
        if DAEMON_LOCAL.match(address.rpartition("@")[0] or address):
            return True
    for name in ("from", "sender"):
        for value in mail.headers.get(name, ()):
            if _DAEMON_NAME.search(value):
                return True
    return False


def _failure_subject_alone(mail: ParsedMail) -> bool:
    """A failure subject from an ordinary sender: it must open the subject, or be in a message
    that is neither part of a thread (a person's reply always is) nor forwarded, before
    flufl.bounce is asked (it would find the recipients of a bounce forwarded inside)."""
    subject = mail.subject[:1000]
    if _FAILURE_START.match(subject):
        return True
    if mail.in_reply_to or mail.references or _FORWARDED.match(subject):
        return False
    return bool(FAILURE_SUBJECT.search(subject))


def _sender(mail: ParsedMail) -> str:
    return mail.from_address or "a null sender"


def _report_type(mail: ParsedMail) -> str:
    for value in mail.headers.get("content-type", ())[:1]:
        found = _REPORT_TYPE.search(value)
        if found and value.lower().lstrip().startswith("multipart/report"):
            return found.group(1).lower()
    return ""


def _own_parts(message: Message, types: tuple[str, ...]) -> Iterator[Message]:
    """Parts of the given types that belong to this message, not to a message returned in it."""
    stack = [message]
    while stack:
        part = stack.pop()
        kind = part.get_content_type()
        if kind in types:
            yield part
        elif kind not in _RETURNED_TYPES and part.is_multipart():
            stack.extend(reversed([p for p in part.get_payload() if isinstance(p, Message)]))


def _dsn_recipients(part: Message) -> Iterator[FailedRecipient]:
    payload = part.get_payload()
    if isinstance(payload, list):
        blocks = [b for b in payload if isinstance(b, Message)]
    else:
        text = decoded_text(part)[:_TEXT_SCAN].replace("\r\n", "\n")
        blocks = [email.message_from_string(chunk.strip()) for chunk in re.split(r"\n[ \t]*\n", text)]
    for block in blocks:
        action = str(block.get("action", "")).strip().lower()
        status = _STATUS.search(str(block.get("status", "")))
        code = status.group(0) if status else ""
        failed = action.startswith(("fail", "error"))
        if not (failed or action.startswith("delayed") or (not action and code[:1] in ("4", "5"))):
            continue
        permanent = failed or (not action and code.startswith("5"))
        diagnostic = " ".join(str(block.get("diagnostic-code", "")).split())
        diagnostic = diagnostic.split(";", 1)[1].strip() if ";" in diagnostic[:20] else diagnostic
        for field in ("original-recipient", "final-recipient", "x-actual-recipient"):
            address = _address(str(block.get(field, "")))
            if address:
                yield FailedRecipient(address, code, permanent, diagnostic[:500])


def _address(value: str) -> str:
    """``rfc822; <user@example.com>`` -> ``user@example.com`` ('' if there is none)."""
    value = value.split(";", 1)[1] if ";" in value else value
    value = value.strip().strip("<>").strip()
    return value if len(value) <= 320 and _ADDRESS.fullmatch(value) else ""


def _flufl_recipients(message: Message, raw: bytes, text: str) -> list[FailedRecipient]:
    """Recipients found by flufl.bounce, with a status and diagnostic read off the line naming them."""
    try:
        temporary, permanent = all_failures(message)
    except Exception:
        # Some detectors index into the From header and fail without one; one stops them all.
        placeholder = email.message_from_bytes(b"From: <mailer-daemon@unknown.invalid>\r\n" + raw)
        temporary, permanent = all_failures(placeholder)
    found = []
    for addresses, is_permanent in ((permanent, True), (temporary, False)):
        for raw_address in sorted(addresses):
            address = _address(raw_address.decode("utf-8", "replace"))
            if address:
                status, diagnostic = _diagnose(address, text[:_TEXT_SCAN])
                found.append(FailedRecipient(address, status, is_permanent, diagnostic))
    return found


def _diagnose(address: str, text: str) -> tuple[str, str]:
    """The status code and the line that mention ``address`` in a free-text bounce, if any."""
    where = text.lower().find(address.lower())
    if where < 0:
        return "", ""
    start = text.rfind("\n", 0, where) + 1
    nearby = text[start:start + 400]
    lines = [" ".join(line.split()) for line in nearby.split("\n")[:3]]
    line = " ".join(lines[:2] if len(lines[0]) < 60 else lines[:1]).strip()
    enhanced = _STATUS.search(nearby)
    if enhanced:
        return enhanced.group(0), line[:500]
    basic = _SMTP_CODE.search(nearby)
    return (f"{basic.group(1)}.0.0" if basic else ""), line[:500]


def _original_ids(mail: ParsedMail, message: Message) -> list[str]:
    ids: list[str] = []
    for part in _own_parts(message, _RETURNED_TYPES + _HEADER_TYPES):
        payload = part.get_payload()
        if isinstance(payload, list):
            ids.extend(str(m.get("message-id", "")).strip() for m in payload if isinstance(m, Message))
        else:
            ids.extend(_MESSAGE_ID_LINE.findall(decoded_text(part)[:_TEXT_SCAN]))
    for part in _own_parts(message, ("text/plain",)):
        ids.extend(_MESSAGE_ID_LINE.findall(decoded_text(part)[:_TEXT_SCAN]))
    if not ids:
        ids.extend(_MESSAGE_ID_LINE.findall(mail.text_body[:_TEXT_SCAN]))
    ids.extend(mail.in_reply_to)
    own = mail.message_id
    wanted = [m for m in (_bracketed(i) for i in ids) if m and m != own]
    return list(dict.fromkeys(wanted))[:_MAX_IDS]


def _bracketed(value: str) -> str:
    found = re.search(r"<[^<>\s]{1,500}>", value)
    return found.group(0) if found else ""


def _unique(recipients: list[FailedRecipient]) -> list[FailedRecipient]:
    seen: dict[str, FailedRecipient] = {}
    for recipient in recipients:
        seen.setdefault(recipient.address.lower(), recipient)
    return list(seen.values())
