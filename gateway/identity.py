"""Marks that make our own mail recognisable: Message-IDs, the loop header and the reply marker.

Our Message-IDs carry 128 random bits, so a reply cannot be attached to a case by
guessing one; the loop header lets the inbound side drop our own mail when it comes back.
"""

from __future__ import annotations

import os
import threading

LOOP_HEADER = "X-Case-Gateway-Loop"
"""Set on every message we send; its value is our Message-ID domain."""

REPLY_MARKER = "-- Please reply above this line --"
"""First line of every case-thread body. In a reply it marks our mail: where it is not quoted,
the inbound side takes the lines below it for our mail (and keeps those it cannot find in
what we sent); quoted, it marks the quoted block it heads."""


def make_message_id(domain: str) -> str:
    """A new RFC 5322 Message-ID, angle brackets included."""
    return f"<{random_hex(16)}.cg@{domain}>"


class _RandomBytes:
    """``os.urandom`` read 4 KB at a time: the same randomness with one system call per 256
    Message-IDs (a system call is slow on some virtual machines). A forked child starts empty,
    so parent and child never hand out the same bytes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.buffer, self.pos = b"", 0

    def take(self, count: int) -> bytes:
        with self.lock:
            if self.pos + count > len(self.buffer):
                self.buffer, self.pos = os.urandom(max(4096, count)), 0
            self.pos += count
            return self.buffer[self.pos - count : self.pos]


_random_bytes = _RandomBytes()
os.register_at_fork(after_in_child=_random_bytes.reset)


def random_hex(count: int) -> str:
    """``count`` random bytes from the operating system's CSPRNG, as hex (``secrets.token_hex``)."""
    return _random_bytes.take(count).hex()


def message_id_domain(message_id: str) -> str:
    """The part after ``@`` of a Message-ID, lower-cased, without brackets ('' if none)."""
    return message_id.strip().strip("<>").rpartition("@")[2].lower()
