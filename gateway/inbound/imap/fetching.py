"""Fetching a batch of messages whole, or only their headers when they are over the size
limit (they are quarantined without being downloaded)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from gateway.inbound.imap.mailbox import Mailbox

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Fetched:
    uid: int
    raw: bytes
    size: int
    problem: str | None = None
    """Set when the message was not fetched whole (over the size limit): it is quarantined."""
    fetched_at: float = field(default_factory=time.monotonic)
    """When it was fetched (``time.monotonic``): the decision's latency is measured from it."""


async def fetch_batch(client: Mailbox, uids: Sequence[int], max_bytes: int, mailbox: str) -> list[Fetched]:
    """The messages of ``uids`` still there: whole up to ``max_bytes``, the headers of larger
    ones. A message that vanished or failed to fetch is found again next round."""
    sizes = await client.fetch_sizes(uids)
    small = [u for u in uids if u in sizes and sizes[u] <= max_bytes]
    fetched = [Fetched(uid, raw, len(raw)) for uid, raw in await client.fetch(small)]
    for uid in (u for u in uids if u in sizes and sizes[u] > max_bytes):
        header = await client.fetch_header(uid)
        if header is not None:
            fetched.append(Fetched(uid, header, sizes[uid], problem=(
                f"message of {sizes[uid]} bytes exceeds limits.max_message_bytes "
                f"({max_bytes}); headers kept, the message stays in the quarantine folder"
            )))
    missing = set(uids) - {f.uid for f in fetched}
    if missing:
        log.warning("imap.fetch_incomplete", mailbox=mailbox, missing=sorted(missing)[:20])
    return fetched
