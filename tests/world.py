"""A small, realistic world for integration tests: settings for the test servers, an App on a
test database with a frozen clock, and an organisation with contacts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from gateway import directory
from gateway.app import App
from gateway.clock import FrozenClock
from gateway.config import Settings
from gateway.db import create_engine
from gateway.models import Case

SECRET = "test-reference-secret-0123456789"
ORG = "Acme Corp"
ANA = "ana@acme.example"
BOB = "bob@acme.example"  # a contact, not designated
STRANGER = "mallory@evil.example"


def settings_for(db_url: str, **sections: Any) -> Settings:
    data: dict[str, Any] = {
        "database": {"url": db_url},
        "reference": {"secret": SECRET},
        "mail": {
            "from_address": "care@vendor.example",
            "reply_to": "care@vendor.example",
            "escalation_address": "care-management@vendor.example",
        },
        "branding": {
            "vendor_name": "Vendor Cloud",
            "care_name": "Vendor Cloud Customer Care",
            "portal_url": "https://support.vendor.example",
        },
        "inbound": {"parse_workers": 0},
    }
    for key, value in sections.items():
        data[key] = value.model_dump() if hasattr(value, "model_dump") else value
    return Settings.model_validate(data)


@asynccontextmanager
async def open_world(settings: Settings, clock: FrozenClock) -> AsyncIterator[App]:
    engine = create_engine(settings.database.url)
    try:
        yield App(settings, engine, clock)
    finally:
        await engine.dispose()


async def add_customer(app: App) -> None:
    async with app.sessions.begin() as session:
        await directory.add_organisation(
            session,
            app.clock,
            name=ORG,
            timezone="Europe/Berlin",
            country="DE",
            subdivision="BY",
            total_agents=120,
        )
        await directory.add_contact(session, app.clock, email=ANA, organisation=ORG, name="Ana Alves")
        await directory.add_contact(session, app.clock, email=BOB, organisation=ORG, designated=False)


async def open_case(app: App, subject: str = "Calls drop after 30 seconds") -> Case:
    async with app.sessions.begin() as session:
        care = await app.care(session)
        return await care.open_case(
            session, organisation=ORG, contact_email=ANA, subject=subject, severity="high"
        )
