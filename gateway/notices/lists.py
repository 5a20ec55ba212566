"""Customers' distribution lists: who receives notices, in which zone, of which kinds; and
the suspension of an address that keeps failing permanently.

An address is suspended once its permanent failures (the relay's 5xx, or a bounce matched to
our mail) reach ``notices.suspend_after_failures`` different notices since it was added or
last resumed. Suspension is checked when a notice is about to go to the address: it is then
skipped, stays listed as suspended, and care management is mailed once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import directory
from gateway.domain import NoticeKind, RecipientStatus
from gateway.errors import AlreadyExists, InvalidValue, NotFound
from gateway.models import DistributionList, NoticeDelivery, Organisation, OutboxRecipient
from gateway.outbound.compose import check_address

LIST_KINDS = ("maintenance", "incident", "advisory")
"""What a list can subscribe to; ``maintenance`` covers planned and emergency."""


def list_kind(kind: str) -> str:
    """The subscription a notice kind falls under (``maintenance_emergency`` -> ``maintenance``)."""
    return kind.split("_")[0]


def parse_kinds(text: str | None) -> list[str]:
    if not text:
        return []
    kinds = [k.strip().lower() for k in text.split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(LIST_KINDS))
    if unknown:
        raise InvalidValue(f"unknown notice kind {unknown[0]!r} (use {', '.join(LIST_KINDS)})")
    return sorted(set(kinds))


@dataclass(frozen=True)
class ListView:
    address: str
    organisation: str
    timezone: str
    kinds: list[str]
    failures: int
    suspended_at: datetime | None


async def add(session: AsyncSession, now: datetime, *, address: str, organisation: str,
              timezone: str | None, kinds: str | None) -> DistributionList:
    org = await directory.get_organisation(session, organisation)
    clean = check_address(directory.normalise_email(address))  # every notice must reach it
    zone = directory.validate_timezone(timezone) if timezone else None
    chosen = parse_kinds(kinds)
    if await _find(session, clean, org.id) is not None:
        raise AlreadyExists(f"{clean} is already a distribution list of {org.name}")
    row = DistributionList(organisation_id=org.id, address=clean, timezone=zone, kinds=chosen,
                           created_at=now, failures_since=now, suspended_at=None)
    session.add(row)
    await session.flush()
    return row


async def remove(session: AsyncSession, *, address: str, organisation: str) -> None:
    org = await directory.get_organisation(session, organisation)
    row = await _find(session, directory.normalise_email(address), org.id)
    if row is None:
        raise NotFound(f"{address} is not a distribution list of {org.name}")
    await session.delete(row)
    await session.flush()


async def resume(session: AsyncSession, now: datetime, *, address: str) -> list[DistributionList]:
    """Clear the suspension of ``address`` (in every organisation that lists it); its failures
    are counted afresh from now."""
    clean = directory.normalise_email(address)
    rows = (await session.scalars(select(DistributionList).where(DistributionList.address == clean))).all()
    if not rows:
        raise NotFound(f"{clean} is not a distribution list")
    suspended = [r for r in rows if r.suspended_at is not None]
    if not suspended:
        raise InvalidValue(f"{clean} is not suspended")
    for row in suspended:
        row.suspended_at = None
        row.failures_since = now
    await session.flush()
    return suspended


async def views(session: AsyncSession, organisation: str | None = None) -> list[ListView]:
    stmt = select(DistributionList, Organisation).join(Organisation).order_by(
        Organisation.name, DistributionList.address)
    if organisation is not None:
        org = await directory.get_organisation(session, organisation)
        stmt = stmt.where(DistributionList.organisation_id == org.id)
    pairs = (await session.execute(stmt)).all()
    counts = await failure_counts(session, [dl.organisation_id for dl, _ in pairs])
    return [ListView(dl.address, org.name, dl.timezone or org.timezone, list(dl.kinds),
                     counts.get(dl.id, (0, ""))[0], dl.suspended_at) for dl, org in pairs]


async def failure_counts(
    session: AsyncSession, organisation_ids: Sequence[int]
) -> dict[int, tuple[int, str]]:
    """List id -> (notices that failed permanently since ``failures_since``, a reply seen),
    for the lists of ``organisation_ids`` that have any. Walks the failed recipients only."""
    if not organisation_ids:
        return {}
    failed = (RecipientStatus.FAILED, RecipientStatus.BOUNCED)
    stmt = (
        select(DistributionList.id, func.count(func.distinct(NoticeDelivery.notice_id)),
               func.max(OutboxRecipient.last_code), func.max(OutboxRecipient.last_reply))
        .select_from(OutboxRecipient)
        .join(NoticeDelivery, NoticeDelivery.outbox_id == OutboxRecipient.outbox_id)
        .join(DistributionList, and_(DistributionList.organisation_id == NoticeDelivery.organisation_id,
                                     DistributionList.address == NoticeDelivery.address))
        .where(OutboxRecipient.status.in_(failed),
               DistributionList.organisation_id.in_(sorted(set(organisation_ids))),
               NoticeDelivery.created_at >= DistributionList.failures_since)
        .group_by(DistributionList.id)
    )
    return {lid: (n, " ".join(str(p) for p in (code, reply) if p))
            for lid, n, code, reply in (await session.execute(stmt)).all()}


@dataclass(frozen=True)
class Recipient:
    organisation_id: int
    organisation: str
    address: str
    timezone: str


async def subscribers(
    session: AsyncSession, organisation_ids: Iterable[int], kind: NoticeKind
) -> tuple[list[Recipient], int]:
    """The addresses of the organisations' lists that take ``kind`` and are not suspended,
    and how many that take it are suspended. Columns only: there may be thousands."""
    stmt = (select(Organisation.id, Organisation.name, DistributionList.address,
                   func.coalesce(DistributionList.timezone, Organisation.timezone),
                   DistributionList.kinds, DistributionList.suspended_at)
            .join(Organisation, Organisation.id == DistributionList.organisation_id)
            .where(DistributionList.organisation_id.in_(sorted(set(organisation_ids))))
            .order_by(DistributionList.id))
    wanted = list_kind(kind)
    active: list[Recipient] = []
    suspended = 0
    for org_id, org_name, address, zone, kinds, suspended_at in (await session.execute(stmt)).all():
        if kinds and wanted not in kinds:
            continue
        if suspended_at is not None:
            suspended += 1
            continue
        active.append(Recipient(org_id, org_name, address, zone))
    return active, suspended


async def _find(session: AsyncSession, address: str, organisation_id: int) -> DistributionList | None:
    return await session.scalar(select(DistributionList).where(
        DistributionList.organisation_id == organisation_id, DistributionList.address == address))
