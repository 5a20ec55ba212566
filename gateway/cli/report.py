"""``case-gateway report availability``, added to the ``report`` group of
:mod:`gateway.cli.schedule` (which has ``report slt``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import click
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.cli.context import CliContext
from gateway.cli.output import emit, json_option, table
from gateway.cli.schedule import report

__all__ = ["report"]


@report.command("availability")
@click.option("--org", "organisation", required=True, help="Organisation name.")
@click.option("--month", required=True, help="YYYY-MM (a UTC month).")
@json_option
@click.pass_obj
def availability(ctx: CliContext, organisation: str, month: str, as_json: bool) -> None:
    """Monthly platform availability (guide 11.4), over 43,200 minutes and the calendar month."""
    from gateway.notices import availability as figures

    async def work(session: AsyncSession) -> dict[str, Any]:
        found = await figures.report(session, organisation, month)
        return {
            "organisation": found.organisation, "month": found.month,
            "total_agents": found.total_agents, "agent_minutes_lost": round(found.agent_minutes, 2),
            "availability_guide_percent": round(found.percent(figures.GUIDE_MONTH_MINUTES), 4),
            "guide_month_minutes": figures.GUIDE_MONTH_MINUTES,
            "availability_calendar_percent": round(found.percent(found.calendar_minutes), 4),
            "calendar_month_minutes": found.calendar_minutes,
            "incidents": [{"reference": i.reference, "affected_agents": i.affected_agents,
                           "minutes": round(i.minutes, 2)} for i in found.impacts],
        }

    emit(ctx.transaction(work), as_json, _availability_lines)


def _availability_lines(data: dict[str, Any]) -> Iterator[str]:
    yield (f"{data['organisation']} {data['month']}: {data['total_agents']} agents, "
           f"{data['agent_minutes_lost']} agent-minutes lost")
    yield f"availability (43,200-minute month, the guide's): {data['availability_guide_percent']:.4f}%"
    yield (f"availability ({data['calendar_month_minutes']:,}-minute calendar month): "
           f"{data['availability_calendar_percent']:.4f}%")
    yield from table("reference", "affected_agents", "minutes")(data["incidents"])
