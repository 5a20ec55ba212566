"""``case-gateway dl``: customers' distribution lists for notices."""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.cli.context import CliContext
from gateway.cli.output import emit, iso, json_option, table


@click.group("dl")
def dl() -> None:
    """Distribution lists that receive notices."""


@dl.command("add")
@click.argument("address")
@click.option("--org", "organisation", required=True, help="Organisation name.")
@click.option("--tz", "timezone", help="IANA zone for times in notices (default: the organisation's).")
@click.option("--kinds", help="Comma-separated: maintenance, incident, advisory (default: all).")
@click.pass_obj
def dl_add(ctx: CliContext, address: str, organisation: str, timezone: str | None, kinds: str | None) -> None:
    """Add a distribution list address to an organisation."""
    from gateway.notices import lists

    async def work(session: AsyncSession) -> str:
        row = await lists.add(session, ctx.clock.now(), address=address, organisation=organisation,
                              timezone=timezone, kinds=kinds)
        return row.address

    click.echo(f"distribution list {ctx.transaction(work)} added to {organisation}")


@dl.command("list")
@click.option("--org", "organisation", help="Only this organisation.")
@json_option
@click.pass_obj
def dl_list(ctx: CliContext, organisation: str | None, as_json: bool) -> None:
    """List distribution lists, with their permanent failures and suspension."""
    from gateway.notices import lists

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        return [{"address": v.address, "organisation": v.organisation, "timezone": v.timezone,
                 "kinds": ",".join(v.kinds) or "all", "failures": v.failures,
                 "suspended": v.suspended_at is not None, "suspended_at": iso(v.suspended_at)}
                for v in await lists.views(session, organisation)]

    emit(ctx.transaction(work), as_json,
         table("address", "organisation", "timezone", "kinds", "failures", "suspended"))


@dl.command("remove")
@click.argument("address")
@click.option("--org", "organisation", required=True, help="Organisation name.")
@click.pass_obj
def dl_remove(ctx: CliContext, address: str, organisation: str) -> None:
    """Remove a distribution list address from an organisation."""
    from gateway.notices import lists

    async def work(session: AsyncSession) -> None:
        await lists.remove(session, address=address, organisation=organisation)

    ctx.transaction(work)
    click.echo(f"distribution list {address} removed from {organisation}")


@dl.command("resume")
@click.argument("address")
@click.pass_obj
def dl_resume(ctx: CliContext, address: str) -> None:
    """Resume a suspended address: it receives notices again, its failures counted afresh."""
    from gateway.notices import lists

    async def work(session: AsyncSession) -> int:
        return len(await lists.resume(session, ctx.clock.now(), address=address))

    ctx.transaction(work)
    click.echo(f"distribution list {address} resumed")
