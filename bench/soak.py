"""Soak: the daemon (``case-gateway run``, IDLE) against a private Dovecot while mail arrives
at a steady rate, then idle.

Setup (not timed): a private Dovecot, a migrated database (SQLite in a temp folder, or a fresh
PostgreSQL database dropped at the end) with the test world's customer and ``--cases`` open
cases; then ``case-gateway run`` as a subprocess (two parse workers, logs to a file).

Measured: ``--count`` replies of the designated contact (each with a Message-ID of its own) are
APPENDed over one IMAP connection at ``--rate`` mails a second. For each, the latency from
the APPEND's answer to its case update (the timeline event's time, the same clock); the
resident memory of the daemon and its parse workers (VmRSS, every second) against the number
of case updates so far, compared between the first and the last thousand; and the CPU the
daemon and its workers use while nothing arrives for ``--idle`` seconds afterwards.
Goals (issue 25): p95 < 2 s, growth < 10 MB, idle < 1 % of a core.

Run: ``.venv/bin/python bench/soak.py [--db sqlite|postgresql] [--count 10000] [--rate 50]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import imaplib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inbound import PG_ADMIN, make_database
from sqlalchemy import text

from gateway.app import App
from gateway.clock import SystemClock
from gateway.db import create_engine
from testkit.mails import reply, sent_mail
from testkit.postgres import drop_scratch
from testkit.servers.dovecot import DovecotServer
from testkit.world import ANA, add_customer, open_case, settings_for, write_config

PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
TICKS = os.sysconf("SC_CLK_TCK")


def family(pid: int) -> list[int]:
    """The process and its descendants (the parse workers and their fork server)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def rss_kb(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KB
    return total


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


async def prepare(url: str, cases: int, count: int) -> list[tuple[str, bytes]]:
    engine = create_engine(url)
    try:
        app = App(settings_for(url), engine, SystemClock())
        await add_customer(app)
        originals = []
        for n in range(cases):
            case = await open_case(app, subject=f"Calls drop after 30 seconds (site {n})")
            originals.append(await sent_mail(app, case.id))
    finally:
        await engine.dispose()
    mails = []
    for i in range(count):
        message_id = f"<soak-{i}-{uuid.uuid4().hex[:8]}@customer.example>"
        raw = reply(originals[i % cases], sender=ANA, text=f"Update {i}: the calls still drop.",
                    extra_headers={"Message-ID": message_id})
        mails.append((message_id, raw))
    return mails


async def updates(url: str) -> dict[str, datetime]:
    """Message-ID -> when its case update was written."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text(
                "SELECT m.message_id, e.at FROM case_events e JOIN inbound_messages m "
                "ON m.id = e.inbound_message_id WHERE e.kind = 'customer_reply'"
            ))).all()
    finally:
        await engine.dispose()
    found = {}
    for message_id, at in rows:
        when = at if isinstance(at, datetime) else datetime.fromisoformat(str(at))
        found[message_id] = when if when.tzinfo else when.replace(tzinfo=UTC)
    return found


async def count_updates(url: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text(
                "SELECT count(*) FROM case_events WHERE kind = 'customer_reply'"))).scalar_one())
    finally:
        await engine.dispose()


def append_steadily(server: DovecotServer, user: str, mails: list[tuple[str, bytes]], rate: float,
                    appended: dict[str, datetime]) -> None:
    client = imaplib.IMAP4(server.host, server.port, timeout=120)
    client.login(user, "secret")
    start = time.monotonic()
    try:
        for i, (message_id, raw) in enumerate(mails):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            typ, data = client.append("INBOX", None, None, raw)
            if typ != "OK":
                raise RuntimeError(f"APPEND failed: {data!r}")
            appended[message_id] = datetime.now(UTC)
    finally:
        client.logout()


def soak(kind: str, args: argparse.Namespace, folder: Path, server: DovecotServer) -> dict[str, float]:
    url, pg_name = asyncio.run(make_database(kind, folder))
    daemon = None
    try:
        mails = asyncio.run(prepare(url, args.cases, args.count))
        user = f"soak{uuid.uuid4().hex[:6]}"
        server.add_user(user, "secret")
        box = {"name": "care", "host": server.host, "port": server.port, "tls": "none", "username": user,
               "password": "secret", "timeout_seconds": 120.0, "poll_seconds": 300.0}
        settings = settings_for(url, mailboxes=[box], inbound={"parse_workers": 2},
                                logging={"level": "info", "format": "json"})
        config = write_config(folder / "gateway.toml", settings)
        log = (folder / "gateway.log").open("w")
        daemon = subprocess.Popen([sys.executable, "-m", "gateway", "--config", str(config), "run"],
                                  stderr=log, stdout=subprocess.DEVNULL, cwd=Path(__file__).parent.parent)
        time.sleep(3)  # started and on IDLE (the bench, not a test: a fixed settling time)
        appended: dict[str, datetime] = {}
        sender = threading.Thread(target=append_steadily, args=(server, user, mails, args.rate, appended))
        sender.start()
        samples: list[tuple[int, int]] = []  # (case updates so far, RSS KB)
        deadline = time.monotonic() + args.count / args.rate + 120
        done = 0
        while done < args.count and time.monotonic() < deadline:
            time.sleep(1)
            done = asyncio.run(count_updates(url))
            samples.append((done, rss_kb(family(daemon.pid))))
        sender.join()
        if done < args.count:
            raise SystemExit(f"only {done} of {args.count} case updates after the deadline; log: {folder}")
        pids = family(daemon.pid)
        idle_start, cpu_start = time.monotonic(), cpu_seconds(pids)
        time.sleep(args.idle)
        idle = (cpu_seconds(family(daemon.pid)) - cpu_start) / (time.monotonic() - idle_start)
        at = asyncio.run(updates(url))
        latencies = sorted((at[m] - appended[m]).total_seconds() for m, _ in mails)
        first = [kb for n, kb in samples if 0 < n <= 1000]
        last = [kb for n, kb in samples if n > args.count - 1000]
        return {
            "p50": statistics.median(latencies),
            "p95": latencies[int(len(latencies) * 0.95) - 1],
            "max": latencies[-1],
            "peak_rss_mb": max(kb for _, kb in samples) / 1024,
            "growth_mb": (statistics.mean(last) - statistics.mean(first)) / 1024 if first and last else 0.0,
            "idle_cpu_percent": idle * 100,
        }
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait(60)
        if pg_name is not None:
            asyncio.run(drop_scratch(PG_ADMIN, pg_name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=50.0, help="mails a second")
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of idle CPU measured")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (the daemon's log)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    server = DovecotServer(folder / "dovecot")
    server.start()
    try:
        (folder / args.db).mkdir()
        r = soak(args.db, args, folder / args.db, server)
    finally:
        server.stop()
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"[{args.db}] {args.count} mails at {args.rate:g}/s: latency APPEND -> case update "
          f"p50 {r['p50']:.2f} s, p95 {r['p95']:.2f} s (goal < 2), max {r['max']:.2f} s; "
          f"peak RSS {r['peak_rss_mb']:.0f} MB, growth first -> last thousand {r['growth_mb']:+.1f} MB "
          f"(goal < 10); idle CPU {r['idle_cpu_percent']:.2f} % of a core (goal < 1)")
    ok = r["p95"] < 2 and r["growth_mb"] < 10 and r["idle_cpu_percent"] < 1
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
