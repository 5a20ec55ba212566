"""What a parse worker makes of a message's bytes (gateway.inbound.mail.analysis): the work the
pipeline relies on, done once, and what happens when a step of it fails."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config import LimitSettings
from gateway.inbound.mail import analysis
from gateway.inbound.mail.analysis import parse_safely
from gateway.inbound.mail.parsed import ParseLimits
from testkit.mails import new_mail, raw_mail

LIMITS = ParseLimits.of(LimitSettings())
KEYS = [b"k" * 32]
REPLY = raw_mail(sender="ana@customer.example", subject="RE: your case",
                 body=b"Here are the logs.\r\n\r\n> what we asked\r\n",
                 headers="In-Reply-To: <ours@vendor.example>\r\n")


def test_a_reply_comes_with_its_tokens_and_its_new_text() -> None:
    parsed = parse_safely(REPLY, LIMITS, KEYS)
    assert parsed.problem is None and parsed.mail is not None
    assert parsed.tokens is not None
    assert parsed.new_text is not None and not parsed.new_text.kept_whole
    assert "Here are the logs." in (parsed.new_text.text or parsed.new_text.whole)


def test_mail_that_cannot_reach_a_case_gets_no_new_text() -> None:
    parsed = parse_safely(new_mail(sender="stranger@example.org", subject="Help", text="Broken."),
                          LIMITS, KEYS)
    assert parsed.mail is not None and parsed.tokens is not None
    assert parsed.new_text is None  # no reference: it is refused before any text is read


def test_a_reference_scan_that_fails_quarantines_the_message_with_its_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("scanner bug")

    monkeypatch.setattr(analysis, "scan_tokens", broken)
    parsed = parse_safely(REPLY, LIMITS, KEYS)
    assert parsed.mail is None
    assert parsed.problem == "reference scan failed: RuntimeError: scanner bug"


def test_a_text_extraction_that_fails_keeps_the_whole_text_flagged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("reader bug")

    monkeypatch.setattr(analysis, "extract", broken)
    parsed = parse_safely(REPLY, LIMITS, KEYS)
    assert parsed.problem is None and parsed.new_text is not None
    assert parsed.new_text.kept_whole
    assert parsed.new_text.text.startswith("Here are the logs.")
    assert "> what we asked" in parsed.new_text.whole
