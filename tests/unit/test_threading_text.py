"""Subject decoding, subject decorations and HTML text: correct on the odd cases, never raising."""

from __future__ import annotations

import base64
import email.policy
import html
from email.message import EmailMessage
from email.parser import BytesParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.threading.text import decode_subject, html_to_text, strip_subject_decorations


def _b(data: bytes, charset: str = "UTF-8") -> str:
    return f"=?{charset}?B?{base64.b64encode(data).decode()}?="


def _q(data: bytes, charset: str = "utf-8") -> str:
    return f"=?{charset}?Q?{''.join(f'={b:02X}' for b in data)}?="


# --- decode_subject -----------------------------------------------------------------------


def test_plain_subject_is_unchanged_but_unfolded() -> None:
    assert decode_subject("Case 00012345:\r\n  printer\n\ton fire") == "Case 00012345:  printer\ton fire"


@pytest.mark.parametrize("text", ["é", "中", "😀", "café 中文"])
def test_character_split_across_encoded_words(text: str) -> None:
    data = text.encode()
    for cut in range(1, len(data)):
        raw = f"{_b(data[:cut])}\r\n {_b(data[cut:], 'utf-8')}"
        assert decode_subject(raw) == text
        assert decode_subject(f"Re: {_q(data[:cut])} {_q(data[cut:], 'UTF-8')} x") == f"Re: {text} x"


def test_mixed_charsets() -> None:
    raw = (
        f"{_q('café'.encode('iso-8859-1'), 'iso-8859-1')} {_b('Привет'.encode('koi8-r'), 'koi8-r')}"
        f" and {_b('中文'.encode('gb2312'), 'gb2312')}{_b('日本'.encode('iso-2022-jp'), 'iso-2022-jp')}"
    )
    assert decode_subject(raw) == "caféПривет and 中文日本"


def test_words_in_one_stateful_charset_are_joined_before_decoding() -> None:
    text = "日本語のテキスト"
    data = text.encode("iso-2022-jp")
    assert decode_subject(f"{_b(data[:7], 'ISO-2022-JP')} {_b(data[7:], 'iso-2022-jp')}") == text


def test_outlook_charset_labels_mean_what_outlook_means() -> None:
    assert decode_subject(_b("똠방각하".encode("cp949"), "ks_c_5601-1987")) == "똠방각하"
    assert decode_subject(_q("€ price".encode("cp1252"), "iso-8859-1")) == "€ price"


@pytest.mark.parametrize("charset", ["x-unknown", "unknown-8bit", "base64", "rot13", "idna", "utf-8*en"])
def test_unknown_or_non_text_charset_falls_back_to_utf8(charset: str) -> None:
    assert decode_subject(f"{_b('naïve'.encode(), charset)} ok") == "naïve ok"


def test_invalid_bytes_become_replacement_characters() -> None:
    assert decode_subject(_b(b"ok \xff\xfe end")) == "ok \ufffd\ufffd end"


def test_broken_base64_is_kept_as_text_and_bad_padding_is_forgiven() -> None:
    assert decode_subject("Re: =?utf-8?B?w6k*!!?= x") == "Re: =?utf-8?B?w6k*!!?= x"
    assert decode_subject("=?utf-8?B?w6k?=") == "é"
    assert decode_subject("=?utf-8?B?w6kx=?=") == "é1"
    assert decode_subject("=?utf-8?B?w6lhY?=") == "éa"


def test_q_encoding_underscores_and_malformed_escapes() -> None:
    assert decode_subject("=?utf-8?q?a_b=3Dc=ZZ?=") == "a b=c=ZZ"


def test_whitespace_between_encoded_word_and_text_is_kept() -> None:
    assert decode_subject(f"Re: {_b(b'a')} b {_b(b'c')}  {_b(b'd')}") == "Re: a b cd"


def test_encoded_line_breaks_and_controls_become_spaces() -> None:
    assert decode_subject(_q(b"a\r\nBcc: x@y\x00z")) == "a  Bcc: x@y z"


def test_surrogate_escaped_raw_bytes_are_read_as_utf8() -> None:
    raw = "Réponse".encode().decode("ascii", "surrogateescape")
    assert decode_subject(raw) == "Réponse"
    assert decode_subject("\ud800 x") == "? x"


@settings(max_examples=300)
@given(text=st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Zl", "Zp"]), max_size=60),
       cuts=st.lists(st.integers(1, 200), max_size=6), folded=st.booleans())
def test_any_text_split_anywhere_round_trips(text: str, cuts: list[int], folded: bool) -> None:
    data = text.encode()
    points = sorted({c for c in cuts if c < len(data)})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True) if data[a:b]]
    raw = ("\r\n " if folded else " ").join(_b(c) for c in chunks)
    assert decode_subject(raw) == text.strip()


@settings(max_examples=300, deadline=None)
@given(text=st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs", "Zl", "Zp"]), max_size=200))
def test_round_trips_through_the_email_package(text: str) -> None:
    msg = EmailMessage()
    msg["Subject"] = text
    raw_value = BytesParser(policy=email.policy.compat32).parsebytes(msg.as_bytes())["Subject"]
    assert decode_subject(raw_value).split() == text.split()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "raw",
    ["=?" + "a" * 1_000_000, "=?a=?" * 200_000, "=?x?b?" * 150_000, "=?x?q?" + "=" * 1_000_000,
     "=?utf-8?b?w6k=?= x " * 50_000, "=?utf-8?q?" + "=C3=A9" * 150_000 + "?=", "\r\n " * 300_000],
)
def test_a_megabyte_subject_is_linear(raw: str) -> None:
    assert "\n" not in decode_subject(raw)


@given(raw=st.text(st.sampled_from(list("=?bBqQ_ \r\n\tabcé中=?utf-8?b?x-unknown"))
                   ) | st.text(max_size=300))
def test_never_raises(raw: str) -> None:
    result = decode_subject(raw)
    assert "\n" not in result and "\r" not in result


# --- strip_subject_decorations ------------------------------------------------------------


@pytest.mark.parametrize(
    "subject",
    [
        "RE: Printer", "Re: Printer", "re:Printer", "RE : Printer", "AW: Printer", "FW: Printer",
        "Fwd: Printer", "WG: Printer", "TR: Printer", "SV: Printer", "VS: Printer", "Antw: Printer",
        "R: Printer", "RIF: Printer", "回复: Printer", "回复：Printer", "答复: Printer", "転送: Printer",
        "[EXTERNAL] Printer", "[External] Printer", "*EXTERNAL* Printer", "Re[2]: Printer",
        "RE(3): Printer", "Re^2: Printer", "RE: AW: FW: [EXTERNAL] Sv: Antw: TR: 回复: Printer",
        "  re: RE:Re: fwd:FW:  Printer", "[External Sender] Odp: ΑΠ: Отв: Printer", "[SPAM] Printer",
    ],
)
def test_strips_leading_decorations(subject: str) -> None:
    assert strip_subject_decorations(subject) == "Printer"


@pytest.mark.parametrize(
    "subject",
    [
        "[REF:00012345.k3j9x2m7q4w8a] Printer", "Printer RE: again", "Report: Q3",
        "Reply needed", "Free: offer", "Resolution", "[INTERNAL] Printer", "",
    ],
)
def test_keeps_what_is_not_a_decoration(subject: str) -> None:
    assert strip_subject_decorations(subject) == subject.strip()


def test_strips_before_a_token_and_keeps_it() -> None:
    subject = "RE: AW: [EXTERNAL] [REF:00012345.k3j9x2m7q4w8a] Case 00012345: Re: Printer"
    assert strip_subject_decorations(subject) == "[REF:00012345.k3j9x2m7q4w8a] Case 00012345: Re: Printer"


@pytest.mark.timeout(60)
def test_many_decorations_and_long_blank_runs_are_cheap() -> None:
    """Backtracking over a run of spaces would be quadratic; the per-test timeout catches it."""
    assert strip_subject_decorations("Re: " * 100_000 + "x") == "x"
    assert strip_subject_decorations("Re" + " " * 1_000_000 + "x").endswith("x")
    assert strip_subject_decorations("[" + " " * 1_000_000 + "external x").startswith("[")
    assert strip_subject_decorations("*" * 1_000_000 + "x").endswith("x")


# --- html_to_text -------------------------------------------------------------------------


def test_visible_text_only() -> None:
    page = """<!DOCTYPE html><html><head><title>Secret title</title>
    <style>p { color: red }</style><script>var REF = "x";</script></head>
    <body><!-- hidden comment --><p>Hello&nbsp;<b>World</b> &amp; friends</p>
    <div>Line 2<br>Line 3</div><table><tr><td>a</td><td>b</td></tr></table>
    <blockquote>quoted</blockquote> a &lt; b and c > d</body></html>"""
    assert html_to_text(page, 1000) == (
        "Hello World & friends\n\nLine 2\nLine 3\n\na b\n\nquoted\na < b and c > d"
    )


def test_inline_tags_do_not_split_words() -> None:
    assert html_to_text("<p><span>REF:</span><b>00012345</b>.<i>k3j9x2m7q4w8a</i></p>", 100) == (
        "REF:00012345.k3j9x2m7q4w8a"
    )


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        ("text <b>bold", "text bold"),
        ("before <a href='x' unclosed tag", "before"),
        ("before <!-- never closed <p>hidden", "before"),
        ("x <script>never closed", "x"),
        ("a < b <3 <<>> </", "a < b <3 <<>> </"),
        ("<p>one</P><P>two</p ><div><div><p>three", "one\n\ntwo\n\nthree"),
        ("&bogus; &#xZZ; &#99999999; &amp", "&bogus; &#xZZ; \ufffd &"),
        ("", ""),
    ],
)
def test_broken_html(broken: str, expected: str) -> None:
    assert html_to_text(broken, 1000) == expected


def test_max_chars() -> None:
    assert html_to_text("<p>" + "abc " * 100, 10) == "abc abc ab"
    assert html_to_text("<p>abc</p>", 0) == ""


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "unit",
    ["<!--", "<a", "<script", "</script", "<", "<p>x", "<a b='", "&amp;", "&#", "a ", "<!--<script>-->",
     "<style>", "\n", "<br", "x" * 1000, "</"],
)
def test_a_megabyte_on_one_line_is_linear(unit: str) -> None:
    """A quadratic pass over these would take hours; the per-test timeout catches it."""
    big = unit * (1_000_000 // len(unit))
    assert len(html_to_text(big, 200_000)) <= 200_000
    assert len(html_to_text("<p>" + big + "REF:00012345.k3j9x2m7q4w8a", 200_000)) <= 200_000


@given(text=st.text(max_size=500), max_chars=st.integers(0, 600))
def test_never_raises_and_respects_max_chars(text: str, max_chars: int) -> None:
    assert len(html_to_text(text, max_chars)) <= max_chars


@given(text=st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), max_size=200))
def test_escaped_text_comes_back(text: str) -> None:
    """Plain words survive escaping and extraction, up to whitespace."""
    assert html_to_text(f"<p>{html.escape(text)}</p>", 10_000).split() == text.split()
