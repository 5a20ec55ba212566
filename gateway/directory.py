"""Organisations and their contacts. Functions take the session first; the caller commits."""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Sequence
from functools import cache

import holidays
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.addresses import ascii_lower
from gateway.clock import Clock
from gateway.domain import CaseStatus
from gateway.errors import AlreadyExists, InvalidValue, NotFound, PolicyViolation
from gateway.models import Case, Contact, Organisation
from gateway.outbound.compose import check_address
from gateway.schedule.calendar import format_hours, parse_hours

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""What a contact's name must not hold: it goes into the To header of mail to the contact."""
_SPACE = re.compile(r"\s")
"""Whitespace as ``str.isspace`` sees it (``\\s`` of a str pattern is the same test)."""


def normalise_email(address: str) -> str:
    """Senders are compared by ASCII case-folding (Unicode's would fold the Kelvin sign into a
    ``k``); display names never count."""
    address = ascii_lower(address.strip())
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or _SPACE.search(address):
        raise InvalidValue(f"not an email address: {address!r}")
    return address


def validate_timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidValue(f"unknown time zone {name!r} (use an IANA name like Europe/Berlin)") from None
    return name


@cache
def _countries() -> dict[str, list[str]]:
    return {code: list(subdivs) for code, subdivs in holidays.list_supported_countries().items()}


def validate_holidays(country: str, subdivision: str | None) -> tuple[str, str | None]:
    code = country.strip().upper()
    subdivisions = _countries().get(code)
    if subdivisions is None:
        raise InvalidValue(f"unknown holiday country {country!r} (use an ISO 3166 code like DE)")
    if subdivision is not None and subdivision not in subdivisions:
        known = ", ".join(subdivisions[:12]) + (" ..." if len(subdivisions) > 12 else "")
        raise InvalidValue(f"unknown subdivision {subdivision!r} of {code} (known: {known or 'none'})")
    return code, subdivision


async def add_organisation(
    session: AsyncSession,
    clock: Clock,
    *,
    name: str,
    timezone: str,
    country: str,
    subdivision: str | None = None,
    total_agents: int = 0,
    hours: str = "09:00-17:00",
) -> Organisation:
    name = name.strip()
    if not name:
        raise InvalidValue("organisation name must not be empty")
    if total_agents < 0:
        raise InvalidValue("total agents must not be negative")
    country, subdivision = validate_holidays(country, subdivision)
    if await _find_organisation(session, name) is not None:
        raise AlreadyExists(f"organisation {name!r} exists already")
    org = Organisation(
        name=name,
        timezone=validate_timezone(timezone),
        holiday_country=country,
        holiday_subdivision=subdivision,
        total_agents=total_agents,
        business_hours=validate_hours(hours),
        created_at=clock.now(),
    )
    session.add(org)
    await session.flush()
    return org


def validate_hours(text: str) -> str:
    """Business hours as ``HH:MM-HH:MM`` (local), start before end."""
    try:
        return format_hours(parse_hours(text))
    except ValueError as exc:
        raise InvalidValue(str(exc)) from None


async def update_organisation(
    session: AsyncSession,
    name: str,
    *,
    hours: str | None = None,
    timezone: str | None = None,
    country: str | None = None,
    subdivision: str | None = None,
    total_agents: int | None = None,
) -> Organisation:
    """Change an organisation's calendar or size; ``None`` leaves a field as it is. A new
    country drops the old subdivision unless one is given with it."""
    org = await get_organisation(session, name)
    if not any(v is not None for v in (hours, timezone, country, subdivision, total_agents)):
        raise InvalidValue("nothing to change: give --hours, --tz, --country, --subdivision or --agents")
    if total_agents is not None and total_agents < 0:
        raise InvalidValue("total agents must not be negative")
    if country is not None or subdivision is not None:
        org.holiday_country, org.holiday_subdivision = validate_holidays(
            country or org.holiday_country, subdivision if country is None or subdivision else None
        )
    if hours is not None:
        org.business_hours = validate_hours(hours)
    if timezone is not None:
        org.timezone = validate_timezone(timezone)
    if total_agents is not None:
        org.total_agents = total_agents
    await session.flush()
    return org


async def _find_organisation(session: AsyncSession, name: str) -> Organisation | None:
    stmt = select(Organisation).where(func.lower(Organisation.name) == name.strip().lower())
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_organisation(session: AsyncSession, name: str) -> Organisation:
    org = await _find_organisation(session, name)
    if org is None:
        raise NotFound(f"no organisation named {name!r}")
    return org


async def list_organisations(session: AsyncSession) -> Sequence[Organisation]:
    return (await session.execute(select(Organisation).order_by(Organisation.name))).scalars().all()


def check_name(name: str | None) -> None:
    """A contact's name goes into the To header of mail to the contact: one line."""
    if name is not None and _CONTROL.search(name):
        raise InvalidValue(f"a contact's name must be one line without control characters: {name!r}")


async def add_contact(
    session: AsyncSession,
    clock: Clock,
    *,
    email: str,
    organisation: str,
    name: str | None = None,
    designated: bool = True,
) -> Contact:
    org = await get_organisation(session, organisation)
    address = check_address(normalise_email(email))  # the rule mail to it must pass: one plain address
    check_name(name)
    existing = (await session.execute(
        select(Contact).where(Contact.organisation_id == org.id, Contact.email == address)
    )).scalar_one_or_none()
    if existing is not None and existing.removed_at is None:
        raise AlreadyExists(f"contact {address} exists already in {org.name}")
    if existing is not None:  # added anew after a removal: the same row, so its history stays
        existing.removed_at = None
        existing.name = (name or "").strip() or None
        existing.designated = designated
        await session.flush()
        return existing
    contact = Contact(
        organisation_id=org.id,
        email=address,
        name=(name or "").strip() or None,
        designated=designated,
        created_at=clock.now(),
    )
    contact.organisation = org
    session.add(contact)
    await session.flush()
    return contact


async def list_contacts(session: AsyncSession, organisation: str | None = None) -> Sequence[Contact]:
    stmt = (select(Contact).join(Organisation).where(Contact.removed_at.is_(None))
            .order_by(Organisation.name, Contact.email))
    if organisation is not None:
        org = await get_organisation(session, organisation)
        stmt = stmt.where(Contact.organisation_id == org.id)
    return (await session.execute(stmt)).scalars().all()


async def get_contact(session: AsyncSession, organisation_id: int, email: str) -> Contact | None:
    stmt = select(Contact).where(
        Contact.organisation_id == organisation_id, Contact.email == normalise_email(email),
        Contact.removed_at.is_(None),
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def find_contact(session: AsyncSession, email: str, organisation: str | None = None) -> Contact:
    """The one current contact with this address (``organisation`` names it where the address
    is a contact of several)."""
    address = normalise_email(email)
    stmt = select(Contact).join(Organisation).where(Contact.email == address,
                                                    Contact.removed_at.is_(None))
    if organisation is not None:
        stmt = stmt.where(Contact.organisation_id == (await get_organisation(session, organisation)).id)
    found = (await session.execute(stmt)).scalars().all()
    if not found:
        where = f" in {organisation}" if organisation is not None else ""
        raise NotFound(f"no contact {address}{where}")
    if len(found) > 1:
        names = ", ".join(sorted(c.organisation.name for c in found))
        raise InvalidValue(f"{address} is a contact of several organisations ({names}); name one with --org")
    return found[0]


async def update_contact(
    session: AsyncSession,
    *,
    email: str,
    organisation: str | None = None,
    name: str | None = None,
    designated: bool | None = None,
) -> Contact:
    """Change a contact's name or designation; ``None`` leaves a field as it is."""
    contact = await find_contact(session, email, organisation)
    check_name(name)
    if name is not None:
        contact.name = name.strip() or None
    if designated is not None:
        contact.designated = designated
    await session.flush()
    return contact


async def remove_contact(
    session: AsyncSession, clock: Clock, *, email: str, organisation: str | None = None,
    force: bool = False,
) -> tuple[Contact, int]:
    """Remove a contact: it no longer lists and can no longer update any case, while the cases
    and their timelines keep it. Refused while it has open cases unless ``force``; returns the
    contact and how many open cases it had."""
    contact = await find_contact(session, email, organisation)
    open_cases = (await session.execute(
        select(func.count()).select_from(Case)
        .where(Case.contact_id == contact.id, Case.status != CaseStatus.CLOSED)
    )).scalar_one()
    if open_cases and not force:
        raise PolicyViolation(
            f"{contact.email} has {open_cases} open case(s) in {contact.organisation.name}; "
            "close them first or remove with --force"
        )
    contact.removed_at = clock.now()
    contact.designated = False
    await session.flush()
    return contact, open_cases
