"""Who sent a mail: the one mailbox of the one ``From`` header, parsed strictly.

Mail programs and DMARC checkers show and check the bracketed address of ``From``; a lenient
parser may take another (the first address-like word of the display name, the last hop of
route syntax, the first of two addresses). So a sender is trusted only when there is exactly
one From header holding exactly one mailbox that the standard library's modern parser
(``email.policy.default``) reads without a defect, outside group syntax, and whose display
name is not an address other than its own. Anything else is never applied to a case.

Addresses compare by ASCII case-folding only (:func:`gateway.addresses.ascii_lower`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from email import errors, policy

from gateway.addresses import ascii_lower
from gateway.inbound.mail.mime_text import decode_words

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATOM}(?:\.{_ATOM})*"
_PLAIN = re.compile(
    rf"[ \t]*(?:((?:{_ATOM}[ \t]+)*{_ATOM})?[ \t]*<({_DOT_ATOM}@{_DOT_ATOM})>"
    rf"|({_DOT_ATOM}@{_DOT_ATOM}))[ \t]*"
)
"""``Ana Silva <ana@example.com>`` or ``ana@example.com``: plain words (no ``@``, quotes or
comments) and dot-atoms, which the strict parser reads the same; the rest goes to it."""
_TWICE = re.compile(rf"[ \t]*({_DOT_ATOM}@{_DOT_ATOM})[ \t]*<({_DOT_ATOM}@{_DOT_ATOM})>[ \t]*")
_ADDRESS_LIKE = re.compile(r"[^\s@<>\"()]+@[^\s@<>\"()]+")
MAX_FROM_CHARS = 2000
"""The longest From the strict parser is given: its time grows with the square of the length
(a second at 20,000 characters), and two lines' worth is far above any real one."""
_REFUSED_DEFECTS = (errors.InvalidHeaderDefect, errors.ObsoleteHeaderDefect)
"""Defects that make a From header ambiguous (the non-ASCII local part of an SMTPUTF8
address, or an unknown charset in the name, is a defect of another kind, and allowed)..."""
_HARMLESS = frozenset({
    "period in 'phrase'",  # Joe Q. Public <joe@example.com>
    "comment found without atom",
    "encoded word inside quoted string",  # "=?utf-8?q?J=C3=B6rg?=" <j@example.com>
    "missing trailing whitespace after encoded-word",
    "address-list entry with no content",  # a trailing comma
    "empty element in address-list",
})
"""...but for these, which only concern the display name or an empty list entry (the texts
of the standard library's defects)."""


@dataclass(frozen=True)
class Sender:
    name: str
    """The display name, decoded."""
    address: str
    """The addr-spec, ASCII lower-cased; '' when there is not exactly one mailbox."""
    problem: str = ""
    """Why this From cannot be trusted ('' when it can, or when there is no sender at all:
    no From, an empty one, or ``<>``)."""


def sender_of(values: Sequence[str]) -> Sender:
    """The sender of a mail from its From header values (unfolded, not decoded)."""
    if len(values) > 1:
        return Sender("", "", f"{len(values)} From headers")
    value = values[0] if values else ""
    if value.strip() in ("", "<>"):
        return Sender("", "")  # no sender at all: a null sender, never answered nor applied
    if (plain := _PLAIN.fullmatch(value)) and "=?" not in value:
        name, bracketed, bare = plain.groups()
        return Sender(" ".join((name or "").split()), ascii_lower(bracketed or bare))
    if (twice := _TWICE.fullmatch(value)) and ascii_lower(twice.group(1)) == ascii_lower(twice.group(2)):
        return Sender("", ascii_lower(twice.group(2)))  # ana@example.com <ana@example.com>, unquoted
    return _strict(value)


def _strict(value: str) -> Sender:
    if len(value) > MAX_FROM_CHARS:
        return Sender("", "", f"From header of {len(value)} characters (over {MAX_FROM_CHARS})")
    try:
        header = policy.default.header_factory("from", value)
        groups = list(header.groups)
        defects = list(header.defects)
    except Exception as exc:  # the parser promises much, but this is a stranger's header
        return Sender("", "", f"From header cannot be parsed ({type(exc).__name__})")
    mailboxes = [address for group in groups for address in group.addresses]
    if not mailboxes:
        return Sender("", "", "no address in From")
    if len(mailboxes) > 1:
        return Sender("", "", f"{len(mailboxes)} addresses in From")
    mailbox = mailboxes[0]
    name = " ".join(decode_words(str(mailbox.display_name)).split())  # encoded words in quotes too
    address = ascii_lower(mailbox.addr_spec)
    if not mailbox.username or not mailbox.domain or "@" not in address:
        return Sender(name, "", "From holds no complete address")
    if any(isinstance(d, _REFUSED_DEFECTS) and str(d) not in _HARMLESS for d in defects):
        return Sender(name, "", "From is malformed (route syntax, stray text or an unquoted address)")
    if groups[0].display_name is not None:
        return Sender(name, address, "From uses group syntax")
    if any(ascii_lower(found) != address for found in _ADDRESS_LIKE.findall(name)):
        return Sender(name, address, "the display name of From is another address")
    return Sender(name, address)
