"""The iCalendar event of a maintenance window (RFC 5545, iTIP methods of RFC 5546).

One UID per notice, so a subscriber's calendar recognises every later mail as the same
event; SEQUENCE is raised on every change and on cancellation, so the calendar replaces the
event (PUBLISH) or drops it (CANCEL) by itself. Times are in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

from icalendar import Calendar, Event

from gateway.models import Notice
from gateway.outbound.bulk import CalendarPart


def uid(notice: Notice, domain: str) -> str:
    return f"{notice.reference.lower()}@{domain}"


def invitation(notice: Notice, *, organizer: str, domain: str, now: datetime,
               cancelled: bool = False) -> CalendarPart:
    if notice.starts_at is None or notice.ends_at is None:
        raise ValueError("a maintenance window needs a start and an end")
    calendar = Calendar()
    calendar.add("prodid", "-//case-gateway//notices//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "CANCEL" if cancelled else "PUBLISH")
    event = Event()
    event.add("uid", uid(notice, domain))
    event.add("sequence", notice.sequence)
    event.add("dtstamp", now.astimezone(UTC))
    event.add("dtstart", notice.starts_at.astimezone(UTC))
    event.add("dtend", notice.ends_at.astimezone(UTC))
    event.add("summary", f"[{notice.reference}] Maintenance: {notice.title}")
    event.add("description", "\n\n".join(t for t in (notice.summary, notice.impact) if t))
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    event.add("transp", "OPAQUE")
    event.add("organizer", f"mailto:{organizer}")
    calendar.add_component(event)
    return CalendarPart(calendar.to_ical(), "CANCEL" if cancelled else "PUBLISH")
