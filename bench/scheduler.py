"""The scheduler's cost: an idle pass at 1,000 and 100,000 running timers, and 10,000 steps due
at once against enqueuing the same mails through the outbox directly.

Setup (not timed): a migrated database (SQLite in a temp folder, or a fresh PostgreSQL database
dropped at the end), one organisation (Europe/Berlin, DE-BY) with a designated contact, and cases
inserted in bulk with a running follow-up timer (care's request on the timeline, reminder 1 due
at a spread of future instants); PostgreSQL gets ``ANALYZE`` after each load.

(a) **Idle pass**: ``Scheduler.run_pass`` (every source, nothing due) plus ``next_due``, the
best and the median of ``--passes`` runs, at 1,000 timers, then at 100,000. The ratio must stay under 2: due
work is found through the index on ``cases.followup_due_at``, not by reading every case.

(b) **10,000 due at once**: the same cases' reminder 1 made due, then one pass (claim, step,
timeline, render, compose, outbox) against the **baseline**: the same 10,000 follow-up mails
(same kind, context and case) enqueued through ``Mailer.enqueue_new`` and
``insert_queued_in_bulk``, 500 a transaction, nothing else. Alternated ``--rounds`` times, the
state put back in between; the best of each is reported. The ratio (pass rate / baseline
rate) must be at least 0.5. Which of the two runs first alternates from round to round.

Run: ``.venv/bin/python bench/scheduler.py [--db sqlite|postgresql|both]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway import directory, migrate
from gateway.app import App
from gateway.cases.mail import case_context, contact_context
from gateway.clock import FrozenClock
from gateway.db import create_engine
from gateway.domain import CaseStatus, EventKind
from gateway.models import Case, CaseEvent, Contact, Outbox, OutboxRecipient
from gateway.outbound import dedupe
from gateway.outbound.kinds import MailKind
from gateway.outbound.outbox import Mail, insert_queued_in_bulk
from gateway.schedule.followups import FollowupWork
from gateway.schedule.mailing import mailer_at
from gateway.schedule.scheduler import Scheduler
from testkit.postgres import create_scratch, drop_scratch
from testkit.world import settings_for

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # Monday 10:00 in Berlin
ASKED_AT = datetime(2026, 10, 29, 9, 0, tzinfo=UTC)  # the Thursday before: reminder 1 is due at NOW
CHUNK = 5000
ASKED = "Please send the SIP logs of the dropped calls, and the agent desktop version."


async def add_timers(app: App, first: int, count: int) -> None:
    """Cases ``first`` .. ``first + count - 1`` with a running timer, due in 1 to 20 days."""
    async with app.sessions.begin() as session:
        org_id, contact_id = (await session.execute(select(Contact.organisation_id, Contact.id))).one()
    for start in range(first, first + count, CHUNK):
        ids = range(start, min(start + CHUNK, first + count))
        cases = [{
            "id": i, "number": f"{i:08d}", "organisation_id": org_id, "contact_id": contact_id,
            "case_type": "support", "sub_type": "problem", "severity": "medium",
            "status": CaseStatus.AWAITING_INFO, "environment": "production", "subject": f"problem {i}",
            "opened_at": NOW - timedelta(days=1), "updated_at": NOW, "closed_at": None,
            "close_reason": None, "escalated": False, "escalated_at": None,
            "followup_started_at": NOW, "followups_sent": 0, "followup_cycle": 1,
            "followup_due_at": NOW + timedelta(days=1, seconds=i % (19 * 86400)),
        } for i in ids]
        events = [{"case_id": i, "at": NOW, "kind": EventKind.INFO_REQUESTED, "actor": "care",
                   "body": ASKED, "inbound_message_id": None, "outbox_id": None, "data": None}
                  for i in ids]
        async with app.sessions.begin() as session:
            await session.execute(insert(Case), cases)
            await session.execute(insert(CaseEvent), events)
    await analyze(app.engine)


async def analyze(engine: AsyncEngine) -> None:
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE cases, case_events, outbox, outbox_recipients"))


async def idle_pass(scheduler: Scheduler, passes: int) -> tuple[float, float]:
    """The fastest and the median of ``passes`` idle passes."""
    times = []
    for _ in range(passes):
        start = time.perf_counter()
        assert await scheduler.run_pass(NOW) == 0
        await scheduler.next_due()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


async def make_due(app: App, count: int) -> None:
    """Reminder 1 of the first ``count`` cases due now; nothing of it sent yet."""
    async with app.sessions.begin() as session:
        await session.execute(delete(OutboxRecipient))
        await session.execute(delete(Outbox))
        await session.execute(delete(CaseEvent).where(CaseEvent.kind != EventKind.INFO_REQUESTED))
        await session.execute(update(Case).values(followups_sent=0, followup_started_at=NOW,
                                                  followup_due_at=NOW + timedelta(days=3)))
        await session.execute(update(Case).where(Case.id <= count).values(
            followup_started_at=ASKED_AT, followup_due_at=NOW))
    await analyze(app.engine)


async def baseline(app: App, count: int) -> float:
    work = FollowupWork(app.settings)
    start = time.perf_counter()
    for first in range(1, count + 1, 500):
        async with app.sessions.begin() as session:
            mailer = await mailer_at(session, app.settings, work.renderer, NOW)
            batch = select(Case).where(Case.id >= first, Case.id < first + 500)
            cases = (await session.scalars(batch)).unique()
            for case in cases:
                context = {"case": case_context(app.settings, mailer.keys[0], case),
                           "contact": contact_context(case.contact), "recipient_tz": "Europe/Berlin",
                           "requested_action": ASKED, "business_days": 2}
                await mailer.enqueue_new(session, Mail(
                    kind=MailKind.FOLLOWUP_1, to=[(case.contact.name or "", case.contact.email)],
                    context=context, dedupe_key=dedupe.followup(case.number or "", 1, 1), case_id=case.id))
            await insert_queued_in_bulk(session)
    elapsed = time.perf_counter() - start
    if await followup_mails(app) != count:
        raise RuntimeError("the baseline did not enqueue every mail")
    return elapsed


async def due_pass(app: App, count: int) -> float:
    scheduler = Scheduler(app.sessions, app.clock, [FollowupWork(app.settings)], batch=500)
    start = time.perf_counter()
    handled = await scheduler.run_pass(NOW)
    elapsed = time.perf_counter() - start
    if handled != count or await followup_mails(app) != count:
        raise RuntimeError(f"the pass handled {handled}, not {count}, or did not enqueue their mail")
    return elapsed


async def followup_mails(app: App) -> int:
    async with app.sessions() as session:
        return int(await session.scalar(
            select(func.count()).select_from(Outbox).where(Outbox.kind == MailKind.FOLLOWUP_1)) or 0)


async def run_db(kind: str, args: argparse.Namespace, folder: Path) -> None:
    name = None
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{folder / 'bench.db'}"
    else:
        url, name = await create_scratch(args.pg_admin)
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
        app = App(settings_for(url), engine, FrozenClock(NOW))
        async with app.sessions.begin() as session:
            await directory.add_organisation(session, app.clock, name="Acme Corp", timezone="Europe/Berlin",
                                             country="DE", subdivision="BY")
            await directory.add_contact(session, app.clock, email="ana@acme.example",
                                        organisation="Acme Corp", name="Ana Alves")
        scheduler = Scheduler(app.sessions, app.clock, [FollowupWork(app.settings)])
        await add_timers(app, 1, args.small)
        small = await idle_pass(scheduler, args.passes)
        await add_timers(app, args.small + 1, args.large - args.small)
        large = await idle_pass(scheduler, args.passes)
        print(f"{kind}: (a) idle pass, best (median): {small[0] * 1000:.2f} ({small[1] * 1000:.2f}) ms at "
              f"{args.small:,} timers, {large[0] * 1000:.2f} ({large[1] * 1000:.2f}) ms at {args.large:,}: "
              f"ratio {large[0] / small[0]:.2f} ({large[1] / small[1]:.2f}) (must be < 2)", flush=True)
        best_pass, best_base = float("inf"), float("inf")
        for round_number in range(args.rounds):  # which goes first alternates
            for first in ((False, True) if round_number % 2 == 0 else (True, False)):
                await make_due(app, args.due)
                if first:
                    best_pass = min(best_pass, await due_pass(app, args.due))
                else:
                    best_base = min(best_base, await baseline(app, args.due))
        print(f"{kind}: (b) {args.due:,} due at once: pass {args.due / best_pass:,.0f} steps/s "
              f"({best_pass:.1f} s), outbox directly {args.due / best_base:,.0f} mails/s "
              f"({best_base:.1f} s): "
              f"ratio {best_base / best_pass:.2f} (must be >= 0.5)", flush=True)
    finally:
        await engine.dispose()
        if name is not None:
            await drop_scratch(args.pg_admin, name)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    p.add_argument("--small", type=int, default=1_000)
    p.add_argument("--large", type=int, default=100_000)
    p.add_argument("--due", type=int, default=10_000)
    p.add_argument("--passes", type=int, default=50)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--pg-admin", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = p.parse_args(argv)
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    with tempfile.TemporaryDirectory() as folder:
        for kind in kinds:
            asyncio.run(run_db(kind, args, Path(folder)))


if __name__ == "__main__":
    main()
