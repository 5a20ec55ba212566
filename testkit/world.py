"""A small, realistic world for the integration tests and the benchmarks: settings for the test
servers, an App on a test database with a frozen clock, and an organisation with contacts."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
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


def write_config(path: Path, settings: Settings) -> Path:
    """The settings as a TOML file (secrets included: test use only)."""
    data = settings.model_dump(mode="json", by_alias=True, exclude_none=True)

    def unsecret(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: unsecret(v) for k, v in value.items()}
        if isinstance(value, list):
            return [unsecret(v) for v in value]
        return value

    plain = unsecret(data)
    plain["reference"] = {"secret": settings.reference.secret.get_secret_value(), "old_secrets": []}
    plain["smtp"].pop("password", None)
    for box, real in zip(plain["mailboxes"], settings.mailboxes, strict=True):
        box["password"] = real.password.get_secret_value()
    path.write_text(_toml(plain), encoding="utf-8")
    return path


def _toml(data: dict[str, Any]) -> str:
    lines: list[str] = []
    for section, values in data.items():
        if isinstance(values, list):
            for item in values:
                lines.append(f"[[{section}]]")
                lines += [f"{k} = {json.dumps(v)}" for k, v in item.items() if not isinstance(v, dict | list)]
            continue
        lines.append(f"[{section}]")
        for key, value in values.items():
            if isinstance(value, list) and value and isinstance(value[0], dict):
                inner = ", ".join(
                    "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in d.items()) + " }" for d in value
                )
                lines.append(f"{key} = [{inner}]")
            else:
                lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"
