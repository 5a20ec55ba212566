"""Parse and classify every mail of the shared real-world corpus; check the known bounces;
then run every mail through the whole inbound pipeline and count the dispositions.

Usage: ``python scripts/corpus_check.py [CORPUS_DIR]`` (default ``../shared/corpus`` beside the
repository). Exit status 1 on any crash (an exception other than MessageRejected) or on more
expected-bounce misses than :data:`TOLERATED_MISSES`. The integration test calls
:func:`run_check` so the script and the test cannot drift apart.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a plain script: make ``gateway`` importable
    sys.path.insert(0, str(REPO))

from gateway.config import LimitSettings  # noqa: E402
from gateway.errors import MessageRejected  # noqa: E402
from gateway.inbound.mail.classify import classify  # noqa: E402
from gateway.inbound.mail.parse import parse_message  # noqa: E402
from gateway.inbound.mail.parsed import ParsedMail  # noqa: E402

DEFAULT_CORPUS = REPO.parent / "shared" / "corpus"
EXPECTED = Path("flufl.bounce") / "_expected_detectors.tsv"
TOLERATED_MISSES = 0
"""Expected bounced addresses we may fail to extract before the check fails."""
OUR_DOMAIN = "gateway.invalid"
OUR_ADDRESSES = frozenset({"care@gateway.invalid"})


@dataclass
class CheckResult:
    files: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    rejected: dict[str, str] = field(default_factory=dict)
    crashes: dict[str, str] = field(default_factory=dict)
    expected_addresses: int = 0
    found_addresses: int = 0
    misses: list[str] = field(default_factory=list)
    not_bounce: list[str] = field(default_factory=list)
    temporary_mismatches: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.crashes and len(self.misses) + len(self.not_bounce) <= TOLERATED_MISSES


def corpus_files(root: Path) -> list[Path]:
    """Every ``.eml`` under ``root``, skipping ``_*`` files (ground truth and notes)."""
    return sorted(p for p in root.rglob("*.eml") if p.is_file() and not p.name.startswith("_"))


def run_check(root: Path, limits: LimitSettings | None = None) -> CheckResult:
    """Parse and classify every corpus mail, then compare the bounces with the expectations."""
    limits = limits or LimitSettings()
    result = CheckResult()
    parsed: dict[str, ParsedMail] = {}
    started = time.perf_counter()
    for path in corpus_files(root):
        name = path.relative_to(root).as_posix()
        result.files += 1
        try:
            mail = parse_message(path.read_bytes(), limits)
            kind = classify(mail, our_domain=OUR_DOMAIN, our_addresses=OUR_ADDRESSES).kind
        except MessageRejected as exc:
            result.rejected[name] = str(exc)
            result.kinds["rejected"] += 1
            continue
        except Exception:
            result.crashes[name] = traceback.format_exc(limit=-3)
            continue
        parsed[name] = mail
        result.kinds[kind] += 1
    result.seconds = time.perf_counter() - started
    if (root / EXPECTED).is_file():
        _check_bounces(root / EXPECTED, parsed, result)
    return result


def _check_bounces(expected: Path, parsed: dict[str, ParsedMail], result: CheckResult) -> None:
    """Each listed file with expected addresses must be a bounce naming them all; a row with no
    address is flufl.bounce's own "finds nothing" case (an auto-reply, a person's reply) and is
    not required to be a bounce."""
    with expected.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    for row in rows:
        name = f"{EXPECTED.parent.as_posix()}/{row['file']}"
        wanted = [a.strip().lower() for a in row["expected_addresses"].split(",") if a.strip()]
        if not wanted:
            continue
        mail = parsed.get(name)
        report = mail.bounce if mail is not None else None
        result.expected_addresses += len(wanted)
        if report is None:
            result.not_bounce.append(f"{name}: not classified as a bounce")
            continue
        found = {r.address.lower(): r for r in report.recipients}
        temporary = row["is_temporary"].strip().lower() == "true"
        for address in wanted:
            if address not in found:
                result.misses.append(f"{name}: {address} not among {sorted(found)}")
                continue
            result.found_addresses += 1
            if found[address].permanent == temporary:
                result.temporary_mismatches.append(f"{name}: {address} permanent={found[address].permanent}")


def report(result: CheckResult) -> str:
    lines = [f"{result.files} files in {result.seconds:.1f} s"]
    lines += [f"  {kind:12} {count}" for kind, count in sorted(result.kinds.items())]
    lines.append(f"expected bounced addresses found: {result.found_addresses}/{result.expected_addresses}")
    sections: tuple[tuple[str, list[str]], ...] = (
        ("crashes", [f"{name}\n{trace}" for name, trace in result.crashes.items()]),
        ("rejected", [f"{name}: {why}" for name, why in result.rejected.items()]),
        ("not a bounce", result.not_bounce),
        ("misses", result.misses),
        ("temporary/permanent mismatches", result.temporary_mismatches),
    )
    for title, items in sections:
        if items:
            lines.append(f"{title}: {len(items)}")
            lines += [f"  {item}" for item in items]
    return "\n".join(lines)


@dataclass
class PipelineResult:
    files: int = 0
    dispositions: Counter[str] = field(default_factory=Counter)
    failures: dict[str, str] = field(default_factory=dict)
    """Messages the pipeline raised on (recorded as errors) or left without a disposition."""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures and sum(self.dispositions.values()) == self.files


async def run_pipeline_check(root: Path, workdir: Path) -> PipelineResult:
    """Every corpus mail through store -> parse -> classify -> match -> ... -> commit, on SQLite."""
    from sqlalchemy import select

    from gateway import migrate
    from gateway.app import App
    from gateway.clock import SystemClock
    from gateway.config import MailboxSettings, Settings
    from gateway.db import create_engine
    from gateway.inbound.imap.fetching import Fetched
    from gateway.inbound.loop.batch import BatchDecider
    from gateway.inbound.policy.context import Services
    from gateway.models import InboundMessage

    settings = Settings.model_validate(
        {
            "database": {"url": f"sqlite+aiosqlite:///{workdir / 'corpus.db'}"},
            "reference": {"secret": "corpus-check-secret-0123456789"},
            "mail": {"from_address": "care@gateway.invalid", "reply_to": "care@gateway.invalid"},
        }
    )
    engine = create_engine(settings.database.url)
    result = PipelineResult()
    started = time.perf_counter()
    try:
        await migrate.upgrade(engine)
        app = App(settings, engine, SystemClock())
        mailer = await app.mailer()
        services = Services(settings, app.clock, mailer, mailer.keys, OUR_ADDRESSES)
        decider = BatchDecider(engine, app.sessions, services)
        box = MailboxSettings(name="corpus", host="127.0.0.1", tls="none")
        batches = decider.start_round(box, 1)  # the daemon's path, without IMAP
        files = corpus_files(root)
        names = {uid: path.relative_to(root).as_posix() for uid, path in enumerate(files, 1)}
        for start in range(0, len(files), 50):
            batch = [
                Fetched(uid, (raw := files[uid - 1].read_bytes()), len(raw))
                for uid in range(start + 1, min(start + 50, len(files)) + 1)
            ]
            await batches.decide(batch)
        async with app.sessions() as session:
            rows = (
                await session.execute(
                    select(
                        InboundMessage.uid,
                        InboundMessage.disposition,
                        InboundMessage.error,
                        InboundMessage.attempts,
                    )
                )
            ).all()
        result.files = len(files)
        for uid, disposition, error, attempts in rows:
            if disposition is None or (error and attempts > 0 and disposition != "quarantined"):
                result.failures[names[uid]] = error or "no disposition"
            elif disposition == "quarantined" and error and "failed" in error:
                result.failures[names[uid]] = error
            if disposition is not None:
                result.dispositions[disposition] += 1
    finally:
        await engine.dispose()
    result.seconds = time.perf_counter() - started
    return result


def pipeline_report(result: PipelineResult) -> str:
    lines = [f"pipeline: {result.files} files in {result.seconds:.1f} s"]
    lines += [f"  {kind:24} {count}" for kind, count in sorted(result.dispositions.items())]
    if result.failures:
        lines.append(f"pipeline failures: {len(result.failures)}")
        lines += [f"  {name}: {why}" for name, why in result.failures.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import asyncio
    import tempfile

    from gateway.config import LoggingSettings
    from gateway.logs import configure_logging

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args(argv)
    configure_logging(LoggingSettings(level="error"))
    if not args.corpus.is_dir():
        print(f"no corpus at {args.corpus}", file=sys.stderr)
        return 2
    result = run_check(args.corpus)
    print(report(result))
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = asyncio.run(run_pipeline_check(args.corpus, Path(tmp)))
    print(pipeline_report(pipeline))
    return 0 if result.ok and pipeline.ok else 1


if __name__ == "__main__":
    sys.exit(main())
