"""``case-gateway outbox``: what the gateway sends, for ops."""

from __future__ import annotations

from typing import Any

import click

from gateway.app import App
from gateway.cli.context import CliContext
from gateway.cli.output import emit, iso, json_option, table
from gateway.domain import OutboxStatus
from gateway.models import Outbox
from gateway.outbound import outbox
from gateway.outbound.sender import Sender
from gateway.outbound.transport import SmtpTransport


def outbox_dict(row: Outbox) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "status": row.status,
        "subject": row.subject,
        "message_id": row.message_id,
        "case_id": row.case_id,
        "created_at": iso(row.created_at),
        "next_attempt_at": iso(row.next_attempt_at),
        "expires_at": iso(row.expires_at),
        "attempts": row.attempts,
        "last_error": row.last_error,
        "recipients": [
            {"address": r.address, "status": r.status, "attempts": r.attempts, "code": r.last_code,
             "reply": r.last_reply, "sent_at": iso(r.sent_at)}
            for r in row.recipients
        ],
        "to": ", ".join(r.address for r in row.recipients),
    }


@click.group("outbox")
def outbox_group() -> None:
    """Outgoing mail: every message the gateway has queued, sent or given up on."""


@outbox_group.command("list")
@click.option("--status", type=click.Choice([s.value for s in OutboxStatus]))
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True)
@json_option
@click.pass_obj
def outbox_list(ctx: CliContext, status: str | None, limit: int, as_json: bool) -> None:
    """List outbox rows, newest first."""

    async def work(app: App) -> list[dict[str, Any]]:
        async with app.sessions() as session:
            return [outbox_dict(r) for r in await outbox.list_rows(session, status, limit)]

    emit(ctx.with_app(work), as_json, table("id", "status", "kind", "to", "attempts", "subject"))


@outbox_group.command("retry")
@click.argument("outbox_id", type=int)
@json_option
@click.pass_obj
def outbox_retry(ctx: CliContext, outbox_id: int, as_json: bool) -> None:
    """Send a failed or expired message again, to the recipients that did not get it."""

    async def work(app: App) -> dict[str, Any]:
        async with app.sessions.begin() as session:
            retried = await outbox.retry(session, await app.mailer(session), outbox_id)
            return outbox_dict(retried)

    data = ctx.with_app(work)
    emit(data, as_json, f"outbox row {data['id']} queued again for {data['to']}")


@outbox_group.command("send")
@click.pass_obj
def outbox_send(ctx: CliContext) -> None:
    """Send everything that is due now, then exit (the daemon does this continuously)."""

    async def work(app: App) -> str:
        transport = SmtpTransport(app.settings.smtp)
        try:
            sender = Sender(app.engine, transport, app.settings.outbox, app.clock,
                            concurrency=app.settings.smtp.pool_size)
            stats = await sender.run_until_empty()
        finally:
            await transport.close()
        return (f"sent {stats.sent}, retrying {stats.retrying}, failed {stats.failed}, "
                f"expired {stats.expired}")

    click.echo(ctx.with_app(work))
