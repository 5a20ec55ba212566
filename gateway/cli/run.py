"""``case-gateway run``: the daemon."""

from __future__ import annotations

import dataclasses
import sys
from datetime import datetime

import click
import structlog

from gateway.app import App
from gateway.cli.context import CliContext
from gateway.clock import FrozenClock
from gateway.daemon import Daemon, RunSummary, tune_collector
from gateway.logs import configure_logging
from gateway.operations.metrics import Metrics
from gateway.run_lock import run_lock

log = structlog.get_logger(__name__)


@click.command("run")
@click.option("--once", is_flag=True,
              help="Process everything in the mailboxes, send what is due, then exit.")
@click.option("--now", "now_text", metavar="INSTANT",
              help="With --once: run as if it were this instant (ISO 8601 with an offset, "
                   "e.g. 2026-11-04T09:00:00+01:00): the scheduler takes and the outbox sends "
                   "what is due then.")
@click.pass_obj
def run(ctx: CliContext, once: bool, now_text: str | None) -> None:
    """Watch the mailboxes (IDLE, polling as fallback), run the scheduler and send the outbox
    until SIGINT/SIGTERM."""
    if now_text is not None:
        if not once:
            raise click.UsageError("--now needs --once: only a single pass can run as another instant")
        ctx = dataclasses.replace(ctx, clock=FrozenClock(parse_instant(now_text, "--now")))
    configure_logging(ctx.settings.logging)
    with run_lock(ctx.settings.database.url):  # one run per SQLite database; refused with one line
        _run(ctx, once)


def _run(ctx: CliContext, once: bool) -> None:

    async def work(app: App) -> RunSummary | None:
        metrics = Metrics() if ctx.settings.metrics.enabled and not once else None
        if metrics is not None:
            port = metrics.serve(ctx.settings.metrics.host, ctx.settings.metrics.port)
            log.info("metrics.listening", host=ctx.settings.metrics.host, port=port)
        daemon = Daemon(app, metrics=metrics)
        daemon.install_signal_handlers()
        tune_collector()
        try:
            if once:
                return await daemon.run_once()
            await daemon.run_forever()
            return None
        finally:
            if metrics is not None:
                metrics.close()

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
            f"scheduler: {summary.scheduled} due items; "
            f"outbox: {summary.outbound.sent} sent, {summary.outbound.retrying} retrying, "
            f"{summary.outbound.failed} failed, {summary.outbound.expired} expired")
    if summary.held_elsewhere:
        line += f"; left to the process that is reading them: mailbox {', '.join(summary.held_elsewhere)}"
    return line + ("; stopped before the end" if summary.stopped else "")


def parse_instant(text: str, option: str) -> datetime:
    """An ISO 8601 instant that names its offset; a local time without one is ambiguous."""
    try:
        instant = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(f"not an ISO 8601 instant: {text!r}", param_hint=option) from None
    if instant.tzinfo is None:
        raise click.BadParameter(f"{text!r} has no offset (add +01:00 or Z)", param_hint=option)
    return instant
