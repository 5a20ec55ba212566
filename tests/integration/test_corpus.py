"""The shared real-world corpus: every mail parses and classifies without a crash, and every
bounce flufl.bounce's own tests expect is found with its addresses (``scripts/corpus_check.py``).

The corpus is not part of the repository: it sits beside it in ``../shared/corpus``. Its
absence skips these tests locally and fails them in CI (like a missing Dovecot or PostgreSQL);
a corpus folder that is present but empty fails them everywhere.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gateway.config import LimitSettings
from gateway.errors import MessageRejected
from gateway.inbound.mail.parse import parse_message
from gateway.inbound.mail.reply_text import extract
from scripts.corpus_check import (
    TOLERATED_MISSES,
    corpus_files,
    pipeline_report,
    report,
    run_check,
    run_pipeline_check,
)
from tests.plugins.database import unavailable

CORPUS = Path(__file__).parents[2].parent / "shared" / "corpus"

pytestmark = pytest.mark.slow


def test_corpus_parses_and_known_bounces_are_found() -> None:
    if not CORPUS.exists():
        unavailable(f"the corpus at {CORPUS}")
    assert corpus_files(CORPUS), f"the corpus folder {CORPUS} holds no .eml file"
    result = run_check(CORPUS)
    summary = report(result)
    assert not result.crashes, summary
    assert result.expected_addresses > 0, summary
    assert len(result.misses) + len(result.not_bounce) <= TOLERATED_MISSES, summary
    assert result.ok, summary


async def test_every_corpus_mail_gets_a_disposition_through_the_pipeline(tmp_path: Path) -> None:
    if not CORPUS.exists():
        unavailable(f"the corpus at {CORPUS}")
    result = await run_pipeline_check(CORPUS, tmp_path)
    summary = pipeline_report(result)
    assert result.files == len(corpus_files(CORPUS)), summary
    assert result.ok, summary
    assert result.dispositions["bounce"] > 100, summary


def test_every_corpus_mail_gets_a_new_text_quickly() -> None:
    """The reply reading never fails on real mail, stays fast, and never leaves nothing of a
    mail that has text (at worst the whole text, flagged)."""
    if not CORPUS.exists():
        unavailable(f"the corpus at {CORPUS}")
    limits = LimitSettings()
    slowest, read = 0.0, 0
    for path in corpus_files(CORPUS):
        try:
            mail = parse_message(path.read_bytes(), limits)
        except MessageRejected:
            continue
        started = time.perf_counter()
        reading = extract(mail.text_body, mail.html_body, limits.max_new_text_chars, mail.attachments)
        found = reading.settle(None)
        slowest = max(slowest, time.perf_counter() - started)
        if found.whole.strip():
            assert found.text.strip(), path.name
        read += 1
    assert read > 500
    assert slowest < 1.0, f"slowest reply took {slowest:.2f} s"
