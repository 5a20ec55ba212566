"""Reply text: the customer's lines wherever they are, our quoted mail, quote headers and
signatures out; unit level (the fixtures of ``tests/data/replies`` run through the whole
pipeline in ``tests/integration/test_reply_styles.py``)."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.identity import REPLY_MARKER
from gateway.inbound.mail.replies.headers import header_field, is_attribution, separator
from gateway.inbound.mail.replies.html import html_to_quoted_text
from gateway.inbound.mail.replies.sent import SentText
from gateway.inbound.mail.reply_text import extract, first_line

OURS = f"""{REPLY_MARKER}

Dear Ana Alves,

To continue working on case 00012345, we need some more information
from you:

Which software version does your contact center run?
How many agents are affected, and since when?

Please reply to this email with the information requested. If we do not
hear from you within two business days, we will send you a reminder.

Reference:   REF:00012345.abcdefghijklm

--
Portal: https://support.vendor.example"""


def sent() -> SentText:
    found = SentText()
    found.add_text(OURS)
    return found


def quoted(text: str, prefix: str = "> ") -> str:
    return "\n".join(prefix + line if line else prefix.rstrip() for line in text.split("\n"))


def new_text(body: str, html: str = "", compare: bool = True) -> str:
    return extract(body, html, 20_000).settle(sent() if compare else None).text


@pytest.mark.parametrize("line", [
    "On Mon, 2 Nov 2026 at 10:00, Customer Care <care@vendor.example> wrote:",
    "On Mon, Nov 02, 2026 at 10:00:00AM +0000, Customer Care wrote:",
    "Customer Care <care@vendor.example> wrote:",
    "Am 02.11.2026 um 10:00 schrieb Customer Care <care@vendor.example>:",
    "Le lun. 2 nov. 2026 à 10:00, Customer Care <care@vendor.example> a écrit :",
    "El lun, 2 nov 2026 a las 10:00, Customer Care escribió:",
    "Il giorno lun 2 nov 2026 alle ore 10:00 Customer Care ha scritto:",
    "Op ma 2 nov. 2026 om 10:00 schreef Customer Care <care@vendor.example>:",
    "Em seg., 2 de nov. de 2026 às 10:00, Customer Care escreveu:",
    "Den mån 2 nov. 2026 kl 10:00 skrev Customer Care <care@vendor.example>:",
    "W dniu 2.11.2026 o 10:00, Customer Care pisze:",
    "pon., 2 lis 2026 o 10:00 Customer Care <care@vendor.example> napisał(a):",
    "Customer Care wrote on 02/11/2026 10:00:",
    "* Customer Care <care@vendor.example> [2026-11-02 10:00 +0000]:",
    "2026年11月2日(月) 19:00 Customer Care <care@vendor.example>:",
    "[02.11.2026 10:00] Customer Care:",
])
def test_attribution_lines_of_the_common_programs(line: str) -> None:
    assert is_attribution(line, quote_follows=True)


@pytest.mark.parametrize("line", [
    "Here is what the log says:",
    "Thanks, it works again.",
    "We tried the following steps:",
    "x" * 500 + " wrote:",
])
def test_prose_is_no_attribution(line: str) -> None:
    assert not is_attribution(line, quote_follows=True)


def test_a_line_with_a_date_needs_a_quote_below_it() -> None:
    assert not is_attribution("The drops began on 02.11.2026 at 08:00:", quote_follows=False)


@pytest.mark.parametrize(("line", "kind"), [
    ("From: Customer Care <care@vendor.example>", "from"), ("*From:* Care", "from"),
    ("Von: Care", "from"), ("De : Care", "from"), ("Van: Care", "from"), ("Från: Care", "from"),
    ("Sent: Monday", "date"), ("Gesendet: Montag", "date"), ("Envoyé : lundi", "date"),
    ("Date:\t02.11.2026", "date"), ("Enviado el: lunes", "date"),
    ("To: Ana", "to"), ("An: Ana", "to"), ("À : Ana", "to"), ("Aan: Ana", "to"),
    ("Subject: x", "subject"), ("Betreff: x", "subject"), ("Objet : x", "subject"), ("Asunto: x", "subject"),
    ("Oggetto: x", "subject"), ("Onderwerp: x", "subject"), ("件名: x", "subject"),
])
def test_header_block_fields_in_their_languages(line: str, kind: str) -> None:
    found = header_field(line)
    assert found is not None and found.kind == kind


@pytest.mark.parametrize(("line", "kind"), [
    ("-----Original Message-----", "reply"), ("----- Original Message -----", "reply"),
    ("-----Ursprüngliche Nachricht-----", "reply"), ("-----Message d'origine-----", "reply"),
    ("-----Mensaje original-----", "reply"), ("-----Oorspronkelijk bericht-----", "reply"),
    ("---------- Forwarded message ---------", "forward"), ("-------- Forwarded Message --------", "forward"),
    ("-------- Weitergeleitete Nachricht --------", "forward"), ("Begin forwarded message:", "forward"),
    ("Anfang der weitergeleiteten Nachricht:", "forward"), ("Début du message réexpédié :", "forward"),
    ("________________________________", "rule"),
    ("-----Customer Care <care@vendor.example> wrote: -----", "reply"),
    ("--", None), ("-- a list item", None), ("----- nothing here -----", None),
])
def test_separators(line: str, kind: str | None) -> None:
    assert separator(line) == kind


def test_top_posting_keeps_the_answer_only() -> None:
    body = ("Version 4.2, 30 agents.\n\nOn Mon, 2 Nov 2026 at 10:00, Customer Care <\n"
            "care@vendor.example> wrote:\n\n" + quoted(OURS))
    assert new_text(body) == "Version 4.2, 30 agents."


def test_bottom_posting_keeps_the_answer_below_our_quoted_marker() -> None:
    body = "Customer Care wrote:\n" + quoted(OURS) + "\n\nVersion 4.2, 30 agents.\n"
    assert new_text(body, compare=False) == "Version 4.2, 30 agents."


def test_answers_between_our_questions_keep_their_questions_as_context() -> None:
    body = OURS.replace("run?\n", "run?\n\n4.2.1\n\n")
    body = body.replace("when?\n", "when?\n\n30 agents since Monday.\n\n")
    body = "\n".join(line if line in ("4.2.1", "30 agents since Monday.") else ("> " + line).rstrip()
                     for line in body.split("\n"))
    assert new_text(body) == ("> Which software version does your contact center run?\n\n4.2.1\n\n"
                              "> How many agents are affected, and since when?\n\n30 agents since Monday.")


def test_an_answer_typed_into_our_quote_is_kept() -> None:
    # HTML mail programs let the customer type inside the quoted block, under our question
    html = ("<div>Hi,</div><blockquote type=cite>"
            + "".join(f"<p>{line}</p>" for line in OURS.split("\n") if line).replace(
                "run?</p>", "run?</p><p>Release 4.2.1</p>") + "</blockquote>")
    assert new_text("", html) == "Hi,\n> Which software version does your contact center run?\nRelease 4.2.1"
    assert new_text("", html, compare=False) == "Hi,"  # without what we sent: the marker's block is ours


def test_a_rewrapped_quote_is_still_ours() -> None:
    rewrapped = ("> Please reply to this email with the information\n"
                 "> requested. If we do not hear from you within two\n"
                 "> business days, we will send\n> you a reminder.")
    assert new_text("Done.\n\nCare wrote:\n" + rewrapped) == "Done."


def test_quoted_mail_that_is_not_ours_stays_quoted() -> None:
    body = "See Bob's note.\n\nOn Mon, 2 Nov 2026, Bob <bob@acme.example> wrote:\n> Trunk 7 drops too.\n"
    assert new_text(body) == body.strip()


def test_our_unquoted_marker_ends_the_answer_without_our_sent_text() -> None:
    assert new_text("Fixed, thanks.\n\n" + OURS, compare=False) == "Fixed, thanks."


def test_answers_inside_an_unprefixed_quote_are_kept_when_compared() -> None:
    body = ("See below.\n\nFrom: Customer Care <care@vendor.example>\nSent: Monday, 2 November 2026 10:00\n"
            "To: Ana\nSubject: Case 00012345\n\n" + OURS.replace("run?\n", "run?\nRelease 4.2.1\n"))
    assert new_text(body) == (
        "See below.\n\n> Which software version does your contact center run?\nRelease 4.2.1")


def test_a_signature_below_the_delimiter_is_cut() -> None:
    body = "The trunk is back, thanks.\n\n-- \nAna Example\nAcme Corp | +49 30 1234\n"
    assert new_text(body) == "The trunk is back, thanks."


def test_prose_below_a_dashed_line_is_no_signature() -> None:
    body = ("Steps we took:\n--\nWe restarted the session border controller on both sites and the calls "
            "still drop after thirty seconds, every single one of them.")
    assert new_text(body) == body


def test_sign_offs_and_what_follows_them_are_kept() -> None:
    body = "Hi team,\nThanks, I tried the fix.\nCalls still drop after 30 s.\nBest regards,\nAna"
    assert new_text(body) == body


def test_mobile_signature_lines_are_cut() -> None:
    assert new_text("Works now.\n\nSent from my iPhone") == "Works now."
    assert new_text("Geht wieder.\n\nVon meinem iPhone gesendet") == "Geht wieder."


def test_nothing_left_keeps_the_whole_text_flagged() -> None:
    body = "On Mon, 2 Nov 2026, Customer Care <care@vendor.example> wrote:\n" + quoted(OURS)
    found = extract(body, "", 20_000).settle(sent())
    assert found.kept_whole
    assert found.text == body.strip()


def test_html_blockquotes_become_quote_levels() -> None:
    html = ("<div>Answer &amp; more</div><blockquote type=cite><p>level one</p>"
            "<blockquote>level two<br>still two</blockquote><p>one again</p></blockquote><div>after</div>")
    assert html_to_quoted_text(html, 10_000) == (
        "Answer & more\n> level one\n> > level two\n> > still two\n> one again\nafter")


def test_html_only_reply_keeps_its_answer() -> None:
    html = ('<div>Release 4.2.1</div><div class="gmail_quote">On Mon, 2 Nov 2026 at 10:00, Care '
            "&lt;care@vendor.example&gt; wrote:<blockquote>"
            + "".join(f"<p>{line}</p>" for line in OURS.split("\n") if line) + "</blockquote></div>")
    assert new_text("", html) == "Release 4.2.1"


@pytest.mark.parametrize("body", [
    "-" * 1_000_000,
    ("x: " * 300_000),
    ("> " * 200_000 + "a\n") * 3,
    "On " + "a " * 300_000 + "wrote:\n> x",
    ("From: a\n" * 50_000),
    "On Mon 2 Nov 2026 Care wrote:\n> a" + "\n" * 19_000 + "> b",  # blank lines inside a quote
    "wrote:\n" * 3_000,  # a header on every line
    ("-----Original Message-----\n" + "\n" * 5) * 600,
    "-- Please reply above this line --\n" * 700,
    ("-" * 299 + "\n") * 70,
])
def test_hostile_text_is_read_quickly(body: str) -> None:
    started = time.perf_counter()
    extract(body, "", 20_000).settle(sent())
    extract("", body.replace("\n", "<br>"), 20_000).settle(None)
    assert time.perf_counter() - started < 1.0


WORDS = ["the", "trunk", "agents", "drop", "since", "monday", "we", "see", "it", "4.2"]
CUSTOMER = st.lists(st.sampled_from(WORDS), min_size=1, max_size=8).map(
    lambda words: " ".join(words).capitalize() + ".")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(OURS.split("\n"))), CUSTOMER), max_size=6),
       st.sampled_from(["> ", ">", ">> ", "> > "]))
def test_every_customer_line_is_kept_in_order_wherever_it_is(
        answers: list[tuple[int, str]], prefix: str) -> None:
    lines = [("", prefix + line) for line in OURS.split("\n")]
    for position, answer in sorted(answers, key=lambda a: -a[0]):
        lines.insert(position, (answer, answer))
    body = "\n".join(text for _, text in lines)
    found = extract(body, "", 20_000).settle(sent())
    mine = [answer for answer, _ in lines if answer]
    if not mine:
        assert found.kept_whole
        return
    assert [line for line in found.text.split("\n") if line and not line.startswith(">")] == mine


OUTLOOK_HEADER = ("From: Customer Care <care@vendor.example>\nSent: Monday, 2 November 2026 10:00\n"
                  "To: Ana Alves <ana@acme.example>\nSubject: Case 00012345\n\n")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(OURS.split("\n"))), CUSTOMER), max_size=6),
       st.sampled_from(["", "\t", "  "]))
def test_every_customer_line_in_an_unprefixed_quote_is_kept_in_order(
        answers: list[tuple[int, str]], indent: str) -> None:
    # Outlook, Notes, mailx's tab: our mail below a header block or indented, answers between its lines
    lines = [("", indent + line if line else "") for line in OURS.split("\n")]
    for position, answer in sorted(answers, key=lambda a: -a[0]):
        lines.insert(position, (answer, answer))
    body = "Top answer.\n\n" + OUTLOOK_HEADER + "\n".join(text for _, text in lines)
    found = extract(body, "", 20_000).settle(sent())
    mine = ["Top answer.", *(answer for answer, _ in lines if answer)]
    assert [line for line in found.text.split("\n") if line and not line.startswith(">")] == mine


LINE_CHARACTERS = st.sampled_from(
    [*"ab \t\n\r\v\f\x1c\x1d\x1e\x1f\x85\u2028\u2029\xa0", "Escalation Request"]
)


@settings(max_examples=3000, deadline=None)
@given(st.lists(LINE_CHARACTERS, max_size=20).map("".join))
def test_first_line_is_the_first_non_blank_line_splitlines_sees(text: str) -> None:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert first_line(text) == (lines[0] if lines else "")
