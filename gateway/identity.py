"""Marks that make our own mail recognisable: Message-IDs and the loop header.

Our Message-IDs carry 128 random bits, so a reply cannot be attached to a case by
guessing one; the loop header lets the inbound side drop our own mail when it comes back.
"""

from __future__ import annotations

import secrets

LOOP_HEADER = "X-Case-Gateway-Loop"
"""Set on every message we send; its value is our Message-ID domain."""


def make_message_id(domain: str) -> str:
    """A new RFC 5322 Message-ID, angle brackets included."""
    return f"<{secrets.token_hex(16)}.cg@{domain}>"


def message_id_domain(message_id: str) -> str:
    """The part after ``@`` of a Message-ID, lower-cased, without brackets ('' if none)."""
    return message_id.strip().strip("<>").rpartition("@")[2].lower()
