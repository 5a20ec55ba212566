"""Which organisations a notice goes to: named ones, or all."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import directory
from gateway.errors import InvalidValue
from gateway.models import Notice, NoticeTarget, Organisation


async def resolve(session: AsyncSession, orgs: str | None, everyone: bool) -> list[Organisation]:
    if bool(orgs) == everyone:
        raise InvalidValue("give either --orgs A,B or --all")
    if everyone:
        found = list((await session.scalars(select(Organisation).order_by(Organisation.name))).all())
        if not found:
            raise InvalidValue("there is no organisation yet")
        return found
    names = [n.strip() for n in (orgs or "").split(",") if n.strip()]
    if not names:
        raise InvalidValue("--orgs names no organisation")
    chosen = {}
    for name in names:
        org = await directory.get_organisation(session, name)
        chosen[org.id] = org
    return list(chosen.values())


def attach(session: AsyncSession, notice: Notice, organisations: list[Organisation]) -> None:
    for org in organisations:
        session.add(NoticeTarget(notice_id=notice.id, organisation_id=org.id))


async def names(session: AsyncSession, notice: Notice) -> list[str]:
    stmt = (select(Organisation.name).join(NoticeTarget, NoticeTarget.organisation_id == Organisation.id)
            .where(NoticeTarget.notice_id == notice.id).order_by(Organisation.name))
    return list((await session.scalars(stmt)).all())
