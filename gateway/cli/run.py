"""``case-gateway run``: the daemon."""

from __future__ import annotations

import click
import structlog

from gateway.app import App
from gateway.cli.context import CliContext
from gateway.daemon import Daemon, tune_collector
from gateway.logs import configure_logging
from gateway.operations.metrics import Metrics

log = structlog.get_logger(__name__)


@click.command("run")
@click.option("--once", is_flag=True,
              help="Process everything in the mailboxes, send what is due, then exit.")
@click.pass_obj
def run(ctx: CliContext, once: bool) -> None:
    """Watch the mailboxes (IDLE, polling as fallback) and send the outbox until SIGINT/SIGTERM."""
    configure_logging(ctx.settings.logging)

    async def work(app: App) -> str:
        metrics = Metrics() if ctx.settings.metrics.enabled and not once else None
        if metrics is not None:
            port = metrics.serve(ctx.settings.metrics.host, ctx.settings.metrics.port)
            log.info("metrics.listening", host=ctx.settings.metrics.host, port=port)
        daemon = Daemon(app, metrics=metrics)
        daemon.install_signal_handlers()
        tune_collector()
        try:
            if once:
                summary = await daemon.run_once()
                return (f"inbound: {summary.inbound.decided} decided, {summary.inbound.moved} moved; "
                        f"outbox: {summary.outbound.sent} sent, {summary.outbound.retrying} retrying, "
                        f"{summary.outbound.failed} failed, {summary.outbound.expired} expired"
                        + ("; stopped before the end" if summary.stopped else ""))
            await daemon.run_forever()
            return "stopped"
        finally:
            if metrics is not None:
                metrics.close()

    click.echo(ctx.with_app(work))
