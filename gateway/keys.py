"""The reference-token keys: the configured secret (and old ones still accepted), or, when
none is configured, a random key the gateway generates once and keeps in its database, so
that a first run needs no setup and the key survives restarts."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.clock import Clock
from gateway.config import Settings
from gateway.db import insert_ignoring_conflicts
from gateway.models import InstanceSecret

GENERATED_KEY = "reference_key"


async def reference_keys(session: AsyncSession, settings: Settings, clock: Clock) -> list[bytes]:
    """Current key first, then the older keys still accepted."""
    configured = settings.secrets()
    if settings.reference.secret.get_secret_value():
        settings.require_reference_secret()
        return configured
    dialect = session.get_bind().dialect.name
    stmt = insert_ignoring_conflicts(dialect, InstanceSecret.__table__, ["name"])
    await session.execute(stmt.values(name=GENERATED_KEY, value=secrets.token_urlsafe(32),
                                      created_at=clock.now()))
    value = await session.scalar(select(InstanceSecret.value).where(InstanceSecret.name == GENERATED_KEY))
    assert value is not None
    return [value.encode(), *configured]
