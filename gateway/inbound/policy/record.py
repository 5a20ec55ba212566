"""The inbound row as the pipeline decides it: the columns a decision writes, listed once in
:class:`DecidedRow`, and what a row shows of its message before it is decided."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from gateway.inbound.mail.parsed import ParsedMail


@dataclass(eq=False, slots=True)
class DecidedRow:
    """The columns of an inbound row that deciding it writes, as a plain object (not the ORM
    row: the pipeline reads nothing of a row that it has not set itself but its id). What is
    left None in a :data:`KEPT` column keeps what an earlier attempt stored there."""

    id: int
    content_hash: str = ""
    message_id: str | None = None
    from_address: str | None = None
    subject: str | None = None
    case_id: int | None = None
    new_text: str | None = None
    disposition: str | None = None
    trail: list[Any] = field(default_factory=list)
    processed_at: datetime | None = None
    target_folder: str | None = None
    error: str | None = None


DECIDED = tuple(f.name for f in fields(DecidedRow) if f.name != "id")
"""The inbound row's columns a decision writes."""
KEPT = frozenset({"message_id", "from_address", "subject", "error"})
"""Columns that keep their stored value when the pipeline left them unset."""


def shown_fields(mail: ParsedMail | None) -> dict[str, str | None]:
    """What a row shows of its message before the pipeline has decided it (None: unknown)."""
    if mail is None:
        return {"from_address": None, "subject": None, "message_id": None}
    return {"from_address": mail.from_address[:320] or None, "subject": mail.subject[:2000],
            "message_id": (mail.message_id or "")[:998] or None}
