"""Outbound throughput: the outbox sender against bare aiosmtplib, to one local SMTP sink.

Setup (not timed): a migrated database (SQLite in a temp folder, or a fresh PostgreSQL database
that is dropped at the end) and ``--count`` care replies of about ``--size`` bytes enqueued
through the real :meth:`Mailer.enqueue`, 500 a transaction. The exact bytes and envelope of
every row are read back for the baseline.

Timed, alternately, ``--rounds`` times each:

* **baseline**: the same messages as pre-built bytes, ``aiosmtplib.SMTP.sendmail`` over
  ``--connections`` reused connections (one worker per connection, pulling from one list);
* **gateway**: ``Sender.run_until_empty()`` over ``SmtpTransport`` with ``pool_size`` and
  ``concurrency`` equal to ``--connections``: claiming, sending and recording included.

The best run of each is reported (noise only ever slows a run down). Between gateway runs the
rows are put back to ``pending``; PostgreSQL then gets ``VACUUM ANALYZE`` (also after the
initial load) so every run starts from the same table state.

The sink is a lean SMTP responder in its own process (a 250 to everything, a count of DATA
terminators), so it is neither the bottleneck nor in the measured event loop; its CPU share
during each run is printed to show it. ``--connections`` and ``--batch-size`` take comma lists
for a sweep. Run: ``.venv/bin/python bench/outbound.py [--db sqlite|postgresql|both]``.

``--scenario incident``: one incident alert to ``--count`` distribution-list addresses, from
``incident open`` to the last message accepted, against bare aiosmtplib sending the same bytes
(see ``bench/outbound_notices.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import multiprocessing
import pstats
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiosmtplib
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway import migrate
from gateway.app import App
from gateway.clock import SystemClock
from gateway.config import OutboxSettings, SmtpSettings
from gateway.db import create_engine
from gateway.domain import OutboxStatus, RecipientStatus
from gateway.models import Outbox, OutboxRecipient
from gateway.outbound.kinds import MailKind
from gateway.outbound.outbox import Mail
from gateway.outbound.sender import Sender
from gateway.outbound.transport import SmtpTransport
from testkit.mail_samples import sample_context
from testkit.postgres import create_scratch, drop_scratch
from testkit.world import settings_for

HOST = "127.0.0.1"
CHUNK = 500
PARAGRAPH = (
    "Thank you for the agent desktop logs from this morning. We traced the disconnections to\n"
    "the media gateway in your region, which dropped idle websocket sessions after 30 seconds.\n"
    "Our engineers raised the keepalive interval and are watching the error rate closely.\n\n"
)


class BenchFailed(Exception):
    """A run did not deliver exactly what it should have."""


# --- the sink (its own process) ------------------------------------------------------------


class _SinkProtocol(asyncio.Protocol):
    """Enough SMTP for aiosmtplib: EHLO with SIZE, a 250 to MAIL/RCPT/RSET/NOOP, DATA counted."""

    def __init__(self, count: Any, cpu: Any) -> None:
        self.count, self.cpu = count, cpu
        self.buf = bytearray()
        self.in_data = False
        self.scan_from = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(b"220 sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buf += data
        while self.buf:
            if self.in_data:
                end = self.buf.find(b"\r\n.\r\n", self.scan_from)
                if end < 0:
                    self.scan_from = max(0, len(self.buf) - 4)
                    return
                del self.buf[: end + 5]
                self.in_data, self.scan_from = False, 0
                self.count.value += 1
                self.cpu.value = time.process_time()
                self.transport.write(b"250 2.0.0 OK\r\n")
                continue
            end = self.buf.find(b"\r\n")
            if end < 0:
                return
            verb = bytes(self.buf[:4]).upper()
            del self.buf[: end + 2]
            if verb == b"EHLO":
                self.transport.write(b"250-sink\r\n250-SIZE 52428800\r\n250 8BITMIME\r\n")
            elif verb == b"DATA":
                self.transport.write(b"354 go ahead\r\n")
                self.buf[:0] = b"\r\n"  # so an empty body's terminator is found like any other
                self.in_data = True
            elif verb == b"QUIT":
                self.transport.write(b"221 bye\r\n")
                self.transport.close()
                return
            else:
                self.transport.write(b"250 OK\r\n")


async def _serve(count: Any, cpu: Any, pipe: Connection) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _SinkProtocol(count, cpu), HOST, 0)
    cpu.value = time.process_time()
    pipe.send(server.sockets[0].getsockname()[1])
    await server.serve_forever()


def _sink_main(count: Any, cpu: Any, pipe: Connection) -> None:
    asyncio.run(_serve(count, cpu, pipe))


class Sink:
    """The sink process: its port, how many messages it took, its CPU seconds so far."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._count: Synchronized[int] = ctx.Value("q", 0)
        self._cpu: Synchronized[float] = ctx.Value("d", 0.0)
        ours, theirs = ctx.Pipe()
        self.process = ctx.Process(target=_sink_main, args=(self._count, self._cpu, theirs), daemon=True)
        self.process.start()
        if not ours.poll(30):
            raise BenchFailed("the SMTP sink did not start")
        self.port: int = ours.recv()

    def count(self) -> int:
        return self._count.value

    def cpu(self) -> float:
        return self._cpu.value

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(5)


# --- setup ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    sender: str
    recipients: list[str]
    data: bytes


def _text(chars: int) -> str:
    return (PARAGRAPH * (chars // len(PARAGRAPH) + 1))[: max(chars, 1)].rstrip() + "\n\nJane"


def _mail(i: int, message: str) -> Mail:
    ctx = sample_context(MailKind.CARE_REPLY)
    ctx["message"] = message
    ctx["contact"] = {"name": f"Alice Example {i}", "email": f"alice{i}@customer.test"}
    ctx["case"]["number"] = f"{10_000_000 + i:08d}"
    return Mail(kind=MailKind.CARE_REPLY, to=[(f"Alice Example {i}", f"alice{i}@customer.test")],
                context=ctx, dedupe_key=f"bench:{i}")


async def _probe_size(app: App, chars: int) -> int:
    """The composed size of a mail with a message of ``chars``, through the real enqueue."""
    mailer = await app.mailer()
    async with app.sessions() as session:
        row = await mailer.enqueue(session, _mail(-1, _text(chars)))
        await session.rollback()
    return len(row.data)


async def populate(app: App, count: int, size: int) -> list[Envelope]:
    small, large = await _probe_size(app, 500), await _probe_size(app, 2500)
    chars = max(1, round(500 + (size - small) * 2000 / (large - small)))
    message = _text(chars)
    mailer = await app.mailer()
    for start in range(0, count, CHUNK):
        async with app.sessions.begin() as session:
            for i in range(start, min(count, start + CHUNK)):
                await mailer.enqueue(session, _mail(i, message))
    async with app.engine.connect() as conn:
        rows = (await conn.execute(select(Outbox.id, Outbox.envelope_from, Outbox.data)
                                   .order_by(Outbox.id))).all()
        rcpts: dict[int, list[str]] = {}
        for oid, address in await conn.execute(
            select(OutboxRecipient.outbox_id, OutboxRecipient.address).order_by(OutboxRecipient.id)
        ):
            rcpts.setdefault(oid, []).append(address)
    return [Envelope(sender, rcpts[oid], bytes(data)) for oid, sender, data in rows]


async def tidy(engine: AsyncEngine) -> None:
    """Same table state before every run: VACUUM ANALYZE on PostgreSQL, a checkpoint on SQLite."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        if engine.dialect.name == "postgresql":
            await conn.exec_driver_sql("VACUUM ANALYZE")
        else:
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


async def reset(engine: AsyncEngine) -> None:
    """Every row and recipient back to pending and due now, as after the enqueue."""
    async with engine.begin() as conn:
        await conn.execute(update(OutboxRecipient).values(
            status=RecipientStatus.PENDING, attempts=0, last_code=None, last_reply=None, sent_at=None))
        await conn.execute(update(Outbox).values(
            status=OutboxStatus.PENDING, attempts=0, next_attempt_at=SystemClock().now(),
            lease_until=None, claimed_by=None, last_error=None, finished_at=None))
    await tidy(engine)


# --- the two timed runs --------------------------------------------------------------------


async def baseline(port: int, envelopes: list[Envelope], connections: int) -> float:
    """Seconds to send everything with bare aiosmtplib (connecting included, QUIT not)."""
    work = iter(envelopes)
    start = time.perf_counter()
    clients = [aiosmtplib.SMTP(hostname=HOST, port=port, local_hostname="localhost")
               for _ in range(connections)]
    await asyncio.gather(*(c.connect() for c in clients))

    async def worker(smtp: aiosmtplib.SMTP) -> None:
        for env in work:
            await smtp.sendmail(env.sender, env.recipients, env.data)

    await asyncio.gather(*(worker(c) for c in clients))
    elapsed = time.perf_counter() - start
    await asyncio.gather(*(c.quit() for c in clients))
    return elapsed


def _time_phases(sender: Sender, phases: dict[str, float]) -> None:
    """Add each claim's and each record's seconds to ``phases`` (instance attributes shadow the
    methods, so the sender itself is untouched)."""
    claim, record = sender.claim, sender._record

    async def timed_claim(limit: int) -> Any:
        start = time.perf_counter()
        try:
            return await claim(limit)
        finally:
            phases["claim"] = phases.get("claim", 0.0) + time.perf_counter() - start

    async def timed_record(results: Any) -> Any:
        start = time.perf_counter()
        try:
            return await record(results)
        finally:
            phases["record"] = phases.get("record", 0.0) + time.perf_counter() - start

    sender.claim = timed_claim  # type: ignore[method-assign]
    sender._record = timed_record  # type: ignore[method-assign]


async def gateway(engine: AsyncEngine, port: int, connections: int, batch: int,
                  profile: cProfile.Profile | None = None,
                  phases: dict[str, float] | None = None) -> float:
    """Seconds for ``Sender.run_until_empty`` (closing the pool afterwards not included).
    ``phases``, when given, collects the seconds spent claiming and recording."""
    transport = SmtpTransport(SmtpSettings(host=HOST, port=port, tls="none", pool_size=connections))
    sender = Sender(engine, transport, OutboxSettings(batch_size=batch), SystemClock(),
                    concurrency=connections)
    if phases is not None:
        _time_phases(sender, phases)
    start = time.perf_counter()
    if profile is not None:
        profile.enable()
    try:
        await sender.run_until_empty()
    finally:
        if profile is not None:
            profile.disable()
    elapsed = time.perf_counter() - start
    await transport.close()
    return elapsed


async def count_sent(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        sent = await conn.scalar(select(func.count()).where(Outbox.status == OutboxStatus.SENT))
    return int(sent or 0)


@dataclass
class Row:
    db: str
    connections: int
    batch: int
    base: float = 0.0
    gate: float = 0.0
    sink_cpu: float = 0.0
    """The sink's busiest share of one CPU during a gateway or baseline run."""
    db_share: float = 0.0
    """Share of the best gateway run spent claiming and recording, with no mail moving."""

    @property
    def ratio(self) -> float:
        return self.gate / self.base if self.base else 0.0


async def measure(app: App, sink: Sink, envelopes: list[Envelope], row: Row, rounds: int) -> None:
    n = len(envelopes)
    for _ in range(rounds):
        for what in ("baseline", "gateway"):
            before, cpu, phases = sink.count(), sink.cpu(), {"claim": 0.0, "record": 0.0}
            if what == "baseline":
                seconds = await baseline(sink.port, envelopes, row.connections)
            else:
                seconds = await gateway(app.engine, sink.port, row.connections, row.batch,
                                        phases=phases)
                if (sent := await count_sent(app.engine)) != n:
                    raise BenchFailed(f"{row.db}: {sent} of {n} rows sent")
                await reset(app.engine)
            if (got := sink.count() - before) != n:
                raise BenchFailed(f"{row.db} {what}: the sink took {got} of {n} messages")
            rate, share = n / seconds, (sink.cpu() - cpu) / seconds
            row.sink_cpu = max(row.sink_cpu, share)
            db_share = (phases["claim"] + phases["record"]) / seconds
            if what == "baseline":
                row.base = max(row.base, rate)
            elif rate > row.gate:
                row.gate, row.db_share = rate, db_share
            detail = "" if what == "baseline" else (
                f", claim {phases['claim']:4.2f} s + record {phases['record']:4.2f} s = {db_share:3.0%}")
            print(f"  {row.db:<10} conns={row.connections} batch={row.batch:<4} {what:<8} "
                  f"{rate:8,.0f} msg/s  ({seconds:5.2f} s, sink {share:4.0%} CPU{detail})", flush=True)


async def profile_run(app: App, sink: Sink, connections: int, batch: int, top: int) -> None:
    prof = cProfile.Profile()
    seconds = await gateway(app.engine, sink.port, connections, batch, prof)
    await reset(app.engine)
    print(f"\nprofile: {app.engine.dialect.name} conns={connections} batch={batch}: {seconds:.2f} s "
          f"(under cProfile)")
    stats = pstats.Stats(prof, stream=sys.stdout).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


# --- driving -------------------------------------------------------------------------------


async def run_db(kind: str, args: argparse.Namespace, sink: Sink, folder: Path) -> list[Row]:
    admin_dsn = args.pg_admin
    name = None
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{folder / 'bench.db'}"
    else:
        url, name = await create_scratch(admin_dsn)
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
        app = App(settings_for(url), engine, SystemClock())
        if args.scenario == "incident":
            from bench import outbound_notices

            await outbound_notices.populate_lists(app, args.count, args.zones)
            await tidy(engine)
            return await outbound_notices.measure(app, sink, args, kind, sys.modules[__name__])
        start = time.perf_counter()
        envelopes = await populate(app, args.count, args.size)
        await tidy(engine)
        mean = sum(len(e.data) for e in envelopes) / len(envelopes)
        print(f"{kind}: {len(envelopes)} rows of {mean:,.0f} bytes enqueued in "
              f"{time.perf_counter() - start:.1f} s (not timed)", flush=True)
        rows = []
        for connections in args.connections:
            for batch in args.batch_size:
                row = Row(kind, connections, batch)
                await measure(app, sink, envelopes, row, args.rounds)
                rows.append(row)
        if args.profile:
            await profile_run(app, sink, args.connections[0], args.batch_size[0], args.profile)
        return rows
    finally:
        await engine.dispose()
        if name is not None:
            await drop_scratch(admin_dsn, name)


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    p.add_argument("--scenario", choices=["cases", "incident"], default="cases",
                   help="cases: care replies; incident: one alert to --count list addresses")
    p.add_argument("--zones", type=int, default=3, help="incident: time zones of the lists (1-5)")
    p.add_argument("--count", type=int, default=10_000)
    p.add_argument("--size", type=int, default=5000, help="bytes a composed message aims at")
    p.add_argument("--connections", type=_ints, default=[4], help="e.g. 4, or 2,4,8 to sweep")
    p.add_argument("--batch-size", type=_ints, default=[OutboxSettings().batch_size],
                   help="outbox.batch_size (default: the product's); list to sweep")
    p.add_argument("--rounds", type=int, default=2, help="baseline/gateway pairs per setting")
    p.add_argument("--profile", type=int, default=0, metavar="TOP",
                   help="then one gateway run under cProfile (first settings); print TOP lines")
    p.add_argument("--pg-admin", default="postgresql://postgres@127.0.0.1:5432/postgres")
    return p.parse_args(argv)


async def amain(args: argparse.Namespace) -> list[Row]:
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    sink = Sink()
    try:
        with tempfile.TemporaryDirectory(prefix="gw-bench-") as folder:
            rows = []
            for kind in kinds:
                rows += await run_db(kind, args, sink, Path(folder))
            return rows
    finally:
        sink.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        rows = asyncio.run(amain(args))
    except BenchFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n{args.count} messages, best of {args.rounds} runs each; ratio = gateway / baseline")
    print(f"{'database':<11}{'conns':>6}{'batch':>6}{'baseline/s':>12}{'gateway/s':>11}"
          f"{'ratio':>7}{'in DB':>7}{'sink CPU':>10}")
    for r in rows:
        mark = "" if r.ratio >= 0.5 else "  < 0.5"
        print(f"{r.db:<11}{r.connections:>6}{r.batch:>6}{r.base:>12,.0f}{r.gate:>11,.0f}"
              f"{r.ratio:>7.2f}{r.db_share:>7.0%}{r.sink_cpu:>10.0%}{mark}")
    if args.scenario == "incident":
        print("in DB: incident open + fan-out (one transaction, before any sending), as a share of the run")
    else:
        print("in DB: time spent in claim + record, as a share of the gateway run (they overlap sending)")
    print(f"peak RSS of this process: {rss:,.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
