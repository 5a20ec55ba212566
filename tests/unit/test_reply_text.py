"""Reply text: the fast quote-header scan finds exactly what mail-parser-reply's own scan finds."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mailparser_reply import EmailReplyParser
from mailparser_reply.parser import EmailMessage

from gateway.inbound.reply_text import (
    LANGUAGES,
    LineStartPattern,
    Segments,
    first_line,
    new_text_now,
    strip_signature,
)


def header_pattern() -> re.Pattern[str]:
    pattern: re.Pattern[str] = EmailMessage(text="", languages=list(LANGUAGES)).HEADER_REGEX
    return pattern


def top_level_alternatives(pattern: str) -> list[str]:
    parts, depth, start, i = [], 0, 0, 0
    in_class = False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            parts.append(pattern[start:i])
            start = i + 1
        i += 1
    parts.append(pattern[start:])
    return parts


def test_every_alternative_of_the_installed_pattern_starts_where_the_scan_looks() -> None:
    # LineStartPattern tries the pattern at line starts, newlines and dashes only: a new
    # alternative in a later mail-parser-reply that can start elsewhere must fail here.
    allowed = ("^", "(^", r"((?:(?:^|\n|\n(?:> ?)*)")
    alternatives = top_level_alternatives(header_pattern().pattern)
    assert len(alternatives) > 10
    for alternative in alternatives:
        assert alternative.startswith(allowed), alternative[:80]
        if not alternative.startswith(("^", "(^", r"((?:(?:^|\n|\n(?:> ?)*)[* ]*")):
            # the one optional prefix: "-----Oprindelig meddelelse-----", on a dash
            assert alternative.startswith(r"((?:(?:^|\n|\n(?:> ?)*)?-----"), alternative[:80]


def test_every_alternative_needs_a_colon_or_a_dashed_separator() -> None:
    # LineStartPattern skips positions far from a line with a colon or five dashes: an
    # alternative in a later mail-parser-reply that needs neither must fail here.
    for alternative in top_level_alternatives(header_pattern().pattern):
        body = re.sub(r"^\^\(\?!.*?\)\(", "(", alternative)  # without the negative look-ahead
        assert ":" in body or "-----" in body or "-{5,}" in body, alternative[:80]


LINES = [
    "Thanks, the calls work again.",
    "On Tue, 3 Mar 2026 at 10:00, Care <care@vendor.example> wrote:",
    "On Tue, 3 Mar 2026 at 10:00, Care <care@vendor.example>",
    "wrote:",
    "> On Mon, Ana wrote:",
    "Am 03.03.2026 um 10:00 schrieb Care <care@vendor.example>:",
    "Le mar. 3 mars 2026 à 10:00, Care <care@vendor.example> a écrit :",
    "El mar, 3 mar 2026 a las 10:00, Care escribió:",
    "Il giorno mar 3 mar 2026 alle 10:00 Care ha scritto:",
    "Op di 3 mrt 2026 om 10:00 schreef Care <care@vendor.example>:",
    "2026年3月3日(火) 10:00 Care <care@vendor.example>:",
    "Den tir. 3. mar. 2026 kl. 10.00 skrev Care <care@vendor.example>:",
    "Dnia 3 marca 2026 Care napisał(a):",
    "From: Care <care@vendor.example>", "Sent: Tuesday", "To: Ana", "Subject: Case 00001234",
    "Von: Care", "Gesendet: Dienstag", "An: Ana", "Betreff: Fall",
    "De : Care", "Envoyé : mardi", "De: Care", "Enviado: martes", "Para: Ana",
    "Da: Care", "Inviato: martedì", "Van: Care", "Verzonden: dinsdag", "Aan: Ana",
    "Fra: Care", "Sendt: tirsdag", "Til: Ana", "Emne: Sag", "Från: Care", "Skickat: tisdag",
    "Od: Care", "Wysłano: wtorek", "Do: Ana",
    "-----Oprindelig meddelelse-----", "se -----Oprindelig meddelelse-----",
    "------Oprindelig meddelelse-----",
    "----- Original Message -----", "-----Original Message-----", "- a list item", "--", "-- ",
    "> quoted", ">> > From: x", "* From: x", "", " ", "a - b -- c", "x\u00a0y", "\u200b",
    "12", "maj 2026 kl. 10:00 skrev Care <care@vendor.example>:", "3 mar 2026", "skrev Care:",
    "Den 3. mar. 2026", "\t", "   ", "Am 03.03.2026", "schrieb Care", "<care@vendor.example>:",
    "Thanks for the quick answer.", "The calls drop after 30 seconds, see the log below.",
]


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(LINES) | st.text(alphabet="ab:->- \n\u00e9", max_size=12), max_size=25),
       st.sampled_from(["\n", "\n\n", "\r\n"]))
def test_same_matches_as_a_full_scan(lines: list[str], joiner: str) -> None:
    pattern = header_pattern()
    text = joiner.join(lines)
    assert LineStartPattern(pattern).findall(text) == pattern.findall(text)


SEPARATORS = ["_" * 32, "-" * 40, " " + "_" * 33, "_-" * 16, "_" * 31, "text" + "_" * 32, "  ", "\r"]


@settings(max_examples=800, deadline=None)
@given(st.lists(st.sampled_from(LINES + SEPARATORS), max_size=20), st.sampled_from(["\n", "\r\n"]))
def test_normalised_text_and_reply_split_are_the_librarys(lines: list[str], joiner: str) -> None:
    # Segments skips the library's Outlook-separator substitution where it cannot match
    text = joiner.join(lines)
    ours = Segments(text=text, languages=list(LANGUAGES))
    theirs = EmailMessage(text=text, languages=list(LANGUAGES))
    assert ours.text == theirs.text
    assert ours.read().latest_reply == EmailReplyParser(languages=LANGUAGES).parse_reply(text)


@pytest.mark.parametrize("text", [
    "\n".join(LINES),
    "ok\nse -----Oprindelig meddelelse-----\nFra: a\nTil: b\nok",
    "From: a\nTo: b\nFrom: c\nTo: d\n",
    # headers spread over lines: three non-blank lines between the start and the colon ...
    "ok\nAm\nMontag\nschrieb\nCare\nsagt:\nrest",
    "ok\nOn\nTue\nCare\nwrote:\nrest",
    "ok\nDnia\n3 marca\nCare\nnapisał(a):\nrest",
    # ... or any number of blank lines (the Swedish date's "\s+")
    "ok\n12\n\n\n \n\n\n\n\n\nmaj 2026 skrev Care\nx:\nrest",
    "",
    "-",
    "\n\n\n",
])
def test_same_matches_on_the_odd_cases(text: str) -> None:
    pattern = header_pattern()
    assert LineStartPattern(pattern).findall(text) == pattern.findall(text)


def test_new_text_strips_the_quote_header_and_what_follows() -> None:
    body = ("The agents can log in again, thanks.\n\nAna\n\n"
            "On Tue, 3 Mar 2026 at 10:00, Care <care@vendor.example> wrote:\n> Please try again.\n")
    assert new_text_now(body, "", 10_000) == "The agents can log in again, thanks.\n\nAna"


def test_new_text_of_a_long_reply_keeps_it_whole() -> None:
    words = ("calls drop after thirty seconds on the frankfurt queue " * 3).strip()
    body = "\n".join(f"{n} {words}" for n in range(200))  # ~33 KB, no quote
    assert new_text_now(body, "", 100_000) == body


def test_a_signature_below_the_delimiter_is_cut() -> None:
    body = "The trunk is back, thanks.\n\n-- \nAna Example\nAcme Corp | +49 30 1234\n"
    assert new_text_now(body, "", 10_000) == "The trunk is back, thanks."


def test_sign_offs_and_what_follows_them_are_kept() -> None:
    # mail-parser-reply would cut at "Thanks," and lose the report below it
    body = "Hi team,\nThanks, I tried the fix.\nCalls still drop after 30 s.\nBest regards,\nAna"
    assert new_text_now(body, "", 10_000) == body


@pytest.mark.parametrize(("text", "expected"), [
    ("a\n--\nsig", "a"),
    ("a\n-- \nsig\n--\nsig2", "a\n-- \nsig"),  # the last delimiter starts the signature
    ("--\nonly a signature", "--\nonly a signature"),
    ("a\n--\n" + "\n".join(["line"] * 11), "a\n--\n" + "\n".join(["line"] * 11)),  # too long
    ("a -- b", "a -- b"),
])
def test_strip_signature(text: str, expected: str) -> None:
    assert strip_signature(text) == expected


def test_the_quote_header_scan_is_built_once_for_every_reply() -> None:
    """The library builds its quote-header pattern for each message (every language's
    alternatives joined, a tenth of a reply's time); ours is built once and shared."""
    first = Segments(text="Thanks\n\nOn Mon, Ana wrote:\n> hi", languages=list(LANGUAGES))
    second = Segments(text="Danke\n\nAm Montag schrieb Ana:\n> hallo", languages=list(LANGUAGES))
    assert first._header_regex is second._header_regex
    assert first.read().latest_reply == "Thanks" and second.read().latest_reply == "Danke"


LINE_CHARACTERS = st.sampled_from(
    [*"ab \t\n\r\v\f\x1c\x1d\x1e\x1f\x85\u2028\u2029\xa0", "Escalation Request"]
)


@settings(max_examples=3000, deadline=None)
@given(st.lists(LINE_CHARACTERS, max_size=20).map("".join))
def test_first_line_is_the_first_non_blank_line_splitlines_sees(text: str) -> None:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert first_line(text) == (lines[0] if lines else "")
