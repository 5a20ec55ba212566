"""``case-gateway``: the command line. One module per command group."""

from __future__ import annotations

import sys
from typing import Any

import click
from sqlalchemy.exc import DBAPIError, OperationalError

from gateway.cli.context import CliContext
from gateway.errors import ConfigError, GatewayError


class GatewayGroup(click.Group):
    """Turns every error we know into one line and an exit status; no tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
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


def _register() -> None:
    from gateway.cli import cases, db, directory, inbound, outbox, run
    from gateway.demo.cli import demo

    cli.add_command(db.db)
    cli.add_command(directory.org)
    cli.add_command(directory.contact)
    cli.add_command(cases.case)
    cli.add_command(outbox.outbox_group)
    cli.add_command(inbound.inbound)
    cli.add_command(inbound.quarantine)
    cli.add_command(run.run)
    cli.add_command(demo)


_register()


def main() -> None:
    cli(prog_name="case-gateway")
