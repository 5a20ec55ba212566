"""Every outbox dedupe key is built here, and only here.

A key names the *cause* of a mail, so that doing the same thing twice (a scheduler tick that
runs again, a retried inbound message, a CLI command repeated after a crash) finds the row that
exists and enqueues nothing new.
"""

from __future__ import annotations

from datetime import datetime


def case_opened(case_number: str) -> str:
    """The acknowledgement of a new case: one per case."""
    return f"case:{case_number}:opened"


def case_event(case_number: str, kind: str, event_id: int) -> str:
    """Mail caused by one timeline event of a case (care reply, request, closure, ...)."""
    return f"case:{case_number}:{kind}:event:{event_id}"


def inbound_answer(inbound_id: int, kind: str) -> str:
    """Our one answer of a given kind to one inbound message."""
    return f"inbound:{inbound_id}:{kind}"


def followup(case_number: str, cycle: int, step: int) -> str:
    """Follow-up ``step`` (1, 2: reminders; 3: the closing mail) of ``cycle`` of a case's timer."""
    return f"followup:{case_number}:{cycle}:{step}"


def notice(reference: str, update: int, organisation_id: int, address: str) -> str:
    """One notice message (the first, or update number ``update``) to one list address."""
    return f"{notice_mail(reference, update)}{organisation_id}:{address.lower()}"


def notice_mail(reference: str, update: int) -> str:
    """What the keys of every message of one notice mail start with."""
    return f"notice:{reference}:{update}:"


def list_suspended(list_id: int, suspended_at: datetime) -> str:
    """Care management told that a distribution list address was suspended."""
    return f"list:{list_id}:suspended:{suspended_at.isoformat()}"


def incident_warning(reference: str, update_due: datetime) -> str:
    """Ops warned that the incident update due at ``update_due`` will carry no news."""
    return f"incident:{reference}:warning:{update_due.isoformat()}"


def auto_replies_paused(hour: datetime) -> str:
    """Care management told that automatic answers are paused: once per clock hour (UTC)."""
    return f"auto-replies-paused:{hour.strftime('%Y-%m-%dT%H')}"
