"""``case-gateway org`` and ``case-gateway contact``: customers and their designated contacts."""

from __future__ import annotations

import click
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import directory
from gateway.cli.context import CliContext
from gateway.cli.output import contact_dict, emit, json_option, organisation_dict, table
from gateway.errors import UsageError


@click.group()
def org() -> None:
    """Customer organisations."""


@org.command("add")
@click.argument("name")
@click.option("--tz", "timezone", required=True, help="IANA time zone, e.g. Europe/Berlin.")
@click.option("--country", required=True, help="Holiday country (ISO 3166), e.g. DE.")
@click.option("--subdivision", help="Holiday subdivision, e.g. BY.")
@click.option("--agents", type=click.IntRange(min=0), default=0, help="Total agents (availability).")
@click.option("--hours", default="09:00-17:00", show_default=True,
              help="Business hours, local time (the response targets count them).")
@json_option
@click.pass_obj
def org_add(
    ctx: CliContext, name: str, timezone: str, country: str, subdivision: str | None,
    agents: int, hours: str, as_json: bool,
) -> None:
    """Add an organisation."""

    async def work(session: AsyncSession) -> dict[str, object]:
        created = await directory.add_organisation(
            session, ctx.clock, name=name, timezone=timezone, country=country,
            subdivision=subdivision, total_agents=agents, hours=hours,
        )
        return organisation_dict(created)

    result = ctx.transaction(work)
    emit(result, as_json, f"organisation {result['name']} added")


@org.command("update")
@click.argument("name")
@click.option("--hours", help="Business hours, local time, e.g. 08:00-18:00.")
@click.option("--tz", "timezone", help="IANA time zone, e.g. Europe/Berlin.")
@click.option("--country", help="Holiday country (ISO 3166), e.g. DE.")
@click.option("--subdivision", help="Holiday subdivision, e.g. BY.")
@click.option("--agents", type=click.IntRange(min=0), help="Total agents (availability).")
@json_option
@click.pass_obj
def org_update(
    ctx: CliContext, name: str, hours: str | None, timezone: str | None, country: str | None,
    subdivision: str | None, agents: int | None, as_json: bool,
) -> None:
    """Change an organisation's business hours, zone, holidays or number of agents."""

    async def work(session: AsyncSession) -> dict[str, object]:
        return organisation_dict(await directory.update_organisation(
            session, name, hours=hours, timezone=timezone, country=country, subdivision=subdivision,
            total_agents=agents,
        ))

    result = ctx.transaction(work)
    emit(result, as_json,
         f"organisation {result['name']} updated: {result['timezone']}, holidays "
         f"{result['country']}{'-' + str(result['subdivision']) if result['subdivision'] else ''}, "
         f"business hours {result['hours']}, {result['agents']} agents")


@org.command("list")
@json_option
@click.pass_obj
def org_list(ctx: CliContext, as_json: bool) -> None:
    """List organisations."""

    async def work(session: AsyncSession) -> list[dict[str, object]]:
        return [organisation_dict(o) for o in await directory.list_organisations(session)]

    emit(ctx.transaction(work), as_json,
         table("name", "timezone", "country", "subdivision", "hours", "agents"))


@click.group()
def contact() -> None:
    """Contacts of organisations (only designated contacts may open or update cases)."""


@contact.command("add")
@click.argument("email")
@click.option("--org", "organisation", required=True, help="Organisation name.")
@click.option("--name", help="Display name.")
@click.option("--designated/--not-designated", default=True, show_default=True)
@json_option
@click.pass_obj
def contact_add(
    ctx: CliContext, email: str, organisation: str, name: str | None, designated: bool,
    as_json: bool,
) -> None:
    """Add a contact to an organisation."""

    async def work(session: AsyncSession) -> dict[str, object]:
        created = await directory.add_contact(
            session, ctx.clock, email=email, organisation=organisation, name=name,
            designated=designated,
        )
        return contact_dict(created)

    result = ctx.transaction(work)
    role = "designated contact" if designated else "contact (not designated)"
    emit(result, as_json, f"{role} {result['email']} added to {result['organisation']}")


@contact.command("list")
@click.option("--org", "organisation", help="Only this organisation.")
@json_option
@click.pass_obj
def contact_list(ctx: CliContext, organisation: str | None, as_json: bool) -> None:
    """List contacts."""

    async def work(session: AsyncSession) -> list[dict[str, object]]:
        return [contact_dict(c) for c in await directory.list_contacts(session, organisation)]

    emit(ctx.transaction(work), as_json, table("email", "name", "organisation", "designated"))


@contact.command("update")
@click.argument("email")
@click.option("--org", "organisation", help="The organisation, where the address is a contact of several.")
@click.option("--name", help="New display name ('' clears it).")
@click.option("--designated/--not-designated", default=None, help="Change the designation.")
@json_option
@click.pass_obj
def contact_update(
    ctx: CliContext, email: str, organisation: str | None, name: str | None, designated: bool | None,
    as_json: bool,
) -> None:
    """Correct a contact's name or designation (then release its quarantined mail if need be)."""
    if name is None and designated is None:
        raise UsageError("nothing to change: give --name or --designated/--not-designated")

    async def work(session: AsyncSession) -> dict[str, object]:
        changed = await directory.update_contact(
            session, email=email, organisation=organisation, name=name, designated=designated
        )
        return contact_dict(changed)

    result = ctx.transaction(work)
    role = "designated contact" if result["designated"] else "contact (not designated)"
    emit(result, as_json, f"{role} {result['email']} of {result['organisation']} updated")


@contact.command("remove")
@click.argument("email")
@click.option("--org", "organisation", help="The organisation, where the address is a contact of several.")
@click.option("--force", is_flag=True, help="Remove even though the contact has open cases.")
@click.pass_obj
def contact_remove(ctx: CliContext, email: str, organisation: str | None, force: bool) -> None:
    """Remove a contact: it can no longer update cases; its cases and their history stay."""

    async def work(session: AsyncSession) -> tuple[str, str, int]:
        removed, open_cases = await directory.remove_contact(
            session, ctx.clock, email=email, organisation=organisation, force=force
        )
        return removed.email, removed.organisation.name, open_cases

    address, org_name, open_cases = ctx.transaction(work)
    still = f" ({open_cases} open case(s) keep it as their contact)" if open_cases else ""
    click.echo(f"contact {address} removed from {org_name}{still}")
