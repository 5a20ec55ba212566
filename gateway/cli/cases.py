"""``case-gateway case``: care's side of a case."""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import cases
from gateway.cli.context import CliContext
from gateway.cli.output import case_dict, echo_json, event_dict
from gateway.domain import CASE_TYPES, Environment, Severity

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group()
def case() -> None:
    """Support cases."""


@case.command("open")
@click.option("--org", "organisation", required=True, help="Organisation name.")
@click.option("--contact", "contact_email", required=True, help="The designated contact.")
@click.option("--subject", required=True)
@click.option("--severity", required=True, type=click.Choice([s.value for s in Severity]))
@click.option("--type", "case_type", type=click.Choice(list(CASE_TYPES)), default="support",
              show_default=True)
@click.option("--sub-type", help="Sub-type of the case type (guide 4.4), e.g. problem.")
@click.option("--environment", type=click.Choice([e.value for e in Environment]),
              default="production", show_default=True)
@click.option("--description", help="What the customer reported.")
@json_option
@click.pass_obj
def case_open(
    ctx: CliContext, organisation: str, contact_email: str, subject: str, severity: str,
    case_type: str, sub_type: str | None, environment: str, description: str | None,
    as_json: bool,
) -> None:
    """Open a case for a designated contact (as care does on the phone); prints its number."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        opened = await cases.open_case(
            session, ctx.clock, organisation=organisation, contact_email=contact_email,
            subject=subject, severity=severity, case_type=case_type, sub_type=sub_type,
            environment=environment, description=description,
        )
        return case_dict(opened)

    result = ctx.transaction(work)
    if as_json:
        echo_json(result)
    else:
        click.echo(result["number"])


@case.command("show")
@click.argument("number")
@json_option
@click.pass_obj
def case_show(ctx: CliContext, number: str, as_json: bool) -> None:
    """Show a case and its timeline."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        found = await cases.get_case(session, number)
        data = case_dict(found)
        data["timeline"] = [event_dict(e) for e in await cases.timeline(session, found)]
        return data

    data = ctx.transaction(work)
    if as_json:
        echo_json(data)
        return
    click.echo(f"Case {data['number']}: {data['subject']}")
    for key in ("organisation", "contact", "status", "severity", "type", "sub_type",
                "environment", "escalated", "opened_at", "closed_at"):
        click.echo(f"  {key.replace('_', ' '):<12} {data[key] if data[key] is not None else '-'}")
    click.echo("Timeline:")
    for event in data["timeline"]:
        click.echo(f"  {event['at']}  {event['kind']:<18} {event['actor']}")
        for line in (event["body"] or "").splitlines()[:20]:
            click.echo(f"      {line}")
