"""The shared real-world corpus: every mail parses and classifies without a crash, and every
bounce flufl.bounce's own tests expect is found with its addresses (``scripts/corpus_check.py``).

The corpus is not part of the repository: it sits beside it in ``../shared/corpus``. Only its
true absence skips this test; a corpus folder that is present but empty fails it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mailparser_reply import EmailReplyParser
from mailparser_reply.parser import EmailMessage

from gateway.config import LimitSettings
from gateway.errors import MessageRejected
from gateway.inbound.parse import parse_message
from gateway.inbound.reply_text import LANGUAGES, LineStartPattern, Segments, own_part
from scripts.corpus_check import (
    TOLERATED_MISSES,
    corpus_files,
    pipeline_report,
    report,
    run_check,
    run_pipeline_check,
)

CORPUS = Path(__file__).parents[2].parent / "shared" / "corpus"

pytestmark = pytest.mark.slow


def test_corpus_parses_and_known_bounces_are_found() -> None:
    if not CORPUS.exists():
        pytest.skip(f"no corpus at {CORPUS}")
    assert corpus_files(CORPUS), f"the corpus folder {CORPUS} holds no .eml file"
    result = run_check(CORPUS)
    summary = report(result)
    assert not result.crashes, summary
    assert result.expected_addresses > 0, summary
    assert len(result.misses) + len(result.not_bounce) <= TOLERATED_MISSES, summary
    assert result.ok, summary


async def test_every_corpus_mail_gets_a_disposition_through_the_pipeline(tmp_path: Path) -> None:
    if not CORPUS.exists():
        pytest.skip(f"no corpus at {CORPUS}")
    result = await run_pipeline_check(CORPUS, tmp_path)
    summary = pipeline_report(result)
    assert result.files == len(corpus_files(CORPUS)), summary
    assert result.ok, summary
    assert result.dispositions["bounce"] > 100, summary


def test_fast_quote_header_scan_and_reply_split_match_the_library_on_every_corpus_mail() -> None:
    if not CORPUS.exists():
        pytest.skip(f"no corpus at {CORPUS}")
    pattern = EmailMessage(text="", languages=list(LANGUAGES)).HEADER_REGEX
    limits = LimitSettings()
    compared = 0
    for path in corpus_files(CORPUS):
        try:
            mail = parse_message(path.read_bytes(), limits)
        except MessageRejected:
            continue
        for text in (mail.text_body, own_part(mail.text_body, mail.html_body, 20_000)):
            assert LineStartPattern(pattern).findall(text) == pattern.findall(text), path.name
            compared += 1
        text = own_part(mail.text_body, mail.html_body, 20_000)
        assert Segments(text=text, languages=list(LANGUAGES)).read().latest_reply == \
            EmailReplyParser(languages=LANGUAGES).parse_reply(text), path.name
    assert compared > 1000
