"""``case-gateway run``: the daemon."""

from __future__ import annotations

import sys

import click

from gateway.app import App
from gateway.cli.context import CliContext
from gateway.daemon import Daemon, RunSummary, tune_collector
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

    async def work(app: App) -> RunSummary | None:
        daemon = Daemon(app)
        daemon.install_signal_handlers()
        tune_collector()
        if once:
            return await daemon.run_once()
        await daemon.run_forever()
        return None

    summary = ctx.with_app(work)
    if summary is None:
        click.echo("stopped")
        return
    click.echo(_line(summary))
    if summary.failures:  # one line on stderr, and a status cron notices
        click.echo("error: " + "; ".join(summary.failures), err=True)
        sys.exit(1)


def _line(summary: RunSummary) -> str:
    """What ``run --once`` did, in one line."""
    line = (f"inbound: {summary.inbound.decided} decided, {summary.inbound.moved} moved; "
            f"outbox: {summary.outbound.sent} sent, {summary.outbound.retrying} retrying, "
            f"{summary.outbound.failed} failed, {summary.outbound.expired} expired")
    if summary.held_elsewhere:
        line += f"; left to the process that is reading them: mailbox {', '.join(summary.held_elsewhere)}"
    return line + ("; stopped before the end" if summary.stopped else "")
