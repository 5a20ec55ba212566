"""The incident-alert scenario of ``bench/outbound.py`` (``--scenario incident``).

Setup (not timed): a migrated database, one organisation with ``--count`` distribution-list
addresses in ``--zones`` time zones.

Timed, alternately, ``--rounds`` times each:

* **gateway**: from ``incident open`` (the alert fanned out through the outbox in the
  command's transaction, committed) to the last message accepted by the sink
  (``Sender.run_until_empty`` over ``--connections`` pooled connections);
* **baseline**: the exact bytes and envelopes the gateway's last run queued, sent with bare
  ``aiosmtplib.SMTP.sendmail`` over as many reused connections.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import insert, select

from gateway import directory
from gateway.app import App
from gateway.clock import SystemClock
from gateway.models import DistributionList, Outbox, OutboxRecipient
from gateway.notices.incidents import Incidents

ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Tokyo", "UTC"]


async def populate_lists(app: App, count: int, zones: int) -> None:
    now = SystemClock().now()
    async with app.sessions.begin() as session:
        org = await directory.add_organisation(session, app.clock, name="Bench Corp",
                                               timezone="Europe/Berlin", country="DE", total_agents=5000)
        rows = [{"organisation_id": org.id, "address": f"noc{i}@subscriber{i % 97}.test",
                 "timezone": ZONES[i % zones], "kinds": [], "created_at": now,
                 "failures_since": now, "suspended_at": None} for i in range(count)]
        for start in range(0, count, 2000):
            await session.execute(insert(DistributionList), rows[start:start + 2000])


async def open_incident(app: App, round_number: int) -> str:
    async with app.sessions.begin() as session:
        notice = await Incidents(app.settings, app.renderer).open(
            session, app.clock.now(), orgs="Bench Corp", everyone=False,
            summary=f"Calls drop in EU-West (bench round {round_number})",
            impact="Agents may be disconnected and unable to log back in.", services="Voice",
            recommendation="Have agents log into the Emergency Desktop.")
        return notice.reference


async def queued_envelopes(app: App, reference: str, bench: Any) -> list[Any]:
    async with app.engine.connect() as conn:
        rows = (await conn.execute(
            select(Outbox.id, Outbox.envelope_from, Outbox.data, OutboxRecipient.address)
            .join(OutboxRecipient, OutboxRecipient.outbox_id == Outbox.id)
            .where(Outbox.subject.like(f"[{reference}]%")).order_by(Outbox.id))).all()
    return [bench.Envelope(sender, [address], bytes(data)) for _, sender, data, address in rows]


async def measure(app: App, sink: Any, args: Any, kind: str, bench: Any) -> list[Any]:
    """``bench`` is the ``bench/outbound.py`` module (its sink, timed runs and rows)."""
    BenchFailed, baseline, gateway = bench.BenchFailed, bench.baseline, bench.gateway
    row = bench.Row(kind, args.connections[0], args.batch_size[0])
    n = args.count
    for round_number in range(args.rounds):
        before = sink.count()
        start = time.perf_counter()
        reference = await open_incident(app, round_number)
        enqueued = time.perf_counter() - start
        await gateway(app.engine, sink.port, row.connections, row.batch)
        seconds = time.perf_counter() - start
        if (got := sink.count() - before) != n:
            raise BenchFailed(f"{kind} gateway: the sink took {got} of {n} messages")
        envelopes = await queued_envelopes(app, reference, bench)
        before = sink.count()
        base = await baseline(sink.port, envelopes, row.connections)
        if (got := sink.count() - before) != n:
            raise BenchFailed(f"{kind} baseline: the sink took {got} of {n} messages")
        row.gate, row.base = max(row.gate, n / seconds), max(row.base, n / base)
        row.db_share = max(row.db_share, enqueued / seconds)
        print(f"  {kind:<10} incident {reference}: gateway {n / seconds:8,.0f} msg/s ({seconds:5.2f} s, "
              f"open + fan-out {enqueued:4.2f} s); baseline {n / base:8,.0f} msg/s ({base:5.2f} s)",
              flush=True)
    return [row]


