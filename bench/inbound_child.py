"""The gateway side of bench/inbound.py, in a process of its own: ``Daemon.run_once()`` with
timing and resource probes; prints one JSON line (the last line of stdout).

Its main module imports only the standard library at the top, like the ``case-gateway``
script (which imports the command line, not the program): the parse workers' fork server
imports the main module, and a heavy one would delay the first parse as it would not in the
product.

Run by bench/inbound.py: ``inbound_child.py SETTINGS.json --log FILE [--profile-out FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import os
import pstats
import re
import resource
import sys
import threading
import time
from collections import Counter
from multiprocessing import forkserver
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

if TYPE_CHECKING:
    from gateway.config import Settings


class CollectorPauses:
    """Time the event loop's process spends in the garbage collector, and collections per
    generation (``gc.callbacks``), while :attr:`on`."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self.on = False
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if not self.on:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.collections[info["generation"]] += 1


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (not idle or waiting for I/O) since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


SERVERS = {"postgres": "PostgreSQL", "dovecot": "Dovecot", "imap": "Dovecot", "imap-login": "Dovecot",
           "auth": "Dovecot", "anvil": "Dovecot", "log": "Dovecot", "config": "Dovecot", "stats": "Dovecot"}
"""Process names (``comm``) of the servers the gateway talks to, by server."""


def server_cpu_seconds() -> dict[str, float]:
    """CPU seconds of each server's processes (:data:`SERVERS`) so far: their own and that of
    their children that have exited (a PostgreSQL backend, a Dovecot ``imap`` process after
    LOGOUT), so the difference of two calls covers processes that came and went between."""
    hertz = os.sysconf("SC_CLK_TCK")
    found: dict[str, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        server = SERVERS.get(stat[stat.index("(") + 1 : stat.rindex(")")])
        if server is not None:
            fields = stat.rpartition(")")[2].split()
            found[server] = found.get(server, 0.0) + sum(int(f) for f in fields[11:15]) / hertz
    return found


def descendants() -> dict[int, list[str]]:
    """The ``/proc/PID/stat`` fields (after the name) of this process's descendants alive now:
    the fork server and the parse workers."""
    me = os.getpid()
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stats[int(entry)] = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()
            except (OSError, ValueError):
                continue
    parents = {pid: int(fields[1]) for pid, fields in stats.items()}
    found = {}
    for pid, fields in stats.items():
        ancestor = parents.get(pid)
        while ancestor is not None and ancestor not in (me, 0, 1):
            ancestor = parents.get(ancestor)
        if ancestor == me:
            found[pid] = fields
    return found


def descendants_cpu_seconds() -> float:
    """CPU seconds of :func:`descendants`, theirs and their exited children's."""
    hertz = os.sysconf("SC_CLK_TCK")
    return sum(sum(int(f) for f in fields[11:15]) for fields in descendants().values()) / hertz


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_kb() -> int:
    """This process's peak resident set size (VmHWM), in KB."""
    found = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(found.group(1)) if found else 0


class WorkerWatch(threading.Thread):
    """Samples VmHWM (peak RSS) of every descendant process (forkserver and parse workers),
    and the CPU time of each thread of this process (the last value seen per thread)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peaks: dict[int, int] = {}
        self.threads: dict[int, tuple[str, float]] = {}
        self.done = threading.Event()

    def run(self) -> None:
        ticks = 0
        while not self.done.wait(0.25):
            self.sample_threads()
            ticks += 1
            if ticks % 4 == 0:  # VmHWM keeps the peak: no need to sample often
                self.sample()
        self.sample_threads()

    def sample_threads(self) -> None:
        hertz = os.sysconf("SC_CLK_TCK")
        names = {t.native_id: t.name for t in threading.enumerate()}
        for tid in os.listdir("/proc/self/task"):
            try:
                stat = Path(f"/proc/self/task/{tid}/stat").read_text()
            except OSError:
                continue
            name = names.get(int(tid)) or stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat.rpartition(")")[2].split()
            self.threads[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / hertz)

    def thread_cpu(self) -> dict[str, float]:
        """CPU seconds by thread name (numbers stripped: the two SQLite threads are one line)."""
        total: dict[str, float] = {}
        for name, seconds in self.threads.values():
            key = re.sub(r"-\d+", "", name).replace(" ", "")
            total[key] = round(total.get(key, 0.0) + seconds, 2)
        return dict(sorted(total.items(), key=lambda kv: -kv[1]))

    def sample(self) -> None:
        for pid in descendants():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            found = re.search(r"VmHWM:\s+(\d+) kB", status)
            if found:
                self.peaks[pid] = max(self.peaks.get(pid, 0), int(found.group(1)))


PHASES = [
    ("gateway.inbound.imap.client", "AioImapMailbox", "fetch_sizes"),
    ("gateway.inbound.imap.client", "AioImapMailbox", "fetch"),
    ("gateway.inbound.imap.client", "AioImapMailbox", "move"),
    ("gateway.inbound.loop.batch", "store", "store_raw"),
    ("gateway.inbound.loop.batch", "store", "begin_attempts"),
    ("gateway.inbound.loop.round", "store", "mark_moved"),
    ("gateway.inbound.loop.batch", "BatchDecider", "process"),
    ("gateway.inbound.loop.batch", "BatchDecider", "_decide"),
    ("gateway.inbound.loop.batch", "Lookups", "prefetch"),
    ("gateway.inbound.loop.batch", "store", "write_decided"),
    ("gateway.inbound.loop.runner", "MailboxRunner", "run_once"),
]
"""Steps taken once per batch or group: timing them costs nothing measurable."""

STAGE_PHASES = [
    ("gateway.inbound.policy.pipeline", "stages", "dedupe"),
    ("gateway.inbound.policy.pipeline", "stages", "classify"),
    ("gateway.inbound.policy.pipeline", "stages", "match"),
    ("gateway.inbound.policy.pipeline", "stages", "authorise"),
    ("gateway.inbound.policy.pipeline", None, "apply_update"),
    ("gateway.inbound.policy.pipeline", None, "respond"),
]
"""The pipeline's stages, once per message: timing them (a coroutine and a task lookup per
call, 1.3 us) costs about 1 % of the event loop's CPU, so only with ``--stage-times``."""


class IdleByStep:
    """Where the event loop waits: each wait (the selector's ``select``) is put down to the
    innermost step the deciding task (the last to enter ``BatchDecider.process``; before the
    first batch, the one running ``MailboxRunner.run_once``) is in at the time, or to ``-``
    outside one. Batches are decided one at a time, in order, so that task's steps are the
    critical path: time the loop waits in one of them is time nothing else could be done."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()
        self.stacks: dict[Any, list[str]] = {}
        self.round: Any = None

    def enter(self, key: str) -> Any:
        task = asyncio.current_task()
        if key in ("run_once", "process"):
            self.round = task
        self.stacks.setdefault(task, []).append(key)
        return task

    def leave(self, task: Any) -> None:
        stack = self.stacks.get(task)
        if stack:
            stack.pop()
            if not stack:
                del self.stacks[task]

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        selector = loop._selector  # type: ignore[attr-defined]
        select = selector.select

        def timed_select(timeout: float | None = None) -> Any:
            started = time.perf_counter()
            try:
                return select(timeout)
            finally:
                stack = self.stacks.get(self.round) or ["-"]
                self.seconds[stack[-1]] += time.perf_counter() - started

        selector.select = timed_select


IDLE = IdleByStep()


def time_phases(seconds: dict[str, float], stages: bool) -> None:
    """Wrap the inbound steps (and the pipeline's stages if ``stages``) so their wall time
    adds up in ``seconds`` (a few us per call)."""
    import importlib

    for module_name, owner_name, name in PHASES + (STAGE_PHASES if stages else []):
        module = importlib.import_module(module_name)
        owner = module if owner_name is None else getattr(module, owner_name)
        original = getattr(owner, name)

        def wrapper(*args: Any, __original: Any = original, __key: str = name, **kwargs: Any) -> Any:
            async def timed() -> Any:
                started = time.perf_counter()
                task = IDLE.enter(__key)
                try:
                    return await __original(*args, **kwargs)
                finally:
                    IDLE.leave(task)
                    seconds[__key] = seconds.get(__key, 0.0) + time.perf_counter() - started
            return timed()

        setattr(owner, name, wrapper)
    if not stages:
        return
    from gateway.inbound.policy import pipeline

    pipeline.STAGES[:] = [(n, getattr(pipeline.stages, f.__name__, f) if n != "apply" else
                           pipeline.apply_update) for n, f in pipeline.STAGES]


async def _gateway(settings: Settings, profile: cProfile.Profile | None, stages: bool) -> dict[str, Any]:
    from sqlalchemy import event, func, select

    from gateway import daemon as daemon_module
    from gateway.app import App
    from gateway.clock import SystemClock
    from gateway.daemon import Daemon, tune_collector
    from gateway.db import create_engine
    from gateway.models import InboundMessage
    from gateway.outbound.transport import MemoryTransport

    marks: dict[str, float] = {}
    phases: dict[str, float] = {}
    time_phases(phases, stages)

    class TimedSender(daemon_module.Sender):  # type: ignore[name-defined]
        async def run_until_empty(self) -> Any:
            marks["inbound_done"] = time.perf_counter()
            marks["inbound_peak_kb"] = peak_rss_kb()
            return await super().run_until_empty()

    daemon_module.Sender = TimedSender  # type: ignore[attr-defined,misc]
    engine = create_engine(settings.database.url)
    statements: Counter[str] = Counter()

    sql_seconds: Counter[str] = Counter()

    def kind(statement: str) -> str:
        words = statement[:200].split()  # a multi-row INSERT's text runs to kilobytes
        table = next((w for w, prev in zip(words[1:], words, strict=False)
                      if prev.upper() in ("FROM", "INTO", "UPDATE")), "")
        return f"{words[0].upper()} {table.strip(chr(34))}".strip()

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements[kind(statement)] += 1
        conn.info["bench_started"] = time.perf_counter()

    def timed(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        started = conn.info.pop("bench_started", time.perf_counter())
        sql_seconds[kind(statement)] += time.perf_counter() - started

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    event.listen(engine.sync_engine, "after_cursor_execute", timed)
    event.listen(engine.sync_engine, "commit", lambda conn: statements.update(["COMMIT"]))
    try:
        app = App(settings, engine, SystemClock())
        transport = MemoryTransport()
        daemon = Daemon(app, transport=transport)
        tune_collector()  # as the run command does
        IDLE.install(asyncio.get_running_loop())
        pauses = CollectorPauses()
        servers_before, own_before, workers_before = (
            server_cpu_seconds(), own_cpu_seconds(), descendants_cpu_seconds())
        busy_before, started = machine_busy_seconds(), time.perf_counter()
        pauses.on = True
        if profile is not None:
            profile.enable()
        summary = await daemon.run_once()
        if profile is not None:
            profile.disable()
        elapsed = time.perf_counter() - started
        machine_cpu = machine_busy_seconds() - busy_before
        servers = {k: v - servers_before.get(k, 0.0) for k, v in server_cpu_seconds().items()}
        window = {"gateway process": own_cpu_seconds() - own_before,
                  "parse workers": descendants_cpu_seconds() - workers_before, **servers}
        pauses.on = False
        async with app.sessions() as session:
            rows = (await session.execute(
                select(InboundMessage.disposition, func.count()).group_by(InboundMessage.disposition)
            )).all()
            unmoved = await session.scalar(select(func.count()).select_from(InboundMessage)
                                           .where(~InboundMessage.moved))
    finally:
        await engine.dispose()
    return {
        "seconds": elapsed,
        "machine_cpu": machine_cpu,
        "window_cpu": window,
        "inbound_seconds": marks.get("inbound_done", time.perf_counter()) - started,
        "seen": summary.inbound.seen, "decided": summary.inbound.decided, "moved": summary.inbound.moved,
        "sent": summary.outbound.sent, "delivered": len(transport.delivered),
        "dispositions": {str(d): n for d, n in rows}, "unmoved": unmoved,
        "statements": dict(statements.most_common()),
        "sql_seconds": {k: round(v, 2) for k, v in sql_seconds.most_common(8)},
        "phases": phases,
        "idle": {k: round(v, 2) for k, v in IDLE.seconds.most_common()},
        "inbound_peak_kb": marks.get("inbound_peak_kb", 0),
        "gc_seconds": pauses.seconds, "gc_collections": pauses.collections,
    }


def child(args: argparse.Namespace) -> None:
    """Runs only the gateway; prints one JSON line (the last line of stdout)."""
    from gateway.config import Settings
    from gateway.logs import configure_logging

    settings = Settings.model_validate_json(Path(args.settings).read_text())
    log_file = open(args.log, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    sys.stderr = log_file
    configure_logging(settings.logging)
    watch = WorkerWatch()
    watch.start()
    profile = cProfile.Profile(time.thread_time) if args.profile_out else None  # CPU, not wall time
    result = asyncio.run(_gateway(settings, profile, args.stage_times))
    result["loop_cpu"] = time.thread_time()  # the event loop's thread; the rest: pool and DB threads
    watch.done.set()
    watch.join()
    me = resource.getrusage(resource.RUSAGE_SELF)
    result["main_peak_kb"] = peak_rss_kb()
    result["main_cpu"] = me.ru_utime + me.ru_stime
    server = getattr(forkserver, "_forkserver", None)
    if server is not None:
        server._stop()  # the forkserver reaps the workers; reaping it brings their peak here
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    result["children_cpu"] = children.ru_utime + children.ru_stime
    result["worker_peaks_kb"] = sorted(watch.peaks.values(), reverse=True)
    result["thread_cpu"] = watch.thread_cpu()
    if profile is not None:
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out).strip_dirs()
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(30)
        Path(args.profile_out).write_text(out.getvalue())
        profile.dump_stats(args.profile_out + ".prof")
    sys.stdout.write(json.dumps(result) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("settings", help="the gateway's settings, as JSON")
    parser.add_argument("--log", required=True, help="where the gateway logs (and stderr) go")
    parser.add_argument("--profile-out", help="cProfile the gateway; the top costs go here")
    parser.add_argument("--stage-times", action="store_true", help="time each pipeline stage too")
    child(parser.parse_args())


if __name__ == "__main__":
    main()
