"""``case-gateway schedule`` and ``case-gateway report``: what the gateway will send, and how
the cases stand against their service-level targets. Both only read."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import click
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.app import App
from gateway.cli.context import CliContext
from gateway.cli.output import emit, json_option, table
from gateway.cli.run import parse_instant

DEFAULT_HORIZON = timedelta(days=7)


@click.command("schedule")
@click.option("--until", "until_text", metavar="INSTANT",
              help="List what is due up to this instant (ISO 8601 with an offset; default: a week from now).")
@click.option("--org", "organisation", help="Only this organisation.")
@json_option
@click.pass_obj
def schedule(ctx: CliContext, until_text: str | None, organisation: str | None, as_json: bool) -> None:
    """Every automatic mail the gateway will send, and when (changes nothing)."""
    until = parse_instant(until_text, "--until") if until_text else ctx.clock.now() + DEFAULT_HORIZON

    async def work(app: App) -> list[dict[str, Any]]:
        from gateway.schedule.scheduler import Scheduler
        from gateway.schedule.sources import default_sources

        scheduler = Scheduler(app.sessions, app.clock, default_sources(app.settings, app.clock))
        return [{
            "due_local": u.due_at.astimezone(ZoneInfo(u.timezone)).isoformat(),
            "due_utc": u.due_at.isoformat(), "kind": u.kind, "case": u.subject_ref,
            "recipient": u.recipient, "organisation": u.org, "timezone": u.timezone,
        } for u in await scheduler.upcoming(until, organisation)]

    emit(ctx.with_app(work), as_json,
         table("due_local", "due_utc", "kind", "case", "recipient", "organisation"))


@click.group()
def report() -> None:
    """Reports (read only)."""


@report.command("slt")
@click.option("--breached", is_flag=True, help="Only cases with a breached target.")
@click.option("--org", "organisation", help="Only this organisation.")
@json_option
@click.pass_obj
def report_slt(ctx: CliContext, breached: bool, organisation: str | None, as_json: bool) -> None:
    """Every case against its response and resolution targets (guide 5.1)."""

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        from gateway.schedule.views import slt_rows

        return await slt_rows(session, ctx.clock.now(), organisation, breached)

    emit(ctx.transaction(work), as_json, _slt_lines)


def _slt_lines(rows: list[dict[str, Any]]) -> Iterator[str]:
    return table("case", "organisation", "severity", "status", "response", "resolution")(
        [{**r, "response": _target(r["response"]), "resolution": _target(r["resolution"])} for r in rows])


def _target(target: dict[str, Any]) -> str:
    by = f" by {target['by']}" if target["by"] else ""
    due = f" (due {datetime.fromisoformat(target['due_at']):%Y-%m-%d %H:%M}Z)" if target["due_at"] else ""
    return f"{target['state']}{by}{due}"
