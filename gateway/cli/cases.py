"""``case-gateway case``: care's side of a case."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TextIO

import click
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import cases
from gateway.app import App
from gateway.cli.context import CliContext
from gateway.cli.output import case_dict, emit, event_dict, field, fields, json_option, table
from gateway.domain import CASE_TYPES, WHOLE_TEXT_KEPT, CaseStatus, Environment, Severity


@click.group()
def case() -> None:
    """Support cases."""


@case.command("open")
@click.option("--org", "organisation", required=True, help="Organisation name.")
@click.option("--contact", "contact_email", required=True, help="The designated contact.")
@click.option("--subject", required=True)
@click.option("--severity", required=True, type=click.Choice([s.value for s in Severity]))
@click.option("--type", "case_type", type=click.Choice(list(CASE_TYPES)), default="support",
              show_default=True)
@click.option("--sub-type", help="Sub-type of the case type (guide 4.4), e.g. problem.")
@click.option("--environment", type=click.Choice([e.value for e in Environment]),
              default="production", show_default=True)
@click.option("--description", help="What the customer reported.")
@json_option
@click.pass_obj
def case_open(
    ctx: CliContext, organisation: str, contact_email: str, subject: str, severity: str,
    case_type: str, sub_type: str | None, environment: str, description: str | None,
    as_json: bool,
) -> None:
    """Open a case for a designated contact (as care does on the phone) and send the
    acknowledgement; prints the case number."""

    async def work(app: App) -> dict[str, Any]:
        async with app.sessions.begin() as session:
            care = await app.care(session)
            opened = await care.open_case(
                session, organisation=organisation, contact_email=contact_email,
                subject=subject, severity=severity, case_type=case_type, sub_type=sub_type,
                environment=environment, description=description,
            )
            return case_dict(opened)

    result = ctx.with_app(work)
    emit(result, as_json, result["number"])


@case.command("list")
@click.option("--org", "organisation", help="Only this organisation's cases.")
@click.option("--status", type=click.Choice([s.value for s in CaseStatus]), help="Only cases in this status.")
@click.option("--contact", "contact_email", help="Only cases of this contact.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many (the latest changed first).")
@json_option
@click.pass_obj
def case_list(
    ctx: CliContext, organisation: str | None, status: str | None, contact_email: str | None,
    limit: int | None, as_json: bool,
) -> None:
    """List cases, the most recently changed first."""

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        found = await cases.list_cases(session, organisation=organisation, status=status,
                                       contact_email=contact_email, limit=limit)
        return [case_dict(c) for c in found]

    emit(ctx.transaction(work), as_json,
         table("number", "organisation", "contact", "status", "severity", "updated_at", "subject"))


@case.command("show")
@click.argument("number")
@json_option
@click.pass_obj
def case_show(ctx: CliContext, number: str, as_json: bool) -> None:
    """Show a case and its timeline."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        from gateway.schedule import views

        found = await cases.get_case(session, number)
        data = case_dict(found)
        events = await cases.timeline(session, found)
        data["followup"] = views.followup_view(found)
        data["targets"] = views.targets_view(found, views.events_of(events), ctx.clock.now())
        data["timeline"] = [event_dict(e) for e in events]
        return data

    emit(ctx.transaction(work), as_json, _case_lines)


TIMELINE_LINES = 20


def _case_lines(data: dict[str, Any]) -> Iterator[str]:
    yield f"Case {data['number']}: {data['subject']}"
    yield from fields(data, ("organisation", "contact", "status", "severity", "type", "sub_type",
                             "environment", "escalated", "opened_at", "closed_at"), indent="  ")
    timer = data["followup"]
    if timer["running"]:
        yield field("follow-up", f"cycle {timer['cycle']}: {timer['next_step']} due "
                                 f"{timer['due_local']} ({timer['due_at']})", indent="  ")
    else:
        yield field("follow-up", "not running", indent="  ")
    for name, target in data["targets"].items():
        by = f" by {target['by']}" if target["by"] else ""
        due = f", due {target['due_at']}" if target["due_at"] else ""
        yield field(name, f"{target['target']}: {target['state']}{by}{due}", indent="  ")
    yield "Timeline:"
    for event in data["timeline"]:
        yield f"  {event['at']}  {event['kind']:<18} {event['actor']}{_source(event)}"
        lines = (event["body"] or "").splitlines()
        for line in lines[:TIMELINE_LINES]:
            yield f"      {line}"
        if len(lines) > TIMELINE_LINES:
            yield f"      ... {len(lines) - TIMELINE_LINES} more lines (--json shows them all)"


def _source(event: dict[str, Any]) -> str:
    """Where a timeline entry came from: its inbound message (``inbound show ID --raw`` has
    the original), flagged when the whole text was kept because extraction was in doubt."""
    if event["inbound_message_id"] is None:
        return ""
    flag = "; whole text kept, extraction in doubt" if (event["data"] or {}).get(WHOLE_TEXT_KEPT) else ""
    return f"  (inbound {event['inbound_message_id']}{flag})"


message_file = click.option(
    "--message-file", type=click.File("r", encoding="utf-8"), required=True,
    help="The text to send ('-' reads standard input).",
)


def _care_action(ctx: CliContext, number: str, action: str, message: str | None) -> dict[str, Any]:
    async def work(app: App) -> dict[str, Any]:
        async with app.sessions.begin() as session:
            care = await app.care(session)
            method = getattr(care, action)
            changed = await (method(session, number, message) if message is not None
                             else method(session, number))
            return case_dict(changed)

    return ctx.with_app(work)


def _report(data: dict[str, Any], verb: str, as_json: bool) -> None:
    emit(data, as_json,
         f"case {data['number']} {verb}; status {data['status']}; mail queued to {data['contact']}")


@case.command("reply")
@click.argument("number")
@message_file
@json_option
@click.pass_obj
def case_reply(ctx: CliContext, number: str, message_file: TextIO, as_json: bool) -> None:
    """Send care's reply to the case's contact (status: in progress)."""
    _report(_care_action(ctx, number, "reply", message_file.read()), "answered", as_json)


@case.command("request-info")
@click.argument("number")
@message_file
@json_option
@click.pass_obj
def case_request_info(ctx: CliContext, number: str, message_file: TextIO, as_json: bool) -> None:
    """Ask the customer for information (status: awaiting info; starts the follow-up timer)."""
    _report(_care_action(ctx, number, "request_info", message_file.read()), "information requested",
            as_json)


@case.command("propose-solution")
@click.argument("number")
@message_file
@json_option
@click.pass_obj
def case_propose_solution(ctx: CliContext, number: str, message_file: TextIO, as_json: bool) -> None:
    """Propose a solution (status: solution proposed; starts the follow-up timer)."""
    _report(_care_action(ctx, number, "propose_solution", message_file.read()), "solution proposed",
            as_json)


@case.command("close")
@click.argument("number")
@json_option
@click.pass_obj
def case_close(ctx: CliContext, number: str, as_json: bool) -> None:
    """Close the case and tell the contact (it can be re-opened for 30 days)."""
    _report(_care_action(ctx, number, "close", None), "closed", as_json)


@case.command("reopen")
@click.argument("number")
@json_option
@click.pass_obj
def case_reopen(ctx: CliContext, number: str, as_json: bool) -> None:
    """Re-open a closed case (refused 30 days or more after closing)."""
    _report(_care_action(ctx, number, "reopen", None), "re-opened", as_json)
