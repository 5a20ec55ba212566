"""Mail about a case: the template context and the enqueue, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.cases import REOPEN_WINDOW
from gateway.config import Settings
from gateway.models import Case, Contact, Outbox
from gateway.outbound.kinds import MailKind
from gateway.outbound.outbox import Mail, Mailer
from gateway.threading.token import make_token


def case_url(settings: Settings, number: str) -> str:
    return f"{settings.branding.portal_url.rstrip('/')}/cases/{number}"


def case_context(settings: Settings, key: bytes, case: Case) -> dict[str, Any]:
    assert case.number is not None
    return {
        "number": case.number,
        "subject": case.subject,
        "severity": case.severity,
        "status": case.status,
        "type": case.case_type,
        "token": make_token(case.number, key),
        "url": case_url(settings, case.number),
    }


def contact_context(contact: Contact) -> dict[str, Any]:
    return {"name": contact.name or "", "email": contact.email}


def closed_context(case: Case) -> dict[str, datetime]:
    assert case.closed_at is not None
    return {"closed_at": case.closed_at, "reopen_deadline": case.closed_at + REOPEN_WINDOW}


async def send_case_mail(
    session: AsyncSession,
    mailer: Mailer,
    case: Case,
    kind: MailKind,
    *,
    dedupe_key: str,
    extra: Mapping[str, Any] | None = None,
    to: Contact | None = None,
) -> Outbox:
    """Enqueue ``kind`` about ``case`` to its contact (or ``to``); ``dedupe_key`` names the cause."""
    assert case.number is not None
    recipient = to or case.contact
    context = {
        "case": case_context(mailer.settings, mailer.keys[0], case),
        "contact": contact_context(recipient),
        "recipient_tz": case.organisation.timezone,
        **(extra or {}),
    }
    return await mailer.enqueue(session, Mail(
        kind=kind,
        to=[(recipient.name or "", recipient.email)],
        context=context,
        dedupe_key=dedupe_key,
        case_id=case.id,
    ))
