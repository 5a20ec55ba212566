"""``case-gateway notice``, ``maintenance`` and ``advisory``: notices to distribution lists."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.app import App
from gateway.cli.context import CliContext
from gateway.cli.output import emit, json_option, table


def in_transaction(ctx: CliContext, work: Callable[[App, AsyncSession, datetime], Awaitable[Any]]) -> Any:
    """Run ``work`` with the app, one transaction and the current instant."""

    async def go(app: App) -> Any:
        async with app.sessions.begin() as session:
            return await work(app, session, app.clock.now())

    return ctx.with_app(go)


def read_text(path: str, what: str) -> str:
    from gateway.errors import InvalidValue

    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidValue(f"{what}: cannot read {path}: {exc}") from None


@click.group("notice")
def notice() -> None:
    """Notices of every kind, by reference."""


@notice.command("show")
@click.argument("reference")
@json_option
@click.pass_obj
def notice_show(ctx: CliContext, reference: str, as_json: bool) -> None:
    """A notice, its mails, and who got each, when, with the relay's answer."""
    from gateway.notices import views

    emit(in_transaction(ctx, lambda app, s, now: views.detail(s, reference, now)), as_json, _notice_lines)


def _notice_lines(data: dict[str, Any]) -> Iterator[str]:
    for key in ("reference", "kind", "state", "title", "organisations", "starts_at", "ends_at",
                "next_mail_at", "rca_due_at"):
        if data.get(key):
            value = ", ".join(data[key]) if isinstance(data[key], list) else data[key]
            yield f"{key.replace('_', ' ')}: {value}"
    yield "mails:"
    yield from table("sequence", "kind", "state", "at", "due_at", "sent_at", "outcome")(data["mails"])
    yield "deliveries:"
    yield from table("mail", "kind", "address", "status", "sent_at", "code", "reply")(data["deliveries"])


WINDOW = [
    click.option("--start", help="Start: ISO 8601 with an offset, or local time with --tz."),
    click.option("--end", help="End, likewise."),
    click.option("--tz", "timezone", help="IANA zone for --start/--end without an offset."),
    click.option("--impact", help="Potential impact on the service."),
    click.option("--services", help="Affected services, e.g. 'Voice, Chat'."),
    click.option("--title", help="Short title (default from the services)."),
    click.option("--summary", help="What will be done."),
]


def window_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(WINDOW):
        func = option(func)
    return func


def make_window(start: str | None, end: str | None, timezone: str | None, **rest: str | None) -> Any:
    from gateway.notices.maintenance import Window
    from gateway.notices.times import parse_instant

    return Window(starts_at=parse_instant(start, timezone, "--start") if start else None,
                  ends_at=parse_instant(end, timezone, "--end") if end else None, **rest)


@click.group("maintenance")
def maintenance() -> None:
    """Planned and emergency maintenance notices."""


def _schedule(ctx: CliContext, emergency: bool, orgs: str | None, everyone: bool, **values: Any) -> None:
    from gateway.notices.maintenance import Maintenance

    async def work(app: App, session: AsyncSession, now: datetime) -> tuple[str, datetime | None]:
        window = make_window(**values)
        found = await Maintenance(app.settings, app.renderer).schedule(
            session, now, window, orgs=orgs, everyone=everyone, emergency=emergency)
        return found.reference, (found.send_at if found.send_at and found.send_at > now else None)

    reference, held_until = in_transaction(ctx, work)
    click.echo(reference + (f" held until {held_until.isoformat()}" if held_until else " sent"))


@maintenance.command("schedule")
@window_options
@click.option("--orgs", help="Comma-separated organisation names.")
@click.option("--all", "everyone", is_flag=True, help="Every organisation.")
@click.pass_obj
def maintenance_schedule(ctx: CliContext, /, orgs: str | None, everyone: bool, **values: Any) -> None:
    """Schedule planned maintenance (7 to 14 days ahead; later ones are held)."""
    _schedule(ctx, False, orgs, everyone, **values)


@maintenance.command("emergency")
@window_options
@click.option("--orgs", help="Comma-separated organisation names.")
@click.option("--all", "everyone", is_flag=True, help="Every organisation.")
@click.pass_obj
def maintenance_emergency(ctx: CliContext, /, orgs: str | None, everyone: bool, **values: Any) -> None:
    """Announce emergency maintenance, sent at once."""
    _schedule(ctx, True, orgs, everyone, **values)


@maintenance.command("change")
@click.argument("reference")
@window_options
@click.option("--reason", help="What changed and why (shown in the mail).")
@click.pass_obj
def maintenance_change(ctx: CliContext, /, reference: str, reason: str | None, **values: Any) -> None:
    """Change a maintenance: its recipients get the change with the same reference."""
    from gateway.notices.maintenance import Maintenance

    async def work(app: App, session: AsyncSession, now: datetime) -> str:
        found = await Maintenance(app.settings, app.renderer).change(
            session, now, reference, make_window(**values), reason)
        return found.reference

    click.echo(f"{in_transaction(ctx, work)} changed")


@maintenance.command("cancel")
@click.argument("reference")
@click.option("--reason", help="Why (shown in the mail).")
@click.pass_obj
def maintenance_cancel(ctx: CliContext, reference: str, reason: str | None) -> None:
    """Cancel a maintenance: its recipients get the cancellation with the same reference."""
    from gateway.notices.maintenance import Maintenance

    async def work(app: App, session: AsyncSession, now: datetime) -> str:
        found = await Maintenance(app.settings, app.renderer).cancel(session, now, reference, reason)
        return found.reference

    click.echo(f"{in_transaction(ctx, work)} cancelled")


@maintenance.command("list")
@json_option
@click.pass_obj
def maintenance_list(ctx: CliContext, as_json: bool) -> None:
    """Every maintenance notice and its state."""
    from gateway.notices import mails, views

    rows = in_transaction(ctx, lambda app, s, now: views.listing(s, mails.MAINTENANCE, now))
    emit(rows, as_json, table("reference", "kind", "state", "starts_at", "ends_at", "send_at", "title"))


@click.group("advisory")
def advisory() -> None:
    """Product and security advisories."""


@advisory.command("send")
@click.option("--kind", required=True, type=click.Choice(["product", "security"]))
@click.option("--title", required=True)
@click.option("--details-file", required=True, help="Plain-text file with the details.")
@click.option("--link", required=True, help="URL with further information.")
@click.option("--impact", help="Possible impact.")
@click.option("--orgs", help="Comma-separated organisation names.")
@click.option("--all", "everyone", is_flag=True, help="Every organisation.")
@click.pass_obj
def advisory_send(ctx: CliContext, kind: str, title: str, details_file: str, link: str,
                  impact: str | None, orgs: str | None, everyone: bool) -> None:
    """Send an advisory at once."""
    from gateway.notices.advisories import Advisories

    async def work(app: App, session: AsyncSession, now: datetime) -> str:
        details = read_text(details_file, "--details-file")
        found = await Advisories(app.settings, app.renderer).send(
            session, now, kind=kind, title=title, details=details, link=link, impact=impact,
            orgs=orgs, everyone=everyone)
        return found.reference

    click.echo(f"{in_transaction(ctx, work)} sent")
