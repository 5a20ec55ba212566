"""Text from a mail made safe where it enters (gateway.inbound.mail.clean)."""

from __future__ import annotations

from gateway.inbound.mail.clean import clean_line, clean_text, cleaned, short_name
from gateway.inbound.mail.parsed import Attachment, ParsedMail


def test_a_line_loses_controls_and_formatting_and_keeps_the_rest() -> None:
    assert clean_line("a\x00b\x1b[31mc\x7f\x85d\u202eexe.txt\u2066") == "ab[31mcdexe.txt"
    assert clean_line("tab\tand\r\nbreak") == "tab and  break"
    assert clean_line("caf\udcff\ud800") == "caf\ufffd\ufffd"
    assert clean_line("Grüße, 日本語 ✓") == "Grüße, 日本語 ✓"


def test_a_text_keeps_its_lines_and_tabs() -> None:
    assert clean_text("one\r\ntwo\rthree\n\tfour\x00\x0c\x9b") == "one\ntwo\nthree\n\tfour"


def test_every_text_of_a_parsed_mail_is_cleaned() -> None:
    mail = ParsedMail(subject="a\x00b", from_name="Ana\u202e", headers={"x\x01": ("v\x00",)},
                      references=("<a\x00@b>",), text_body="hi\x00\nthere",
                      attachments=(Attachment("f\x00.txt", "text/plain", 1, b"\x00", "00"),))
    clean = cleaned(mail)
    assert (clean.subject, clean.from_name, clean.headers, clean.references) == (
        "ab", "Ana", {"x": ("v",)}, ("<a@b>",))
    assert clean.text_body == "hi\nthere"
    assert clean.attachments[0].filename == "f.txt"
    assert clean.attachments[0].payload == b"\x00"  # bytes are data, not text


def test_a_short_name_is_one_capped_line() -> None:
    assert short_name("  Ana \x00 Silva\r\n ") == "Ana Silva"
    long = short_name("x" * 200_000)
    assert len(long) == 64 and long.endswith("…")
