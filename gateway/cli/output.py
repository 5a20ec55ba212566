"""How the CLI shows things: aligned tables for people, ``--json`` for scripts."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import click

from gateway.models import Case, CaseEvent, Contact, Organisation

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
"""Every list and show command takes ``--json``."""


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def echo_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    if not rows:
        click.echo("(none)")
        return
    cells = [[_cell(row.get(col)) for col in columns] for row in rows]
    widths = [max(len(col), *(len(r[i]) for r in cells)) for i, col in enumerate(columns)]
    click.echo("  ".join(col.upper().ljust(w) for col, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
