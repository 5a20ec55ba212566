"""``case-gateway``: the command line. One module per command group, imported when its
command runs (click's lazy loading): ``--help`` answers at once, and the parse workers' fork
server, which imports the main script, does not load the whole program to parse mail."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from gateway.cli.context import CliContext
from gateway.errors import ConfigError, GatewayError

COMMANDS = {
    "db": "gateway.cli.db:db",
    "org": "gateway.cli.directory:org",
    "contact": "gateway.cli.directory:contact",
    "case": "gateway.cli.cases:case",
    "outbox": "gateway.cli.outbox:outbox_group",
    "inbound": "gateway.cli.inbound:inbound",
    "quarantine": "gateway.cli.inbound:quarantine",
    "dl": "gateway.cli.lists:dl",
    "notice": "gateway.cli.notices:notice",
    "maintenance": "gateway.cli.notices:maintenance",
    "advisory": "gateway.cli.notices:advisory",
    "incident": "gateway.cli.incidents:incident",
    "run": "gateway.cli.run:run",
    "schedule": "gateway.cli.schedule:schedule",
    "report": "gateway.cli.report:report",
    "status": "gateway.cli.status:status",
    "demo": "gateway.demo.cli:demo",
}
"""Command name -> ``module:attribute`` of its click command."""


class GatewayGroup(click.Group):
    """Loads each command's module when it is asked for, and turns every error we know into
    one line and an exit status; no tracebacks."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            module, _, attribute = COMMANDS[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{COMMANDS[cmd_name]} is not a click command")
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        from sqlalchemy.exc import DBAPIError, OperationalError

        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            click.echo(f"config error: {exc}", err=True)
            sys.exit(2)
        except GatewayError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except (OperationalError, DBAPIError, OSError) as exc:
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            click.echo(f"error: database or network failure: {reason}", err=True)
            sys.exit(1)


@click.group(cls=GatewayGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="GATEWAY_CONFIG",
    help="TOML settings file (default: $GATEWAY_CONFIG, else built-in defaults).",
)
@click.version_option(package_name="case-gateway")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Email-driven case gateway for customer care."""
    # An embedding caller (the tests) may hand in a Clock as the context object.
    ctx.obj = CliContext.load(config_path, clock=ctx.obj)


def main() -> None:
    cli(prog_name="case-gateway")
