"""Notices through the real CLI: three organisations in three zones, their lists, a frozen
clock, the real SMTP fixture, and a scheduler pass at a chosen instant."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage

from gateway.clock import FrozenClock
from testkit.servers.smtp import RecordingSmtpServer
from testkit.world import SECRET
from tests.cli_helpers import Gateway
from tests.plugins.smtp import smtp_settings

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
"""A Monday, four weeks before Europe's clocks go forward (29 March 2026)."""

LISTS = {
    "Acme Corp": ("Europe/Berlin", ["noc@acme.example", "ops@acme.example"]),
    "Globex": ("America/New_York", ["alerts@globex.example"]),
    "Initech": ("Australia/Sydney", ["it@initech.example"]),
}


def notices_gateway(db_url: str, server: RecordingSmtpServer, clock: FrozenClock, **env: str) -> Gateway:
    smtp = smtp_settings(server)
    gw = Gateway(
        db_url, clock,
        GATEWAY_REFERENCE__SECRET=SECRET, GATEWAY_SMTP__HOST=smtp.host,
        GATEWAY_SMTP__PORT=str(smtp.port), GATEWAY_SMTP__TLS="none",
        GATEWAY_MAIL__FROM_ADDRESS="care@vendor.example",
        GATEWAY_MAIL__ESCALATION_ADDRESS="care-management@vendor.example", **env,
    )
    for org, (zone, addresses) in LISTS.items():
        country = {"Europe/Berlin": "DE", "America/New_York": "US", "Australia/Sydney": "AU"}[zone]
        gw.ok("org", "add", org, "--tz", zone, "--country", country, "--agents", "200")
        for address in addresses:
            gw.ok("dl", "add", address, "--org", org)
    return gw


def scheduler_pass(gw: Gateway, at: datetime) -> str:
    """``run --once --now AT``: the scheduler's pass and the outbox's send, as of ``at``."""
    assert isinstance(gw.clock, FrozenClock)
    gw.clock.set(at)
    return gw.ok("run", "--once", "--now", at.isoformat()).out


def parsed(server: RecordingSmtpServer) -> list[EmailMessage]:
    return [email.message_from_bytes(m.data, policy=policy.default) for m in server.messages]  # type: ignore[misc]


def to_of(message: EmailMessage) -> str:
    return str(message["To"]).lower()


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def flat_text(message: EmailMessage) -> str:
    """The plain-text part with its line breaks (wrapping) flattened to spaces."""
    return " ".join(text_of(message).split())
