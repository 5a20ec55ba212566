"""``case-gateway incident``: alerts, updates and the all-clear."""

from __future__ import annotations

from datetime import datetime

import click
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.app import App
from gateway.cli.context import CliContext
from gateway.cli.notices import in_transaction
from gateway.cli.output import emit, json_option, table


@click.group("incident")
def incident() -> None:
    """Incidents: the alert, an update at least every 30 minutes, the all-clear."""


@incident.command("open")
@click.option("--orgs", help="Comma-separated organisation names.")
@click.option("--all", "everyone", is_flag=True, help="Every organisation.")
@click.option("--summary", required=True, help="What is known.")
@click.option("--impact", required=True, help="Possible impact.")
@click.option("--services", help="Affected services.")
@click.option("--recommendation", help="What customers can do to reduce the impact.")
@click.option("--title", help="Short title (default: the summary's first line).")
@click.pass_obj
def incident_open(ctx: CliContext, orgs: str | None, everyone: bool, summary: str, impact: str,
                  services: str | None, recommendation: str | None, title: str | None) -> None:
    """Declare an incident: the alert goes out at once (status investigating)."""
    from gateway.notices.incidents import Incidents

    async def work(app: App, session: AsyncSession, now: datetime) -> str:
        found = await Incidents(app.settings, app.renderer).open(
            session, now, orgs=orgs, everyone=everyone, summary=summary, impact=impact,
            services=services, recommendation=recommendation, title=title)
        return found.reference

    click.echo(f"{in_transaction(ctx, work)} opened")


@incident.command("update")
@click.argument("reference")
@click.option("--status", required=True, help="investigating, identified or monitoring.")
@click.option("--message", required=True, help="The current status.")
@click.option("--next-steps", help="What happens next / what customers can do.")
@click.pass_obj
def incident_update(ctx: CliContext, reference: str, status: str, message: str,
                    next_steps: str | None) -> None:
    """Post an update; it goes out at once and restarts the 30-minute clock."""
    from gateway.notices.incidents import Incidents

    async def work(app: App, session: AsyncSession, now: datetime) -> int:
        posted = await Incidents(app.settings, app.renderer).post(
            session, now, reference, status=status, message=message, next_steps=next_steps)
        return posted.sequence

    click.echo(f"update {in_transaction(ctx, work)} of {reference.upper()} sent")


@incident.command("restore")
@click.argument("reference")
@click.option("--notes", required=True, help="How to return to usual operations.")
@click.option("--affected-agents", type=int, required=True, help="Agents affected (per organisation).")
@click.option("--started", required=True, help="When the impact started (ISO 8601, or local with --tz).")
@click.option("--restored", required=True, help="When service was restored.")
@click.option("--tz", "timezone", help="IANA zone for times without an offset.")
@click.pass_obj
def incident_restore(ctx: CliContext, reference: str, notes: str, affected_agents: int,
                     started: str, restored: str, timezone: str | None) -> None:
    """Give the all-clear and record the impact for the availability report."""
    from gateway.notices.incidents import Incidents
    from gateway.notices.times import parse_instant

    async def work(app: App, session: AsyncSession, now: datetime) -> str:
        found = await Incidents(app.settings, app.renderer).restore(
            session, now, reference, notes=notes, affected_agents=affected_agents,
            started=parse_instant(started, timezone, "--started"),
            restored=parse_instant(restored, timezone, "--restored"))
        return f"{found.reference} restored; root cause analysis due {found.rca_due_at:%Y-%m-%d %H:%M} UTC"

    click.echo(in_transaction(ctx, work))


@incident.command("list")
@json_option
@click.pass_obj
def incident_list(ctx: CliContext, as_json: bool) -> None:
    """Incidents: state, next mail due, root cause analysis due."""
    from gateway.domain import NoticeKind
    from gateway.notices import views

    rows = in_transaction(ctx, lambda app, s, now: views.listing(s, [NoticeKind.INCIDENT], now))
    emit(rows, as_json,
         table("reference", "state", "starts_at", "next_mail_at", "restored_at", "rca_due_at", "title"))


@incident.command("show")
@click.argument("reference")
@json_option
@click.pass_obj
def incident_show(ctx: CliContext, reference: str, as_json: bool) -> None:
    """One incident (like ``notice show``)."""
    from gateway.cli.notices import notice_show

    click.get_current_context().invoke(notice_show, reference=reference, as_json=as_json)


