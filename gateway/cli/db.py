"""``case-gateway db``: the schema, through Alembic migrations only."""

from __future__ import annotations

import click
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway import migrate
from gateway.cli.context import CliContext


@click.group()
def db() -> None:
    """Database schema."""


@db.command()
@click.pass_obj
def upgrade(ctx: CliContext) -> None:
    """Apply every pending migration."""

    async def work(engine: AsyncEngine) -> str | None:
        await migrate.upgrade(engine)
        return await migrate.current_revision(engine)

    revision = ctx.run(work, check_schema=False)
    click.echo(f"database at revision {revision}")


@db.command()
@click.pass_obj
def status(ctx: CliContext) -> None:
    """Show the database's revision and the gateway's."""
    current = ctx.run(migrate.current_revision, check_schema=False)
    head = migrate.head_revision()
    state = "up to date" if current == head else "out of date: run `case-gateway db upgrade`"
    click.echo(f"database: {current or 'no schema'}; gateway: {head} ({state})")
