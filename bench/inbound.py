"""Inbound throughput: ``run --once`` over a real Dovecot mailbox against a naive raw baseline.

Setup (not timed): a private Dovecot (testkit.servers.dovecot) in a temp folder; per database a
migrated database (SQLite in the temp folder, or a fresh PostgreSQL database dropped at the
end) with the test world's customer and ``--cases`` cases opened through the real service, so
replies carry real reference tokens. The mail set (``--count`` mails, seeded): half replies of
the designated contact to those cases (quoting our mail), 30 % new-case attempts from distinct
senders, 10 % out-of-office answers, 10 % DSN bounces of our acknowledgements; bodies padded
to a log-normal size around 6 KB median, 10 % with a 50 KB PDF-ish attachment (base64). The
same mails are APPENDed to two fresh Dovecot users: one for the baseline, one for the gateway.

Timed:

* **baseline** (this process): stdlib ``imaplib`` SELECT, ``UID SEARCH ALL``, ``UID FETCH n:m
  BODY.PEEK[]`` in batches of 100 and ``mailparser.parse_from_bytes`` of each message, in one
  process (the naive loop; it neither stores nor moves anything), once before the gateway
  and once after it on the same mailbox: the machine's pace drifts by tens of percent within
  minutes, so the ratio is taken against the mean of the two, and the drift is printed;
* **gateway** (a fresh subprocess, so the baseline's memory does not count):
  ``Daemon(app, transport=MemoryTransport()).run_once()`` with ``inbound.parse_workers =
  --workers`` and the default ``batch_size`` (150), logging at info as ``run`` configures it (to a file).
  It includes the outbox round that sends the refusals it queued (to memory); the inbound
  part alone is printed too.

Afterwards every message must have a disposition and INBOX must be empty. Peak RSS: VmHWM
from ``/proc/PID/status``, of the gateway process and (sampled) of each parse worker. Not
``ru_maxrss``: on Linux a process started by fork (or vfork) and exec inherits in it the peak of
its parent before the exec, here the bench process holding every mail (that made the gateway
look as if it grew by about 12 KB per mail). CPU per
mail: the gateway process (and its event-loop thread alone), and the parse workers together
(their start-up included), which shows where the two cores go; and the pauses of the gateway
process's garbage collector (``gc.callbacks``), which the gateway sets up as ``run`` does
(``tune_collector``).
The whole machine's CPU per mail (``/proc/stat``: every process, Dovecot and PostgreSQL
included), of the baseline runs and of the gateway's timed window, split by process within
that window (the gateway, its parse workers, PostgreSQL's and Dovecot's processes, the rest:
the kernel's own work and everything else), and from them the ceiling
of the ratio on this machine's cores: the ratio the gateway would reach at that CPU if every
core were busy all the time (the baseline uses one). Below the ceiling, cores were idle;
at it, only less CPU per mail raises the ratio.
Where the event loop waits, by the step of the round it is in (the round's own task is the
critical path: a wait there is time the gateway could not use), e.g. ``prefetch`` for the
group's queries, ``write_decided`` for its writes, ``_decide`` for its commit, ``process`` for
the parse workers.
``--stage-times`` adds the wall time of each pipeline stage (dedupe, classify, match, ...) to
the steps timed: a wrapper per stage and message (1.3 us a call, about 1 % of the event
loop's CPU), off for the figures quoted. ``--profile`` runs the gateway under cProfile
(main process, timed by its thread's CPU clock, so waits do not count) and prints the top
costs.

Run: ``.venv/bin/python bench/inbound.py [--db sqlite|postgresql|both] [--count 10000] [--workers 2]``.
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import imaplib
import json
import logging
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mailparser
from inbound_child import machine_busy_seconds

from gateway import migrate
from gateway.app import App
from gateway.clock import SystemClock
from gateway.config import Settings
from gateway.db import create_engine
from testkit.mails import bounce, out_of_office, reply, sent_mail
from testkit.postgres import create_scratch, drop_scratch
from testkit.servers.dovecot import DovecotServer
from testkit.world import ANA, add_customer, open_case, settings_for

PG_ADMIN = os.environ.get("GATEWAY_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
BASELINE_BATCH = 100
MEDIAN_BYTES = 6000
ATTACHMENT_BYTES = 50 * 1024
PROSE = (
    "the agent desktop drops calls after thirty seconds when the queue is busy and our "
    "supervisors see the websocket reconnect in the browser console we attached the logs "
    "from this morning please check the media gateway in the frankfurt region again thanks "
    "for the quick answer yesterday it happened twice more around noon local time"
)
WORDS = PROSE.split(" ")


class BenchFailed(Exception):
    """The gateway did not decide and move every message."""


# --- the mail set ----------------------------------------------------------------------------


def _filler(rng: random.Random, chars: int) -> str:
    """About ``chars`` characters of plausible prose in lines of ~72 characters."""
    lines, line, size = [], [], 0
    while size < chars:
        word = rng.choice(WORDS)
        line.append(word)
        size += len(word) + 1
        if sum(len(w) + 1 for w in line) > 70:
            lines.append(" ".join(line))
            line = []
            if rng.random() < 0.15:
                lines.append("")
    lines.append(" ".join(line))
    return "\n".join(lines).strip() + "\n\nBest regards,\nAna"


def _pdf(rng: random.Random) -> bytes:
    body = rng.randbytes(ATTACHMENT_BYTES - 40)
    return b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + body + b"\n%%EOF\n"


def _new_case(sender: str, subject: str, text: str, attachment: bytes | None) -> bytes:
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = "care@vendor.example"
    msg["Date"] = email.utils.formatdate()
    msg["Message-ID"] = email.utils.make_msgid(domain=sender.rpartition("@")[2])
    msg.set_content(text)
    if attachment is not None:
        msg.add_attachment(attachment, maintype="application", subtype="pdf", filename="screenshot.pdf")
    return msg.as_bytes(policy=policy.SMTP)


def build_mails(originals: list[bytes], count: int, seed: int) -> list[bytes]:
    """``count`` mails in a shuffled order; see the module docstring for the mix."""
    rng = random.Random(seed)
    kinds = ["reply"] * (count // 2) + ["new"] * (count * 3 // 10) + ["ooo"] * (count // 10)
    kinds += ["bounce"] * (count - len(kinds))
    rng.shuffle(kinds)
    people = [i for i, k in enumerate(kinds) if k in ("reply", "new")]
    with_attachment = set(rng.sample(people, min(len(people), count // 10)))
    overhead = [len(reply(o, sender=ANA, text="x")) for o in originals]
    mails = []
    for i, kind in enumerate(kinds):
        which = rng.randrange(len(originals))
        original = originals[which]
        target = min(40_000, max(1500, int(rng.lognormvariate(math.log(MEDIAN_BYTES * 1.1), 0.45))))
        pdf = _pdf(rng) if i in with_attachment else None
        if kind == "reply":
            text = _filler(rng, max(40, target - overhead[which]))
            extra = [("logs.pdf", "application/pdf", pdf)] if pdf is not None else None
            mails.append(reply(original, sender=ANA, text=text, attachments=extra))
        elif kind == "new":
            sender = f"person{i}@customer{i % 97}.example"
            mails.append(_new_case(sender, f"Problem with queue {i}", _filler(rng, target - 600), pdf))
        elif kind == "ooo":
            mails.append(out_of_office(original, sender=ANA))
        else:
            mails.append(bounce(original, recipient=ANA))
    return mails


def describe(mails: list[bytes]) -> str:
    sizes = [len(m) for m in mails]
    return (f"{len(mails)} mails, median {statistics.median(sizes) / 1024:.1f} KB, "
            f"mean {statistics.mean(sizes) / 1024:.1f} KB, {sum(sizes) / 2**20:.0f} MB in all")


# --- databases -------------------------------------------------------------------------------


async def make_database(kind: str, folder: Path) -> tuple[str, str | None]:
    """(SQLAlchemy URL, PostgreSQL database to drop afterwards) of a migrated empty database."""
    if kind == "sqlite":
        url, name = f"sqlite+aiosqlite:///{folder / 'gateway.db'}", None
    else:
        url, name = await create_scratch(PG_ADMIN, "gw_bench_inbound")
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()
    return url, name


def gateway_settings(url: str, server: DovecotServer, user: str, workers: int) -> Settings:
    box = {"name": "care", "host": server.host, "port": server.port, "tls": "none",
           "username": user, "password": "secret", "timeout_seconds": 120.0}
    return settings_for(url, mailboxes=[box], inbound={"parse_workers": workers},
                        limits={"auto_replies_per_sender_per_day": 1_000_000,
                                "auto_replies_per_hour": 1_000_000},
                        logging={"level": "info", "json": True})


async def world(url: str, cases: int, count: int, seed: int) -> list[bytes]:
    """The customer, ``cases`` open cases, and the mail set built on their acknowledgements."""
    settings = settings_for(url)
    engine = create_engine(url)
    try:
        app = App(settings, engine, SystemClock())
        await add_customer(app)
        originals = []
        for n in range(cases):
            case = await open_case(app, subject=f"Calls drop after 30 seconds (site {n})")
            originals.append(await sent_mail(app, case.id))
        return build_mails(originals, count, seed)
    finally:
        await engine.dispose()


# --- IMAP helpers (stdlib) -------------------------------------------------------------------


def _ok(response: tuple[str, Any]) -> Any:
    if response[0] != "OK":
        raise BenchFailed(f"IMAP command failed: {response!r}")
    return response[1]


def connect(server: DovecotServer, user: str) -> imaplib.IMAP4:
    client = imaplib.IMAP4(server.host, server.port, timeout=120)
    _ok(client.login(user, "secret"))
    return client


def fill(server: DovecotServer, user: str, mails: list[bytes]) -> float:
    server.add_user(user, "secret")
    started = time.perf_counter()
    client = connect(server, user)
    try:
        for raw in mails:
            _ok(client.append("INBOX", None, None, raw))
    finally:
        client.logout()
    return time.perf_counter() - started


def folder_counts(server: DovecotServer, user: str) -> dict[str, int]:
    client = connect(server, user)
    try:
        counts = {}
        for name in ("INBOX", "Processed", "Refused", "Quarantine"):
            typ, data = client.status(name, "(MESSAGES)")
            found = re.search(rb"MESSAGES (\d+)", data[0] or b"") if typ == "OK" else None
            counts[name] = int(found.group(1)) if found else 0
        return counts
    finally:
        client.logout()


def baseline(server: DovecotServer, user: str) -> dict[str, float]:
    """The naive loop: fetch in batches of 100 over one connection, parse each, one process."""
    logging.getLogger("mailparser").setLevel(logging.CRITICAL)  # as gateway.inbound.mail.parse does
    busy_before, started = machine_busy_seconds(), time.perf_counter()
    client = connect(server, user)
    fetch_s = parse_s = 0.0
    parsed = 0
    try:
        _ok(client.select("INBOX", readonly=True))
        data = _ok(client.uid("SEARCH", "ALL"))
        uids = [int(u) for u in data[0].split()]
        for start in range(0, len(uids), BASELINE_BATCH):
            chunk = uids[start : start + BASELINE_BATCH]
            t0 = time.perf_counter()
            data = _ok(client.uid("FETCH", f"{chunk[0]}:{chunk[-1]}", "(BODY.PEEK[])"))
            raws = [item[1] for item in data if isinstance(item, tuple)]
            t1 = time.perf_counter()
            for raw in raws:
                mailparser.parse_from_bytes(raw)
            parse_s += time.perf_counter() - t1
            fetch_s += t1 - t0
            parsed += len(raws)
    finally:
        client.logout()
    elapsed = time.perf_counter() - started
    machine_cpu = machine_busy_seconds() - busy_before
    if parsed != len(uids):
        raise BenchFailed(f"baseline fetched {parsed} of {len(uids)} messages")
    return {"messages": parsed, "seconds": elapsed, "fetch_s": fetch_s, "parse_s": parse_s,
            "machine_cpu": machine_cpu}


# --- the gateway run (child process: bench/inbound_child.py) ------------------------------


def run_child(settings: Settings, folder: Path, profile: str | None, stages: bool) -> dict[str, Any]:
    config = folder / "child-settings.json"
    data = json.loads(settings.model_dump_json(by_alias=True))
    data["reference"]["secret"] = settings.reference.secret.get_secret_value()
    data["mailboxes"][0]["password"] = settings.mailboxes[0].password.get_secret_value()
    config.write_text(json.dumps(data))
    command = [sys.executable, str(Path(__file__).resolve().parent / "inbound_child.py"), str(config),
               "--log", str(folder / "gateway.log")]
    if profile:
        command += ["--profile-out", profile]
    if stages:
        command += ["--stage-times"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchFailed(f"gateway run failed ({done.returncode}):\n{done.stderr[-4000:]}\n"
                          f"log: {folder / 'gateway.log'}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- one database ------------------------------------------------------------------------------


def bench_database(
    kind: str, server: DovecotServer, folder: Path, args: argparse.Namespace
) -> dict[str, Any]:
    folder.mkdir()
    url, pg_name = asyncio.run(make_database(kind, folder))
    try:
        t0 = time.perf_counter()
        mails = asyncio.run(world(url, args.cases, args.count, args.seed))
        built = time.perf_counter() - t0
        print(f"[{kind}] built {describe(mails)} in {built:.1f}s", flush=True)
        tag = uuid.uuid4().hex[:6]
        raw_user, gw_user = f"raw{kind[:2]}{tag}", f"gw{kind[:2]}{tag}"
        print(f"[{kind}] APPEND {len(mails)} to {raw_user}: {fill(server, raw_user, mails):.1f}s; "
              f"to {gw_user}: {fill(server, gw_user, mails):.1f}s", flush=True)
        base = baseline(server, raw_user)
        print(f"[{kind}] baseline {base['messages'] / base['seconds']:.0f} msg/s "
              f"(fetch {base['fetch_s']:.1f}s, parse {base['parse_s']:.1f}s)", flush=True)
        settings = gateway_settings(url, server, gw_user, args.workers)
        profile = str(folder.parent / f"profile-{kind}.txt") if args.profile else None
        gw = run_child(settings, folder, profile, args.stage_times)
        after = baseline(server, raw_user)  # the machine's pace drifts: measured on both sides
        print(f"[{kind}] baseline again after the gateway: {after['messages'] / after['seconds']:.0f} msg/s",
              flush=True)
        folders = folder_counts(server, gw_user)
        gw.update(baseline=base, baseline_after=after, folders=folders, count=len(mails), kind=kind)
        decided = sum(gw["dispositions"].values())
        problems = []
        if decided != len(mails) or gw["dispositions"].get("None"):
            problems.append(f"{decided} rows decided of {len(mails)}: {gw['dispositions']}")
        if folders["INBOX"] != 0:
            problems.append(f"INBOX still holds {folders['INBOX']} messages")
        if gw["unmoved"]:
            problems.append(f"{gw['unmoved']} rows not marked moved")
        gw["problems"] = problems
        return gw
    finally:
        if pg_name is not None:
            asyncio.run(drop_scratch(PG_ADMIN, pg_name))


def report(r: dict[str, Any]) -> None:
    base, after, n = r["baseline"], r["baseline_after"], r["count"]
    before_rate, after_rate = n / base["seconds"], n / after["seconds"]
    base_seconds = (base["seconds"] + after["seconds"]) / 2
    base_rate = n / base_seconds
    rate = n / r["seconds"]
    inbound_rate = n / r["inbound_seconds"]
    main_mb, workers_mb = r["main_peak_kb"] / 1024, max(r["worker_peaks_kb"] or [0]) / 1024
    ok = rate / base_rate >= 0.5 and main_mb < 150
    print(f"\n== {r['kind']}: {n} mails, parse_workers={r['workers']} ==")
    print(f"  {'baseline (imaplib fetch + mail-parser, 1 process)':<52} {base_rate:8.0f} msg/s"
          f"   {base_seconds:7.1f} s  (mean of the runs before and after)")
    print(f"  {'  before the gateway / after it':<52} {before_rate:8.0f} / {after_rate:.0f} msg/s"
          f"  (the machine's drift: {abs(before_rate - after_rate) / base_rate:.0%})")
    print(f"  {'gateway run --once (inbound + outbox round)':<52} {rate:8.0f} msg/s   {r['seconds']:7.1f} s")
    print(f"  {'  of which inbound (store, parse, match, commit, move)':<52} {inbound_rate:8.0f} msg/s"
          f"   {r['inbound_seconds']:7.1f} s")
    print(f"  {'ratio gateway / baseline':<52} {rate / base_rate:8.2f}       (target >= 0.5)")
    print(f"  {'peak RSS gateway process (VmHWM)':<52} {main_mb:8.0f} MB      (target < 150)")
    print(f"  {'  of which before the outbox round (inbound only)':<52} "
          f"{r['inbound_peak_kb'] / 1024:8.0f} MB")
    print(f"  {'peak RSS per parse worker (VmHWM, sampled)':<52} {workers_mb:8.0f} MB      "
          f"{[round(k / 1024) for k in r['worker_peaks_kb']]}")
    print(f"  {'CPU per mail: gateway process (event loop) / workers':<52} {r['main_cpu'] * 1000 / n:8.2f} ms"
          f" ({r['loop_cpu'] * 1000 / n:.2f}) / {r['children_cpu'] * 1000 / n:.2f} ms")
    cores = os.cpu_count() or 1
    busy = r["machine_cpu"] / r["seconds"]
    print(f"  {'cores busy while the gateway ran (whole machine)':<52} {busy:8.2f} of {cores}"
          "  (Dovecot and PostgreSQL included)")
    base_cpu = (base["machine_cpu"] + after["machine_cpu"]) / 2 / n
    gw_cpu = r["machine_cpu"] / n
    print(f"  {'CPU per mail, whole machine: baseline / gateway':<52} {base_cpu * 1000:8.2f} / "
          f"{gw_cpu * 1000:.2f} ms  (the gateway spends {gw_cpu / base_cpu:.1f} times as much)")
    print(f"  {f'  ceiling of the ratio at that CPU on {cores} cores':<52} {cores * base_cpu / gw_cpu:8.2f}"
          f"       (the ratio if every core were busy all the time)")
    parts = dict(r["window_cpu"])
    parts["the rest (kernel, other processes)"] = r["machine_cpu"] - sum(parts.values())
    print("    of which (ms per mail): " + ", ".join(f"{k} {v * 1000 / n:.2f}" for k, v in parts.items()))
    print(f"  {'garbage collector pauses (collections by generation)':<52} {r['gc_seconds']:8.2f} s   "
          f"   {r['gc_collections']}")
    print("  CPU by thread of the gateway process (s): "
          + ", ".join(f"{k} {v}" for k, v in r.get("thread_cpu", {}).items()))
    print(f"  dispositions: {dict(sorted(r['dispositions'].items()))}")
    print(f"  folders after: {r['folders']}; answers sent to memory: {r['sent']}")
    total = sum(r["statements"].values())
    print(f"  SQL per message: {total / n:.1f} round trips ("
          + ", ".join(f"{k} {v / n:.2f}" for k, v in r["statements"].items()) + ")")
    print("  SQL wall time by statement (s): " + ", ".join(f"{k} {v}" for k, v in r["sql_seconds"].items()))
    print("  wall time by step (s; nested): " + ", ".join(f"{k} {v:.1f}" for k, v in r["phases"].items()))
    print("  event loop waiting, by the round's step (s): "
          + ", ".join(f"{k} {v:.2f}" for k, v in r.get("idle", {}).items()))
    print(f"  verdict: {'PASS' if ok and not r['problems'] else 'FAIL'}"
          + "".join(f"\n  PROBLEM: {p}" for p in r["problems"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="cProfile the gateway process")
    parser.add_argument("--stage-times", action="store_true",
                        help="time each pipeline stage of each message too (~1%% of the event loop's CPU)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs, profiles)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-inbound-"))
    server = DovecotServer(folder / "dovecot")
    server.start()
    results = []
    try:
        kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
        for kind in kinds:
            result = bench_database(kind, server, folder / kind, args)
            result["workers"] = args.workers
            results.append(result)
            report(result)
            if args.profile:
                print(f"  profile: {folder / f'profile-{kind}.txt'}")
    finally:
        server.stop()
        if args.keep or args.profile:
            print(f"\nkept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    if any(r["problems"] for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
