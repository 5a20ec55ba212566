"""What the inbound stages share: the message's context, the explicit outcomes a stage
returns, and the services they use."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.clock import Clock
from gateway.config import Settings
from gateway.domain import Disposition
from gateway.inbound.mail.classify import Classification
from gateway.inbound.mail.parsed import ParsedMail
from gateway.inbound.mail.reply_text import NewText
from gateway.inbound.policy.lookups import Lookups
from gateway.inbound.policy.record import DecidedRow
from gateway.models import Case, Contact
from gateway.outbound.kinds import MailKind
from gateway.outbound.outbox import Mailer
from gateway.threading.matcher import TokenScan


@dataclass(frozen=True)
class Next:
    """Go on to the next stage."""

    detail: str = ""


@dataclass(frozen=True)
class Finish:
    """Stop here with this disposition (the message is done, with or without a reply)."""

    disposition: Disposition
    detail: str = ""


@dataclass(frozen=True)
class Quarantine:
    """A human must look at this message."""

    detail: str


Outcome = Next | Finish | Quarantine


@dataclass
class Reply:
    """An answer to the sender, decided by a stage, enqueued by the respond step."""

    kind: MailKind
    context: dict[str, Any]
    automatic: bool = True
    """Automatic answers to the sender are rate-limited per address."""
    to: tuple[str, str] | None = None
    """(name, address); None: the message's sender."""


@dataclass
class Services:
    settings: Settings
    clock: Clock
    mailer: Mailer
    keys: Sequence[bytes]
    our_addresses: frozenset[str]


@dataclass
class MessageContext:
    row: DecidedRow
    parsed: ParsedMail | None
    lookups: Lookups
    parse_error: str | None = None
    new_text: NewText | None = None
    tokens: TokenScan | None = None
    classification: Classification | None = None
    case: Case | None = None
    contact: Contact | None = None
    replies: list[Reply] = field(default_factory=list)
    trail: list[dict[str, str]] = field(default_factory=list)

    @property
    def mail(self) -> ParsedMail:
        assert self.parsed is not None
        return self.parsed

    @property
    def sender(self) -> str:
        return self.parsed.from_address if self.parsed is not None else ""
