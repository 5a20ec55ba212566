"""What kind of mail is this: ours coming back, a bounce, an auto-reply, list traffic, a null
sender, or a person writing to us?

The rules run in that order and the first that matches decides; ``reason`` names the rule and
the evidence, for the inbound trail. Only ``normal`` mail may ever be answered: everything
else is recorded and never replied to (no backscatter, no mail loops). The classifier is a
pure function of the parsed mail; it reads no raw bytes (bounce analysis happened in the parser).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from gateway.identity import LOOP_HEADER, message_id_domain
from gateway.inbound.mail.bounce import BounceReport, is_daemon_sender
from gateway.inbound.mail.parsed import ParsedMail

Kind = Literal["loop", "bounce", "auto_reply", "list", "null_sender", "normal"]

# Present with any value other than "no" (or false/0): the mail was sent by a program.
_AUTO_FLAGS = ("x-autoreply", "x-autorespond", "x-auto-reply", "x-autoresponder", "x-autoreply-from",
               "x-mail-autoreply", "x-fc-machinegenerated", "x-ms-exchange-inbox-rules-loop")
_FALSE = ("", "no", "false", "0")
_AUTO_PRECEDENCE = ("bulk", "junk", "auto_reply", "auto-reply")
_SUPPRESS = re.compile(r"\b(?:all|oof|autoreply)\b", re.IGNORECASE)
_NO_REPLY = re.compile(r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|donotreply)(?:[-+._].*)?$", re.IGNORECASE)
_REPORT_TYPE = re.compile(r"report-type\s*=\s*\"?([\w-]+)", re.IGNORECASE)

# An auto-reply tag opens the subject ("Automatic reply: Re: ..."). Phrases that could be a
# person's topic ("Out of office routing is broken") count only as such a tag, before a colon;
# unambiguous ones count wherever the subject starts with them.
_STRONG = (
    r"auto(?:matic|matische|matisch)?[- ]?(?:reply|response|antwort|antwoord|answer)|"
    r"auto[- ]?respon(?:se|der)|r[ée]ponse automatique|respuesta autom[áa]tica|"
    r"resposta autom[áa]tica|risposta automatica|abwesenheitsnotiz|"
    r"vacation (?:reply|message|notice)|自動応答|自動返信|自动回复|自動回覆|자동\s?응답|автоответ"
)
_WEAK = (
    r"out of (?:the )?office|ooo|abwesend|abwesenheit|absence|je suis absent|absent du bureau|"
    r"fuera de (?:la )?oficina|ausente|aus[êe]ncia|fora do escrit[óo]rio|afwezig(?:heid)?|"
    r"ik ben afwezig|niet aanwezig|fuori (?:sede|ufficio)|不在|外出中|休暇|не в офисе"
)
_STRONG_START = re.compile(r"^\s*(?:\[[^\]]{0,30}\]\s*)?(?:" + _STRONG + r")(?![a-z])", re.IGNORECASE)
_TAG = re.compile(r"^\s*([^:：]{1,60})[:：]")
_WEAK_TAG = re.compile(r"^\s*(?:\[[^\]]{0,30}\]\s*)?(?:" + _STRONG + "|" + _WEAK + r")(?![a-z]).{0,30}$",
                       re.IGNORECASE)


@dataclass(frozen=True)
class Classification:
    kind: Kind
    reason: str
    bounce: BounceReport | None = None


def classify(mail: ParsedMail, *, our_domain: str, our_addresses: Collection[str]) -> Classification:
    """Loop, then bounce, then auto-reply, then list, then null sender; else normal."""
    headers = mail.headers
    loop = _loop_reason(mail, our_domain.lower(), {a.lower() for a in our_addresses})
    if loop:
        return Classification("loop", loop)
    if mail.bounce is not None:
        failed = ", ".join(r.address for r in mail.bounce.recipients[:5]) or "no failed recipient found"
        return Classification("bounce", f"bounce ({mail.bounce.evidence}): {failed}", mail.bounce)
    auto = _auto_reply_reason(headers, mail.subject[:1000])
    if auto:
        return Classification("auto_reply", auto)
    listed = _list_reason(headers)
    if listed:
        return Classification("list", listed)
    null = _null_sender_reason(mail)
    if null:
        return Classification("null_sender", null)
    return Classification("normal", "")


def never_applied(mail: ParsedMail) -> bool:
    """Whether :func:`classify` finishes this mail before it could reach a case, whatever the
    settings: a bounce, an auto-reply, list traffic or a null sender."""
    return mail.bounce is not None or bool(
        _auto_reply_reason(mail.headers, mail.subject[:1000]) or _list_reason(mail.headers)
        or _null_sender_reason(mail)
    )


def _loop_reason(mail: ParsedMail, our_domain: str, ours: set[str]) -> str:
    loop_values = mail.headers.get(LOOP_HEADER.lower())
    if loop_values is not None:
        return f"our loop header {LOOP_HEADER}: {loop_values[0][:100]}"
    if mail.message_id and our_domain and message_id_domain(mail.message_id) == our_domain:
        return f"Message-ID {mail.message_id[:200]} is in our domain"
    if mail.from_address and mail.from_address in ours:
        return f"sent from our own address {mail.from_address}"
    return ""


def _auto_reply_reason(headers: Mapping[str, Sequence[str]], subject: str) -> str:
    for value in headers.get("auto-submitted", ()):
        keyword = value.split(";", 1)[0].strip().lower()
        if keyword != "no":
            return f"auto-submitted: {keyword or '(empty)'}"
    for name in _AUTO_FLAGS:
        for value in headers.get(name, ()):
            if value.strip().lower() not in _FALSE or name == "x-ms-exchange-inbox-rules-loop":
                return f"{name}: {value[:80]}"
    for value in headers.get("x-autogenerated", ()):
        if value.strip().lower() == "reply":
            return "x-autogenerated: reply"
    for value in headers.get("x-auto-response-suppress", ()):
        if _SUPPRESS.search(value):
            return f"x-auto-response-suppress: {value[:80]}"
    precedence = _first(headers, "precedence").lower()
    is_list = "list-id" in headers or "list-unsubscribe" in headers
    if precedence in _AUTO_PRECEDENCE or (precedence == "list" and not is_list):
        return f"precedence: {precedence}"
    report = _REPORT_TYPE.search(_first(headers, "content-type"))
    if report and _first(headers, "content-type").lower().lstrip().startswith("multipart/report"):
        return f"report of type {report.group(1).lower()}"
    if _first(headers, "x-post-messageclass").startswith("9"):
        return "x-post-messageclass: autoresponder"
    return _auto_subject_reason(subject)


def _auto_subject_reason(subject: str) -> str:
    """An out-of-office or automatic-reply tag at the start of the subject."""
    if _STRONG_START.match(subject):
        return f"auto-reply subject: {subject[:80]!r}"
    tag = _TAG.match(subject)
    if (tag and _WEAK_TAG.match(tag.group(1))) or (not tag and _WEAK_TAG.match(subject)
                                                   and len(subject) <= 20):
        return f"out-of-office subject: {subject[:80]!r}"
    return ""


def _list_reason(headers: Mapping[str, Sequence[str]]) -> str:
    list_id = _first(headers, "list-id")
    if list_id:
        return f"list-id: {list_id[:100]}"
    if "list-unsubscribe" in headers and _first(headers, "precedence").lower() in ("list", "bulk"):
        return "list-unsubscribe with precedence: list"
    return ""


def _null_sender_reason(mail: ParsedMail) -> str:
    if mail.return_path == "":
        return "null envelope sender (Return-Path: <>)"
    if not mail.from_address and not mail.sender_problem:
        return "no usable From address"
    if is_daemon_sender(mail):
        return f"mail-system sender {mail.from_address}"
    if _NO_REPLY.match(mail.from_address.rpartition("@")[0]):
        return f"no-reply sender {mail.from_address}"
    return ""


def _first(headers: Mapping[str, Sequence[str]], name: str) -> str:
    values = headers.get(name, ())
    return values[0].strip() if values else ""
