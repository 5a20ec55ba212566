"""Monthly platform availability per organisation (guide 11.4):

    100% - sum(affected agents x affected minutes) / (total agents x minutes in the month)

from the incidents restored with ``incident restore``. The guide counts a month as 43,200
minutes (30 days); the report gives that figure and the one over the calendar month's real
length. Months are UTC months; an incident that spans a month boundary counts in each month
for the minutes inside it.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import directory
from gateway.domain import NoticeKind
from gateway.errors import InvalidValue
from gateway.models import Notice, NoticeTarget

GUIDE_MONTH_MINUTES = 43_200


@dataclass(frozen=True)
class Impact:
    reference: str
    affected_agents: int
    minutes: float


@dataclass(frozen=True)
class Availability:
    organisation: str
    month: str
    total_agents: int
    impacts: list[Impact]
    calendar_minutes: int

    @property
    def agent_minutes(self) -> float:
        return sum(i.affected_agents * i.minutes for i in self.impacts)

    def percent(self, month_minutes: int) -> float:
        return 100.0 - 100.0 * self.agent_minutes / (self.total_agents * month_minutes)


def month_bounds(month: str) -> tuple[datetime, datetime]:
    found = re.fullmatch(r"(\d{4})-(\d{2})", month.strip())
    if found is None or not 1 <= int(found[2]) <= 12:
        raise InvalidValue(f"not a month: {month!r} (like 2026-11)")
    year, number = int(found[1]), int(found[2])
    start = datetime(year, number, 1, tzinfo=UTC)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
    return start, end


async def report(session: AsyncSession, organisation: str, month: str) -> Availability:
    org = await directory.get_organisation(session, organisation)
    if org.total_agents <= 0:
        raise InvalidValue(f"{org.name} has no total agent count (org add --agents N)")
    start, end = month_bounds(month)
    stmt = (select(Notice.reference, NoticeTarget.affected_agents, Notice.starts_at, Notice.ends_at)
            .join(NoticeTarget, NoticeTarget.notice_id == Notice.id)
            .where(Notice.kind == NoticeKind.INCIDENT.value, NoticeTarget.organisation_id == org.id,
                   NoticeTarget.affected_agents.is_not(None), Notice.ends_at > start,
                   Notice.starts_at < end)
            .order_by(Notice.starts_at))
    impacts = []
    for reference, agents, started, restored in (await session.execute(stmt)).all():
        if started is None or restored is None or agents is None:
            continue
        minutes = (min(restored, end) - max(started, start)).total_seconds() / 60
        impacts.append(Impact(reference, agents, minutes))
    days = calendar.monthrange(start.year, start.month)[1]
    return Availability(org.name, f"{start:%Y-%m}", org.total_agents, impacts, days * 1440)
