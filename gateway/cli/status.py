"""``case-gateway status``: the gateway at a glance; ``--check`` for monitoring and cron."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import click

from gateway.cli.context import CliContext
from gateway.cli.output import emit, json_option


@click.command("status")
@click.option("--check", is_flag=True,
              help="Also log in to each mailbox and greet the relay; exit 1 with one line per problem.")
@json_option
@click.pass_obj
def status(ctx: CliContext, check: bool, as_json: bool) -> None:
    """Mailboxes, outbox, quarantine and schema, as every replica recorded them."""
    from gateway.operations.status import probe, problems, snapshot

    async def work(engine: Any) -> tuple[dict[str, Any], list[str]]:
        snap = await snapshot(engine, ctx.settings, ctx.clock)
        found = [*await probe(ctx.settings), *problems(snap, ctx.settings)] if check else []
        return snap.as_dict(), found

    data, found = ctx.run(work, check_schema=False)
    emit({**data, "problems": found} if check else data, as_json, _status_lines)
    if found:
        sys.exit(1)


def _status_lines(data: dict[str, Any]) -> Iterator[str]:
    """The snapshot; with ``--check``, its ``problems`` (or that there are none)."""
    yield f"status at {data['at']}"
    yield "mailboxes:"
    for box in data["mailboxes"] or [{"name": "(none configured)", "connected": True, "last_poll_at": None}]:
        if box["connected"] is None:
            state = "never polled"
        else:
            state = "connected" if box["connected"] else "NOT CONNECTED"
        line = f"  {box['name']:<16} {state}"
        if box.get("last_poll_at"):
            line += f", last poll {box['last_poll_at']}, {box['waiting']} waiting"
        if box.get("last_error"):
            line += f"; last error at {box['last_error_at']}: {box['last_error']}"
        yield line
    outbox = data["outbox"]
    counts = ", ".join(f"{n} {s}" for s, n in outbox["by_status"].items())
    oldest = outbox["oldest_waiting_seconds"]
    yield f"outbox: {counts}" + (f"; oldest waiting {oldest // 60} min {oldest % 60} s"
                                if oldest is not None else "")
    yield f"quarantine: {data['quarantined']}"
    for item in data["upcoming"]:
        yield f"next: {item['due_at']}  {item['kind']}  {item['subject']}  -> {item['recipient']}"
    schema = data["schema"]
    yield f"schema: {schema['revision']}" + ("" if schema["up_to_date"] else
                                             f" (the program needs {schema['head']})")
    for problem in data.get("problems", []):
        yield f"problem: {problem}"
    if data.get("problems") == []:
        yield "check: ok"
