"""``case-gateway run``: the daemon."""

from __future__ import annotations

import click

from gateway.app import App
from gateway.cli.context import CliContext
from gateway.daemon import Daemon, tune_collector
from gateway.logs import configure_logging
from gateway.run_lock import run_lock


@click.command("run")
@click.option("--once", is_flag=True,
              help="Process everything in the mailboxes, send what is due, then exit.")
@click.pass_obj
def run(ctx: CliContext, once: bool) -> None:
    """Watch the mailboxes (IDLE, polling as fallback) and send the outbox until SIGINT/SIGTERM."""
    configure_logging(ctx.settings.logging)
    with run_lock(ctx.settings.database.url):  # one run per SQLite database; refused with one line
        _run(ctx, once)


def _run(ctx: CliContext, once: bool) -> None:

    async def work(app: App) -> str:
        daemon = Daemon(app)
        daemon.install_signal_handlers()
        tune_collector()
        if once:
            summary = await daemon.run_once()
            return (f"inbound: {summary.inbound.decided} decided, {summary.inbound.moved} moved; "
                    f"outbox: {summary.outbound.sent} sent, {summary.outbound.retrying} retrying, "
                    f"{summary.outbound.failed} failed, {summary.outbound.expired} expired"
                    + ("; stopped before the end" if summary.stopped else ""))
        await daemon.run_forever()
        return "stopped"

    click.echo(ctx.with_app(work))
