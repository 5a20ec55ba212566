"""Notice reference numbers: ``MNT-2026-00042``, unique and readable per kind and year."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.domain import NoticeKind
from gateway.errors import InvalidValue, NotFound
from gateway.models import Notice

PREFIXES = {
    NoticeKind.MAINTENANCE_PLANNED: "MNT",
    NoticeKind.MAINTENANCE_EMERGENCY: "MNT",
    NoticeKind.INCIDENT: "INC",
    NoticeKind.ADVISORY_PRODUCT: "ADV",
    NoticeKind.ADVISORY_SECURITY: "ADV",
}
REFERENCE_RE = re.compile(r"\b(MNT|INC|ADV)-(\d{4})-(\d{5,})\b", re.IGNORECASE)
"""A reference anywhere in a text (a subject, a quoted notice)."""


async def next_reference(session: AsyncSession, kind: NoticeKind, now: datetime) -> str:
    """The next free number of the kind's prefix in ``now``'s year. Two commands racing for
    the same number collide on the unique reference; the loser's transaction fails whole."""
    prefix = f"{PREFIXES[kind]}-{now.year:04d}-"
    last = await session.scalar(
        select(func.max(Notice.reference)).where(Notice.reference.like(f"{prefix}%"))
    )
    number = int(last.rsplit("-", 1)[1]) + 1 if last else 1
    return f"{prefix}{number:05d}"


def normalise(reference: str) -> str:
    found = REFERENCE_RE.fullmatch(reference.strip())
    if found is None:
        raise InvalidValue(f"not a notice reference: {reference!r} (like MNT-2026-00042)")
    return f"{found[1].upper()}-{found[2]}-{found[3]}"


async def get_notice(session: AsyncSession, reference: str, *kinds: NoticeKind) -> Notice:
    """The notice with ``reference`` (of one of ``kinds``, when given), else :class:`NotFound`."""
    ref = normalise(reference)
    notice = await session.scalar(select(Notice).where(Notice.reference == ref))
    if notice is None or (kinds and notice.kind not in kinds):
        what = " or ".join(sorted({k.split("_")[0] for k in kinds})) or "notice"
        raise NotFound(f"no {what} with reference {ref}")
    return notice


def find_in(text: str) -> str | None:
    """The first notice reference in ``text``, normalised, or None."""
    found = REFERENCE_RE.search(text or "")
    return f"{found[1].upper()}-{found[2]}-{found[3]}" if found else None
