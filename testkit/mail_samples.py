"""Realistic template contexts for every :class:`MailKind`, for any test or benchmark that
renders mail.

``sample_context(kind)`` returns a fresh dict following the contract in
``gateway/outbound/render.py``; callers may mutate it freely.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway.config import BrandingSettings, PhoneNumber
from gateway.outbound.kinds import MailGroup, MailKind

TOKEN = "REF:00012345.y96mjdf66mjqj"
CASE_NUMBER = "00012345"
CASE_SUBJECT = "Agents disconnected from desktop after login"

BRANDING = BrandingSettings(
    vendor_name="Acme Voice Cloud",
    care_name="Acme Voice Cloud Customer Care",
    portal_url="https://care.acme.test/portal",
    phone_numbers_url="https://care.acme.test/contact",
    phone_numbers=[
        PhoneNumber(region="North America", number="+1-555-0100"),
        PhoneNumber(region="Europe, Middle East, Africa", number="+44 20 7946 0000"),
    ],
    signature="Jane Analyst, Customer Care",
)


def case() -> dict[str, Any]:
    return {
        "number": CASE_NUMBER,
        "subject": CASE_SUBJECT,
        "severity": "high",
        "status": "awaiting_info",
        "type": "support",
        "token": TOKEN,
        "url": f"https://care.acme.test/portal/cases/{CASE_NUMBER}",
    }


def contact() -> dict[str, Any]:
    return {"name": "Alice Example", "email": "alice@customer.test"}


def notice(kind: MailKind) -> dict[str, Any]:
    prefix = {"maintenance": "MNT", "incident": "INC", "advisory": "ADV"}[kind.value.split("_")[0]]
    return {
        "reference": f"{prefix}-2026-00042",
        "kind": kind.value,
        "title": "Voice platform upgrade in EU-West",
        "summary": "We will upgrade the media servers of the EU-West region.\n"
        "The upgrade applies security fixes and improves call quality.",
        "impact": "Calls in progress may drop once; agents may need to log in again.",
        "starts_at": datetime(2026, 12, 1, 13, 0, tzinfo=UTC),
        "ends_at": datetime(2026, 12, 1, 15, 30, tzinfo=UTC),
        "status_text": "Engineers identified a faulty load balancer and are failing over.",
        "next_steps": "Have agents log into the Emergency Desktop until further notice.",
        "instructions": "Ask agents to log out and log in again to return to usual operations.",
        "link": "https://status.acme.test/notices/42",
        "severity": "high" if kind is MailKind.ADVISORY_SECURITY else None,
        "update_number": 3 if kind is MailKind.INCIDENT_UPDATE else None,
        "services": "Voice, Chat",
        "state": "identified" if kind.value.startswith("incident") else None,
    }


_CLOSED = {
    "closed_at": datetime(2026, 3, 27, 16, 45, tzinfo=UTC),
    "reopen_deadline": datetime(2026, 4, 26, 16, 45, tzinfo=UTC),
}

_EXTRA: dict[MailKind, dict[str, Any]] = {
    MailKind.CARE_REPLY: {"message": "Hello Alice,\n\nwe are looking at the logs now."},
    MailKind.INFO_REQUESTED: {
        "message": "Please send us the agent IDs and the time of the last disconnection."
    },
    MailKind.SOLUTION_PROPOSED: {
        "message": "Please clear the desktop cache:\n1. Log out.\n2. Clear the cache.\n3. Log in."
    },
    MailKind.CASE_CLOSED: {**_CLOSED, "message": "Closed as resolved after your confirmation."},
    MailKind.CASE_REOPENED: {"message": "Re-opened at your request."},
    MailKind.FOLLOWUP_1: {"requested_action": "Send the agent IDs.", "business_days": 2},
    MailKind.FOLLOWUP_2: {"requested_action": "Send the agent IDs.", "business_days": 5},
    MailKind.FOLLOWUP_3_CLOSED: {
        **_CLOSED,
        "requested_action": "Send the agent IDs.",
        "business_days": 10,
    },
    MailKind.CLOSED_CASE_REPLY: dict(_CLOSED),
    MailKind.NOT_REOPENABLE: dict(_CLOSED),
}


def sample_context(kind: MailKind) -> dict[str, Any]:
    """A complete, realistic context for ``kind``."""
    if kind in (MailKind.NEW_CASE_REFUSED, MailKind.UNAUTHORIZED_SENDER):
        return {"sender": {"email": "bob@unknown.test", "name": "Bob Stranger"}}
    if kind is MailKind.ESCALATION_TO_MANAGEMENT:
        return {
            "case": case(),
            "contact": contact(),
            "message": "Escalation Request\nOur whole contact centre is down since 9:00.",
            "organisation": {"name": "Customer Corp"},
        }
    if kind is MailKind.INCIDENT_OPS_WARNING:
        return {"notice": notice(MailKind.INCIDENT_UPDATE), "minutes": 30,
                "due_at": datetime(2026, 12, 1, 13, 0, tzinfo=UTC)}
    if kind is MailKind.LIST_SUSPENDED:
        return {"list": {"address": "ops-list@customer.test", "failures": 3,
                         "last_failure": "550 5.1.1 no such user"},
                "organisation": {"name": "Customer Corp"}}
    if kind is MailKind.AUTO_REPLIES_PAUSED:
        return {"limit": 200, "paused_at": datetime(2026, 3, 27, 16, 45, tzinfo=UTC)}
    if kind.spec.group is MailGroup.NOTICE:
        return {
            "notice": notice(kind),
            "recipient_tz": "Europe/Berlin",
            "organisation": {"name": "Customer Corp"},
        }
    ctx: dict[str, Any] = {"case": case(), "contact": contact(), "recipient_tz": "Europe/Berlin"}
    ctx.update(_EXTRA.get(kind, {}))
    return ctx
