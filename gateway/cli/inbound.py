"""``case-gateway inbound`` and ``case-gateway quarantine``: what came in and what became of it."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from gateway.app import App
from gateway.cli.context import CliContext
from gateway.cli.output import emit, fields, iso, json_option, table
from gateway.domain import Disposition
from gateway.errors import NotFound, PolicyViolation
from gateway.inbound.loop.release import release
from gateway.inbound.loop.store import raw_of
from gateway.inbound.policy.context import Services
from gateway.models import Case, InboundMessage


def inbound_dict(row: InboundMessage, case_number: str | None, full: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": row.id, "mailbox": row.mailbox, "uid": row.uid, "uidvalidity": row.uidvalidity,
        "received_at": iso(row.received_at), "from": row.from_address, "subject": row.subject,
        "disposition": row.disposition, "case": case_number, "attempts": row.attempts,
        "error": row.error, "folder": row.target_folder, "moved": row.moved,
    }
    if full:
        data.update(message_id=row.message_id, size=row.size, new_text=row.new_text, trail=row.trail,
                    processed_at=iso(row.processed_at))
    return data


async def _rows(app: App, disposition: str | None, limit: int) -> list[dict[str, Any]]:
    stmt = (select(InboundMessage, Case.number).outerjoin(Case, Case.id == InboundMessage.case_id)
            .order_by(InboundMessage.id.desc()).limit(limit))
    if disposition is not None:
        stmt = stmt.where(InboundMessage.disposition == disposition)
    async with app.sessions() as session:
        return [inbound_dict(row, number) for row, number in (await session.execute(stmt)).all()]


def _trail(trail: Iterable[dict[str, Any]]) -> Iterator[str]:
    """The stages that decided a message, one a line."""
    for step in trail:
        yield f"  {step['stage']:<10} {step['outcome']:<22} {step['detail']}".rstrip()


@click.group()
def inbound() -> None:
    """Inbound mail and its dispositions."""


@inbound.command("list")
@click.option("--disposition", type=click.Choice([d.value for d in Disposition]))
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True)
@json_option
@click.pass_obj
def inbound_list(ctx: CliContext, disposition: str | None, limit: int, as_json: bool) -> None:
    """List inbound messages, newest first."""
    emit(ctx.with_app(lambda app: _rows(app, disposition, limit)), as_json,
         table("id", "received_at", "from", "disposition", "case", "subject"))


@inbound.command("show")
@click.argument("inbound_id", type=int)
@click.option("--raw", is_flag=True, help="Write the message as it was received (its stored bytes).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="With --raw: write to this file instead of standard output.")
@json_option
@click.pass_obj
def inbound_show(ctx: CliContext, inbound_id: int, raw: bool, out: Path | None, as_json: bool) -> None:
    """One inbound message: its disposition and the trail of stages that decided it; with
    --raw, the message itself as received."""
    if out is not None and not raw:
        raise click.UsageError("--out needs --raw")
    if raw:
        _write_raw(ctx, inbound_id, out)
        return

    async def work(app: App) -> dict[str, Any]:
        async with app.sessions() as session:
            row = await session.get(InboundMessage, inbound_id)
            if row is None:
                raise NotFound(f"no inbound message {inbound_id}")
            number = await session.scalar(select(Case.number).where(Case.id == row.case_id)) \
                if row.case_id else None
            return inbound_dict(row, number, full=True)

    emit(ctx.with_app(work), as_json, _inbound_lines)


def _inbound_lines(data: dict[str, Any]) -> Iterator[str]:
    yield from fields(data, ("id", "mailbox", "uid", "received_at", "from", "subject", "message_id",
                             "size", "disposition", "case", "folder", "moved", "attempts", "error"))
    yield "trail:"
    yield from _trail(data["trail"] or [])
    if data["new_text"]:
        yield "new text:"
        for line in data["new_text"].splitlines()[:40]:
            yield f"  {line}"


def _write_raw(ctx: CliContext, inbound_id: int, out: Path | None) -> None:
    async def work(app: App) -> tuple[bytes, int]:
        async with app.sessions() as session:
            row = await session.get(InboundMessage, inbound_id)
            if row is None:
                raise NotFound(f"no inbound message {inbound_id}")
            data = await raw_of(session, inbound_id)
            if data is None:
                raise PolicyViolation(f"inbound message {inbound_id} has no stored raw message")
            return data, row.size

    data, size = ctx.with_app(work)
    if len(data) < size:
        click.echo(f"warning: only {len(data)} of its {size} bytes were kept (the header); "
                   "the whole message is in the quarantine folder", err=True)
    if out is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        out.write_bytes(data)
        click.echo(f"wrote {len(data)} bytes to {out}", err=True)


@click.group()
def quarantine() -> None:
    """Messages a human must look at."""


@quarantine.command("list")
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True)
@json_option
@click.pass_obj
def quarantine_list(ctx: CliContext, limit: int, as_json: bool) -> None:
    """List quarantined messages with the reason."""
    emit(ctx.with_app(lambda app: _rows(app, Disposition.QUARANTINED.value, limit)), as_json,
         table("id", "received_at", "from", "subject", "error"))


@quarantine.command("release")
@click.argument("inbound_id", type=int)
@json_option
@click.pass_obj
def quarantine_release(ctx: CliContext, inbound_id: int, as_json: bool) -> None:
    """Run the pipeline again on a quarantined message (e.g. after fixing a contact)."""

    async def work(app: App) -> dict[str, Any]:
        async with app.sessions.begin() as session:
            mailer = await app.mailer(session)
            our = frozenset(a.lower() for a in (app.settings.mail.from_address, app.settings.mail.reply_to))
            services = Services(app.settings, app.clock, mailer, mailer.keys, our)
            result = await release(session, services, inbound_id)
            return {"id": inbound_id, "disposition": result.row.disposition, "trail": result.trail}

    emit(ctx.with_app(work), as_json, _release_lines)


def _release_lines(data: dict[str, Any]) -> Iterator[str]:
    yield f"inbound message {data['id']}: {data['disposition']}"
    yield from _trail(data["trail"])
