"""How the CLI shows things: ``--json`` for scripts; lines and aligned tables for people.

Every command that shows data ends in :func:`emit`, so that JSON is written one way and a table
is drawn one way."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import click

from gateway.models import Case, CaseEvent, Contact, Organisation

T = TypeVar("T")
Rows = Sequence[Mapping[str, Any]]

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
"""Every command that shows data takes ``--json``."""

LABEL_WIDTH = 12
"""The column of labels in a command's ``label  value`` lines."""


def emit(data: T, as_json: bool, human: str | Callable[[T], Iterable[str]]) -> None:
    """Print ``data`` as indented JSON with ``--json`` (a value JSON has no type for, a
    datetime say, as its ``str``), else for people: ``human`` is the line to print, or gives
    the lines from ``data`` (:func:`table` for a table)."""
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
        return
    for line in [human] if isinstance(human, str) else human(data):
        click.echo(line)


def table(*columns: str) -> Callable[[Rows], Iterator[str]]:
    """The lines of an aligned table of these columns, headed by their names; ``(none)``
    for no rows. A cell is cut at 60 characters (``--json`` has the whole value)."""

    def lines(rows: Rows) -> Iterator[str]:
        if not rows:
            yield "(none)"
            return
        cells = [[_cell(row.get(col)) for col in columns] for row in rows]
        widths = [max(len(col), *(len(r[i]) for r in cells)) for i, col in enumerate(columns)]
        yield "  ".join(col.upper().ljust(w) for col, w in zip(columns, widths, strict=True)).rstrip()
        for r in cells:
            yield "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()

    return lines


def field(label: str, value: Any, indent: str = "") -> str:
    """One ``label  value`` line, the labels in a column."""
    return f"{indent}{label:<{LABEL_WIDTH}} {_text(value)}".rstrip()


def fields(data: Mapping[str, Any], keys: Iterable[str], indent: str = "") -> Iterator[str]:
    """A ``label  value`` line for each key of ``data`` (``sub_type`` labelled ``sub type``)."""
    for key in keys:
        yield field(key.replace("_", " "), data[key], indent)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _text(value: Any) -> str:
    """A value for people: ``-`` for none, ``yes`` or ``no`` for a flag."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _cell(value: Any) -> str:
    shown = _text(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def organisation_dict(org: Organisation) -> dict[str, Any]:
    return {
        "name": org.name,
        "timezone": org.timezone,
        "country": org.holiday_country,
        "subdivision": org.holiday_subdivision,
        "agents": org.total_agents,
        "hours": org.business_hours,
        "created_at": iso(org.created_at),
    }


def contact_dict(contact: Contact) -> dict[str, Any]:
    return {
        "email": contact.email,
        "name": contact.name,
        "organisation": contact.organisation.name,
        "designated": contact.designated,
    }


def case_dict(case: Case) -> dict[str, Any]:
    return {
        "number": case.number,
        "organisation": case.organisation.name,
        "contact": case.contact.email,
        "subject": case.subject,
        "type": case.case_type,
        "sub_type": case.sub_type,
        "severity": case.severity,
        "status": case.status,
        "environment": case.environment,
        "escalated": case.escalated,
        "opened_at": iso(case.opened_at),
        "updated_at": iso(case.updated_at),
        "closed_at": iso(case.closed_at),
        "close_reason": case.close_reason,
        "followup_started_at": iso(case.followup_started_at),
        "followups_sent": case.followups_sent,
        "followup_cycle": case.followup_cycle,
        "followup_due_at": iso(case.followup_due_at),
    }


def event_dict(event: CaseEvent) -> dict[str, Any]:
    return {
        "at": iso(event.at),
        "kind": event.kind,
        "actor": event.actor,
        "body": event.body,
        "inbound_message_id": event.inbound_message_id,
        "outbox_id": event.outbox_id,
        "data": event.data,
    }
