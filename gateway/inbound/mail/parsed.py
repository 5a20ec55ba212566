"""What parsing makes of a message (:class:`ParsedMail`, :class:`Attachment`) and the limits
it holds a message to: plain data that pickles, passed between the parse workers and the daemon."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from gateway.inbound.mail.bounce import BounceReport


@dataclass(frozen=True)
class Attachment:
    """A decoded attachment. ``filename`` is a display name: no path, no control characters."""

    filename: str
    content_type: str
    size: int
    payload: bytes
    sha256: str
    """The payload's SHA-256 (hex), worked out once, in the parse worker."""


class Limits(Protocol):
    """The limits parsing holds a message to (``gateway.config.LimitSettings`` has them)."""

    @property
    def max_message_bytes(self) -> int: ...
    @property
    def max_attachments(self) -> int: ...
    @property
    def max_attachment_bytes(self) -> int: ...
    @property
    def max_mime_depth(self) -> int: ...
    @property
    def max_new_text_chars(self) -> int: ...


@dataclass(frozen=True)
class ParseLimits:
    """:class:`Limits` as plain data, for the parse workers: the settings' pydantic model
    would make each of them import pydantic and the whole configuration to unpickle it, more
    than half of the time the fork server takes to load what the workers run."""

    max_message_bytes: int
    max_attachments: int
    max_attachment_bytes: int
    max_mime_depth: int
    max_new_text_chars: int

    @classmethod
    def of(cls, limits: Limits) -> ParseLimits:
        return cls(limits.max_message_bytes, limits.max_attachments, limits.max_attachment_bytes,
                   limits.max_mime_depth, limits.max_new_text_chars)


@dataclass(frozen=True)
class ParsedMail:
    """Everything the pipeline reads from a message; plain data that pickles, without the raw
    bytes (the caller keeps those). ``headers`` maps lower-case names to every value in order,
    unfolded but not RFC 2047-decoded. Addresses are lower-cased addr-specs (with an ``@``;
    the sender's ASCII lower-cased only)."""

    message_id: str | None = None
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    from_address: str = ""
    from_name: str = ""
    sender_problem: str = ""
    """Why the From header names no one sender to trust (:mod:`gateway.inbound.mail.sender`);
    '' when it does."""
    return_path: str | None = None
    """The envelope sender hint: None without a Return-Path header, '' for ``<>``."""
    to_addresses: tuple[str, ...] = ()
    cc_addresses: tuple[str, ...] = ()
    subject: str = ""
    raw_subject: str = ""
    date: datetime | None = None
    headers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    content_type: str = "text/plain"
    text_body: str = ""
    html_body: str = ""
    attachments: tuple[Attachment, ...] = ()
    mime_depth: int = 0
    part_count: int = 0
    defects: tuple[str, ...] = ()
    bounce: BounceReport | None = None
    """The delivery failure this message reports, when it is a bounce."""
    fingerprint: str = ""
    """:func:`fingerprint` (worked out here, in the parse worker)."""
