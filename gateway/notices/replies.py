"""A reply to a notice is not a case update (cases are never opened by mail): the refusal
that answers it names the notice's reference and says how to open a case quoting it."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import Notice, Outbox
from gateway.notices.references import find_in


async def replied_notice(
    session: AsyncSession, subject: str | None, message_ids: Sequence[str]
) -> str | None:
    """The reference of the notice a mail answers: by In-Reply-To/References naming one of
    our notice messages, else by a reference of an existing notice in its subject."""
    ids = [i for i in message_ids if i][:50]
    if ids:
        found = await session.scalar(select(Notice.reference).join(Outbox, Outbox.notice_id == Notice.id)
                                     .where(Outbox.message_id.in_(ids)).limit(1))
        if found is not None:
            return found
    reference = find_in(subject or "")
    if reference is None:
        return None
    return await session.scalar(select(Notice.reference).where(Notice.reference == reference))
