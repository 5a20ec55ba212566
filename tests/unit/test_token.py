"""The reference token: unguessable, bound to its case, and intact after what mail does to it."""

from __future__ import annotations

import email.policy
import html
import quopri
import re
import string
import textwrap
from email.message import EmailMessage
from email.parser import BytesParser

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gateway.errors import InvalidValue
from gateway.threading.text import html_to_text, strip_subject_decorations
from gateway.threading.token import (
    Candidate,
    find_candidates,
    make_token,
    subject_tag,
    verified_case_numbers,
    verify,
)

numbers = st.integers(0, 99_999_999).map(lambda n: f"{n:08d}")
keys = st.binary(min_size=16, max_size=64)
words = st.text(string.ascii_letters + string.digits + ".,;!?()'\"", min_size=1, max_size=14)
paragraphs = st.lists(words, max_size=60)
TOKEN_SHAPE = re.compile(r"REF:[0-9]{8}\.[0-9a-hjkmnp-tv-z]{13}")


def _found(text: str, key: bytes) -> set[str]:
    return verified_case_numbers(text, [key])[0]


def _with_token(paragraph: list[str], position: int, piece: str) -> str:
    at = position % (len(paragraph) + 1)
    return " ".join([*paragraph[:at], piece, *paragraph[at:]])


# --- what a token is ----------------------------------------------------------------------


def test_format_example() -> None:
    token = make_token("00012345", b"0123456789abcdef")
    assert TOKEN_SHAPE.fullmatch(token)
    assert subject_tag(token) == f"[{token}]"
    assert str(find_candidates(token)[0]) == token


@given(number=numbers, key=keys)
def test_every_made_token_verifies(number: str, key: bytes) -> None:
    token = make_token(number, key)
    assert TOKEN_SHAPE.fullmatch(token)
    assert find_candidates(token) == [Candidate(number, token[-13:])]
    assert verify(find_candidates(token)[0], [key]) == number
    assert verified_case_numbers(token, [key]) == ({number}, [])


@given(number=numbers, key=keys, other=keys)
def test_does_not_verify_under_another_key(number: str, key: bytes, other: bytes) -> None:
    assume(key != other)
    numbers_found, forged = verified_case_numbers(make_token(number, key), [other])
    assert numbers_found == set()
    assert [str(c) for c in forged] == [make_token(number, key)]


@given(number=numbers, other_number=numbers, key=keys)
def test_mac_does_not_move_to_another_number(number: str, other_number: str, key: bytes) -> None:
    assume(number != other_number)
    mac = make_token(number, key).rpartition(".")[2]
    assert verify(Candidate(other_number, mac), [key]) is None
    assert _found(f"REF:{other_number}.{mac}", key) == set()


@given(number=numbers, key=keys, data=st.data())
def test_changing_any_one_character_breaks_it(number: str, key: bytes, data: st.DataObject) -> None:
    token = make_token(number, key)
    index = data.draw(st.integers(0, len(token) - 1))
    new = data.draw(st.characters(codec="utf-8") | st.sampled_from("0123456789abcdefghjkmnpqrstvwxyz"))
    old = token[index]
    assume(new != old and not (new.isascii() and new.lower() == old.lower()))
    changed = token[:index] + new + token[index + 1 :]
    assert _found(changed, key) == set()


@given(number=numbers, key=keys, data=st.data())
def test_dropping_or_adding_a_character_breaks_it(number: str, key: bytes, data: st.DataObject) -> None:
    token = make_token(number, key)
    index = data.draw(st.integers(0, len(token) - 1))
    assert _found(token[:index] + token[index + 1 :], key) == set()
    assert find_candidates(token + data.draw(st.sampled_from("0aZ9x"))) == []


def test_look_alike_characters_never_form_a_token() -> None:
    key = b"0123456789abcdef"
    token = make_token("00012345", key)
    for fake, real in (("\u212a", "k"), ("\u017f", "s"), ("\u0131", "i"), ("\uff10", "0"), ("\u0660", "0")):
        assert _found(token.replace(real, fake), key) == set() or real not in token
    assert find_candidates("REF:\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667.0123456789abc") == []


@given(number=numbers, new_key=keys, old_key=keys)
def test_old_keys_still_accepted(number: str, new_key: bytes, old_key: bytes) -> None:
    old_token = make_token(number, old_key)
    assert verified_case_numbers(old_token, [new_key, old_key])[0] == {number}
    assert verified_case_numbers(old_token, [b"", old_key])[0] == {number}


def test_empty_key_list_or_empty_key_verifies_nothing() -> None:
    token = make_token("00000042", b"k" * 16)
    assert verified_case_numbers(token, [])[0] == set()
    assert verified_case_numbers(token, [b""])[0] == set()


@pytest.mark.parametrize("number", ["1234567", "0001234a", "", " 00012345", "\u0660" * 8, "1" * 13])
def test_make_token_rejects_bad_numbers(number: str) -> None:
    with pytest.raises(InvalidValue):
        make_token(number, b"k" * 16)


def test_make_token_rejects_an_empty_key() -> None:
    with pytest.raises(InvalidValue):
        make_token("00012345", b"")


def test_candidates_deduplicated_in_order_and_forged_reported() -> None:
    key = b"k" * 16
    a, b = make_token("00000002", key), make_token("00000001", key)
    fake = "REF:00000003.0000000000000"
    text = f"[{a}] re {fake.lower()} {b.upper()} ({a}) <{fake}> {b}"
    assert [c.number for c in find_candidates(text)] == ["00000002", "00000003", "00000001"]
    found, forged = verified_case_numbers(text, [key])
    assert found == {"00000001", "00000002"}
    assert [str(c) for c in forged] == [fake]


# --- what mail does to it -----------------------------------------------------------------


@given(number=numbers, key=keys, paragraph=paragraphs, position=st.integers(0, 100),
       width=st.integers(28, 120), subject=st.booleans())
def test_survives_line_wrapping(
    number: str, key: bytes, paragraph: list[str], position: int, width: int, subject: bool
) -> None:
    token = make_token(number, key)
    text = _with_token(paragraph, position, subject_tag(token) if subject else token)
    assert _found(textwrap.fill(text, width), key) == {number}
    assert _found(textwrap.fill(text, width - 20, break_long_words=False), key) == {number}


@given(number=numbers, key=keys, paragraph=paragraphs, position=st.integers(0, 100),
       width=st.integers(28, 100), depth=st.integers(1, 3))
def test_survives_quoting(
    number: str, key: bytes, paragraph: list[str], position: int, width: int, depth: int
) -> None:
    token = make_token(number, key)
    wrapped = textwrap.fill(_with_token(paragraph, position, f"Reference: {token}"), width)
    quoted = textwrap.indent(wrapped, ">" * depth + " ")
    assert _found(quoted, key) == {number}
    assert _found(textwrap.indent(quoted, ">"), key) == {number}


@given(number=numbers, key=keys, prefix=st.text(st.characters(codec="utf-8"), max_size=200),
       suffix=st.text(st.characters(codec="utf-8"), max_size=200))
def test_survives_quoted_printable(number: str, key: bytes, prefix: str, suffix: str) -> None:
    token = make_token(number, key)
    body = f"{prefix} {token}\n{suffix}".encode()
    decoded = quopri.decodestring(quopri.encodestring(body)).decode()
    assert token in decoded
    assert _found(decoded, key) == {number}


@settings(deadline=None)
@given(number=numbers, key=keys, offset=st.integers(0, 80), html_part=st.booleans())
def test_survives_a_quoted_printable_mime_part(number: str, key: bytes, offset: int, html_part: bool) -> None:
    """Long lines force soft line breaks (``=`` + CRLF) around and inside the encoded token."""
    token = make_token(number, key)
    line = "é" * offset + f"Ref={token}=end " + "x" * 100
    msg = EmailMessage()
    msg.set_content(line, subtype="html" if html_part else "plain", cte="quoted-printable")
    raw = msg.as_bytes()
    assert b"=\n" in raw or b"=\r\n" in raw
    parsed = BytesParser(policy=email.policy.default).parsebytes(raw)
    body = parsed.get_body()
    assert body is not None
    assert token in body.get_content()
    assert _found(body.get_content(), key) == {number}


@given(number=numbers, key=keys, paragraph=paragraphs, position=st.integers(0, 100))
def test_survives_html_escaping(number: str, key: bytes, paragraph: list[str], position: int) -> None:
    token = make_token(number, key)
    text = _with_token(paragraph, position, f'<"{token}">&amp;\'{token}\'&')
    escaped = html.escape(text)
    document = f"<html><body><p>{escaped}</p><div><b>{token[:4]}</b>{token[4:]}</div></body></html>"
    assert _found(escaped, key) == {number}
    assert _found(document, key) == {number}
    assert _found(html.unescape(escaped), key) == {number}
    assert _found(html_to_text(document, 100_000), key) == {number}


DECORATIONS = [
    "RE:", "AW:", "FW:", "[EXTERNAL]", "Sv:", "Antw:", "TR:", "回复:", "Fwd:", "Re[2]:", "*EXTERNAL*",
]


@given(number=numbers, key=keys, decorations=st.lists(st.sampled_from(DECORATIONS), max_size=8),
       rest=st.text(string.ascii_letters + " ", max_size=40), upper=st.booleans())
def test_survives_decorated_and_upper_cased_subjects(
    number: str, key: bytes, decorations: list[str], rest: str, upper: bool
) -> None:
    token = make_token(number, key)
    subject = " ".join([*decorations, subject_tag(token), f"Case {number}:{rest}"])
    if upper:
        subject = subject.upper()
    assert _found(subject, key) == {number}
    stripped = strip_subject_decorations(subject)
    assert stripped.startswith(subject_tag(token).upper() if upper else subject_tag(token))
    assert _found(stripped, key) == {number}


def test_survives_a_folded_subject_header() -> None:
    key = b"k" * 16
    token = make_token("00012345", key)
    msg = EmailMessage()
    msg["Subject"] = "RE: AW: " + "word " * 30 + subject_tag(token) + " tail " * 20
    raw = msg.as_bytes()
    parsed = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert _found(str(parsed["Subject"]), key) == {"00012345"}
