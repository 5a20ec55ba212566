"""The one strict sender of a mail (gateway.inbound.mail.sender)."""

from __future__ import annotations

import pytest

from gateway.addresses import ascii_lower
from gateway.directory import normalise_email
from gateway.inbound.mail.sender import sender_of


def test_only_ascii_letters_are_folded() -> None:
    assert ascii_lower("ANA@Acme.EXAMPLE") == "ana@acme.example"
    assert ascii_lower("\u212aai@acme.example") == "\u212aai@acme.example"  # "\u212a".lower() == "k"
    assert normalise_email("\u212aai@acme.example") != normalise_email("kai@acme.example")
    assert normalise_email("JÖRG@Example.de") == "jÖrg@example.de"


@pytest.mark.parametrize("values, address", [
    (["Ana Alves <ana@acme.example>"], "ana@acme.example"),
    (['"Alves, Ana" <ANA@acme.example>'], "ana@acme.example"),
    (["=?utf-8?q?J=C3=B6rg?= <j@x.example>"], "j@x.example"),
    (["ana@acme.example <ana@acme.example>"], "ana@acme.example"),
    (["ana@acme.example (Ana)"], "ana@acme.example"),
    (["Joe Q. Public <joe@acme.example>"], "joe@acme.example"),
    (['"=?windows-1251?B?wPLo6u7iYQ==?=" <y@acme.example>'], "y@acme.example"),
    (["=?X-Unknown?B?bXlHb3Y=?=<info@acme.example>"], "info@acme.example"),
    (["ana@acme.example, "], "ana@acme.example"),
])
def test_one_clean_mailbox_is_a_sender(values: list[str], address: str) -> None:
    sender = sender_of(values)
    assert (sender.address, sender.problem) == (address, "")


@pytest.mark.parametrize("values", [
    ["ana@acme.example <mallory@evil.example>"],
    ['"ana@acme.example" <mallory@evil.example>'],
    ["=?utf-8?b?YW5hQGFjbWUuZXhhbXBsZQ==?= <mallory@evil.example>"],
    ["a@acme.example", "b@acme.example"],
    ["a@acme.example, b@acme.example"],
    ["<@evil.example:ana@acme.example>"],
    ["Team: ana@acme.example;"],
    ["@evil.example"],
    ["undisclosed"],
    ["Ana <ana@acme.example"],
    ['"=?utf-8?q?ana=40acme.example?=" <mallory@evil.example>'],
    ["Ana <ana@acme.example> mallory@evil.example"],
    ["Big Bug bb@bug.example"],
])
def test_anything_else_has_a_problem(values: list[str]) -> None:
    assert sender_of(values).problem


@pytest.mark.parametrize("values", [[], [""], ["<>"], ["  "]])
def test_no_sender_at_all_is_a_null_sender(values: list[str]) -> None:
    assert sender_of(values).address == sender_of(values).problem == ""
