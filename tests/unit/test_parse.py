"""parse_message: the fields it promises, the limits it enforces, and that hostile input never
raises anything but MessageRejected."""

from __future__ import annotations

import email
import pickle
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import mailparser
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config import LimitSettings
from gateway.errors import MessageRejected
from gateway.inbound.mail import parse as parse_module
from gateway.inbound.mail.parse import MAX_PARTS, fingerprint, parse_message
from gateway.inbound.mail.parsed import ParsedMail

DATA = Path(__file__).parents[1] / "data" / "mail"
LIMITS = LimitSettings()


def parse(raw: bytes, **limits: int) -> ParsedMail:
    return parse_message(raw, LimitSettings(**limits) if limits else LIMITS)


SIMPLE = (
    b"Return-Path: <Alice@Customer.example>\r\n"
    b"From: =?utf-8?q?Al=C3=AFce?= <Alice@Customer.EXAMPLE>\r\n"
    b"To: care@example.com, Bob <bob@x.example>\r\n"
    b"Cc: undisclosed-recipients:;\r\n"
    b"Subject: =?utf-8?b?UmU6IFtDQVNFLTFdIMOpdMOp?=\r\n"
    b"Date: Mon, 9 Mar 2026 10:15:00 +0100\r\n"
    b"Message-ID: <abc@customer.example>\r\n"
    b"In-Reply-To: <ours-1@example.com>\r\n"
    b"References: <ours-0@example.com>\r\n <ours-1@example.com>\r\n"
    b"Authentication-Results: mx.example.com;\r\n dmarc=pass\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n"
    b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello \xc3\xa9t\xc3\xa9\r\n"
    b"--XX\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Hello</p>\r\n"
    b"--XX\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"../../a.pdf\"\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--XX--\r\n"
)


def test_fields_of_an_ordinary_message() -> None:
    mail = parse(SIMPLE)
    assert mail.message_id == "<abc@customer.example>"
    assert mail.in_reply_to == ("<ours-1@example.com>",)
    assert mail.references == ("<ours-0@example.com>", "<ours-1@example.com>")
    assert (mail.from_address, mail.from_name) == ("alice@customer.example", "Alïce")
    assert mail.return_path == "alice@customer.example"
    assert mail.to_addresses == ("care@example.com", "bob@x.example")
    assert mail.cc_addresses == ()
    assert mail.subject == "Re: [CASE-1] été"
    assert mail.raw_subject == "=?utf-8?b?UmU6IFtDQVNFLTFdIMOpdMOp?="
    assert mail.date == datetime(2026, 3, 9, 9, 15, tzinfo=UTC)
    assert mail.headers["authentication-results"] == ("mx.example.com; dmarc=pass",)
    assert mail.text_body.strip() == "Hello été"
    assert mail.html_body.strip() == "<p>Hello</p>"
    [attachment] = mail.attachments
    assert (attachment.filename, attachment.content_type) == ("a.pdf", "application/pdf")
    assert attachment.payload == b"%PDF-1.4\n" and attachment.size == 9
    assert (mail.mime_depth, mail.part_count, mail.content_type) == (1, 4, "multipart/mixed")
    assert mail.bounce is None


def test_result_pickles_for_the_worker_process() -> None:
    mail = parse(SIMPLE)
    assert pickle.loads(pickle.dumps(mail)) == mail


def test_null_return_path_and_missing_headers() -> None:
    mail = parse(b"Return-Path: <>\r\nSubject: x\r\n\r\nbody")
    assert mail.return_path == "" and mail.from_address == "" and mail.message_id is None
    assert parse(b"Subject: x\r\n\r\nbody").return_path is None


def test_naive_date_is_utc_and_bad_date_is_none() -> None:
    naive = parse(b"Date: Mon, 9 Mar 2026 10:15:00 -0000\r\n\r\n")
    assert naive.date == datetime(2026, 3, 9, 10, 15, tzinfo=UTC)
    assert parse(b"Date: Mon, 9 Mar 2026 10:15:00 +0530\r\n\r\n").date == datetime(
        2026, 3, 9, 10, 15, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    assert parse(b"Date: yesterday-ish\r\n\r\n").date is None


def test_message_id_without_brackets_gets_them() -> None:
    assert parse(b"Message-ID: abc@x.example\r\n\r\n").message_id == "<abc@x.example>"


def test_eight_bit_headers_are_decoded() -> None:
    mail = parse("Subject: Grüße\r\nFrom: Jörg <j@x.example>\r\n\r\n".encode())
    assert mail.subject == "Grüße" and mail.from_name == "Jörg"
    assert parse("Subject: Gr\xfc\xdfe\r\n\r\n".encode("latin-1")).subject == "Grüße"


def test_leading_blank_line_and_cr_only_line_endings() -> None:
    blank = parse(b"\r\nFrom: a@x.example\r\nSubject: hi\r\n\r\nbody\r\n")
    assert blank.from_address == "a@x.example" and blank.subject == "hi"
    assert any("leading blank" in d for d in blank.defects)
    cr = parse(b"From: a@x.example\rSubject: hi\r\rbody\r")
    assert (cr.from_address, cr.subject, cr.text_body.strip()) == ("a@x.example", "hi", "body")


def test_hostile_fixture_with_unknown_charsets_and_bad_filename() -> None:
    mail = parse((DATA / "hostile_mixed.eml").read_bytes())
    assert mail.subject == "斟是测吃 test"  # X-GBK read as GBK
    assert mail.to_addresses == ()
    assert [a.payload for a in mail.attachments] == [b"\x00\x01\x02\x03\x04"]


@pytest.mark.parametrize("raw", [SIMPLE, *(path.read_bytes() for path in sorted(DATA.glob("*.eml")))])
def test_mail_parser_without_its_summary_finds_the_same_parts_and_defects(raw: bytes) -> None:
    """(These fixtures' address headers are well-formed: see the next test for those that are not.)"""
    ours, theirs = parse_module._MailParser(email.message_from_bytes(raw)), mailparser.parse_from_bytes(raw)
    assert theirs.mail and ours.mail == {}  # the summary is not built
    assert (ours.text_plain, ours.text_html, ours.attachments, ours.defects) == (
        theirs.text_plain, theirs.text_html, theirs.attachments, theirs.defects)


def test_mail_parser_does_not_parse_the_address_headers_a_second_time() -> None:
    """We parse addresses ourselves; mail-parser's own pass over them (for properties we do
    not read) is skipped, and with it only its notes on malformed address headers."""
    raw = b'From: Ana <ana@x.example>, "x" <<@>\r\nTo: bob@y.example, <>\r\nSubject: hi\r\n\r\nbody\r\n'
    ours, theirs = parse_module._MailParser(email.message_from_bytes(raw)), mailparser.parse_from_bytes(raw)
    assert theirs._address_headers and ours._address_headers == {} and ours._header_index == {}
    assert [d for d in theirs.defects if "address-headers" not in d] == ours.defects
    assert (ours.text_plain, ours.attachments) == (theirs.text_plain, theirs.attachments)
    mail = parse(raw)
    assert (mail.from_address, mail.to_addresses) == ("", ("bob@y.example",))
    assert mail.sender_problem  # two entries in From: no single sender


def test_mail_parser_failure_falls_back_to_the_stdlib(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(message: object) -> None:
        raise AttributeError("'NoneType' object has no attribute 'index'")

    monkeypatch.setattr(parse_module, "_MailParser", broken)
    mail = parse(SIMPLE)
    assert mail.text_body.strip() == "Hello été" and mail.html_body.strip() == "<p>Hello</p>"
    assert [(a.filename, a.payload) for a in mail.attachments] == [("a.pdf", b"%PDF-1.4\n")]
    assert any("mail-parser failed" in d for d in mail.defects)


def test_stdlib_failure_falls_back_to_a_minimal_split(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(raw: bytes) -> None:
        raise ValueError("boom")

    monkeypatch.setattr(email, "message_from_bytes", broken)
    mail = parse(b"From: A <a@x.example>\r\nSubject: hi\r\n there\r\n\r\nthe body\r\n")
    assert (mail.from_address, mail.subject, mail.text_body) == ("a@x.example", "hi there", "the body\n")
    assert any("stdlib parser failed" in d for d in mail.defects)


def _nested(depth: int) -> bytes:
    inner = b"Content-Type: text/plain\r\n\r\nleaf\r\n"
    for _ in range(depth):
        inner = b"Content-Type: message/rfc822\r\n\r\n" + inner
    return b"From: a@x.example\r\n" + inner


def test_nesting_within_the_limit_parses_and_beyond_is_rejected() -> None:
    assert parse(_nested(9)).mime_depth == 9
    with pytest.raises(MessageRejected, match="MIME depth"):
        parse(_nested(11))
    with pytest.raises(MessageRejected, match="nested too deeply"):
        parse(_nested(3000), max_mime_depth=5000)


def _multipart(parts: list[bytes]) -> bytes:
    body = b"".join(b"--B\r\n" + p + b"\r\n" for p in parts)
    return b"Content-Type: multipart/mixed; boundary=B\r\n\r\n" + body + b"--B--\r\n"


def _attached(name: str, data: bytes = b"x") -> bytes:
    return (f'Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="{name}"'
            "\r\n\r\n").encode() + data


def test_attachment_limits() -> None:
    with pytest.raises(MessageRejected, match="more than 2 attachments"):
        parse(_multipart([_attached(f"{i}.bin") for i in range(3)]), max_attachments=2)
    with pytest.raises(MessageRejected, match="over the limit of 10"):
        parse(_multipart([_attached("big.bin", b"y" * 11)]), max_attachment_bytes=10)
    assert len(parse(_multipart([_attached("ok.bin", b"y" * 10)]), max_attachment_bytes=10).attachments) == 1


def test_message_size_and_part_count_limits() -> None:
    with pytest.raises(MessageRejected, match="over the limit"):
        parse(b"x" * 2048, max_message_bytes=1024)
    with pytest.raises(MessageRejected, match=f"more than {MAX_PARTS} MIME parts"):
        parse(_multipart([b"Content-Type: text/plain\r\n\r\nx"] * (MAX_PARTS + 1)))


@pytest.mark.parametrize("raw", [
    b"Content-Type: message/delivery-status\r\n\r\n" + b"A: b\n\n" * 1_000_000,
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--b\r\n\r\n" * 1_000_000,
])
def test_part_floods_are_refused_before_the_stdlib_builds_them(raw: bytes) -> None:
    with pytest.raises(MessageRejected, match="MIME parts"):
        parse(raw)


def test_big_inputs_stay_within_bounds() -> None:
    many = parse(_multipart([b"Content-Type: text/plain\r\n\r\npart"] * 400))
    assert many.part_count == 401 and many.text_body.count("part") == 400
    long_line = parse(b"Subject: long\r\n\r\n" + b"a" * 1_000_000)
    assert len(long_line.text_body) == 1_000_000
    header_block = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"v" * 100) for i in range(5000))
    assert len(parse(header_block + b"From: a@x.example\r\n\r\nbody").headers) == 5001


@pytest.mark.parametrize("raw", [
    b"", b"\r\n", b"\n\n\n", b"\x00\xff\xfe", b"no headers at all", b"From:\r\n\r\n", b":\r\n\r\n",
    b"To: unlisted-recipients:;\r\nFrom: <>\r\n\r\n", b"Content-Type: multipart/mixed\r\n\r\n--\r\n",
    b"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n----\r\n",
    b"Content-Type: text/plain; charset=unknown-8bit\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!",
    b"Content-Type: text/plain; charset=base64\r\n\r\nx", b"Subject: =?rot13?q?abc?= =?utf-8?b?###?=\r\n\r\n",
    b"Content-Type: message/rfc822\r\n\r\n", b"Content-Type: message/delivery-status\r\n\r\nAction: failed",
    b"\r\n" * 5000 + b"x", b" \r\n\r" * 5000 + b"Subject: x\r\n\r\n",
])
def test_degenerate_inputs_parse(raw: bytes) -> None:
    assert isinstance(parse(raw), ParsedMail)


_HEADER_NAMES = st.sampled_from(["From", "To", "Subject", "Content-Type", "Content-Transfer-Encoding",
                                 "Content-Disposition", "Message-ID", "Return-Path", "Date", "X-Junk"])
_VALUES = st.one_of(st.binary(max_size=60), st.sampled_from([
    b"multipart/mixed; boundary=b", b"multipart/report; report-type=delivery-status; boundary=b",
    b"message/rfc822", b"text/plain; charset=x-gbk", b"base64", b"quoted-printable",
    b"attachment; filename*=utf-8''%E2%82", b"=?iso-2022-jp?b?GyRCJUYlOSVI?=", b"<>", b"MAILER-DAEMON",
]))
_MESSAGES = st.builds(
    lambda headers, body: b"".join(n.encode() + b": " + v + b"\r\n" for n, v in headers) + b"\r\n" + body,
    st.lists(st.tuples(_HEADER_NAMES, _VALUES), max_size=8),
    st.one_of(st.binary(max_size=300), st.lists(st.sampled_from([
        b"--b\r\n", b"--b--\r\n", b"Content-Type: message/rfc822\r\n\r\n", b"Action: failed\r\n",
        b"Final-Recipient: rfc822; a@b.example\r\n", b"\r\n", b"=?utf-8?q?x?=", b"\xff\xfe",
    ]), max_size=30).map(b"".join)),
)
_SMALL = LimitSettings(max_attachments=3, max_attachment_bytes=100, max_mime_depth=3, max_message_bytes=4096)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.one_of(st.binary(max_size=2000), _MESSAGES), small=st.booleans())
def test_arbitrary_bytes_never_raise_anything_but_rejection(raw: bytes, small: bool) -> None:
    try:
        mail = parse_message(raw, _SMALL if small else LIMITS)
    except MessageRejected:
        return
    assert pickle.loads(pickle.dumps(mail)) == mail


def test_the_fingerprint_is_what_the_sender_wrote_not_the_delivery() -> None:
    base = b"From: Ana <ana@acme.example>\r\nSubject: Logs\r\nMessage-ID: <1@acme.example>\r\n\r\nHere.\r\n"
    first = parse_message(b"Received: from a by b\r\nDelivered-To: care@vendor.example\r\n" + base,
                          LimitSettings())
    second = parse_message(b"Received: from c by d\r\nDelivered-To: help@vendor.example\r\n" + base,
                           LimitSettings())
    other = parse_message(base.replace(b"Here.", b"There."), LimitSettings())
    assert first.fingerprint == second.fingerprint == fingerprint(first)
    assert other.fingerprint != first.fingerprint


def test_a_header_line_that_is_no_header_is_dropped_not_taken_for_the_body() -> None:
    raw = (b"From: ana@x.example\r\nX Bad: 1\r\nSubject: hi\r\nContent-Type: multipart/mixed; boundary=B\r\n"
           b"\r\n--B\r\nContent-Type: text/plain\r\n\r\nThe text.\r\n--B--\r\n")
    mail = parse(raw)
    assert (mail.subject, mail.text_body.strip()) == ("hi", "The text.")
    assert any("no header dropped" in d for d in mail.defects)


_UNSAFE = "".join(chr(c) for c in [*range(0x00, 0x09), *range(0x0b, 0x20), *range(0x7f, 0xa0), 0x202e])
_UNSAFE += "\udcff"


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=80), st.text(max_size=40), st.binary(max_size=40))
def test_no_text_of_any_mail_holds_a_control_character(subject: bytes, name: str, filename: bytes) -> None:
    quoted = name.encode("utf-8", "surrogatepass").replace(b"\\", b"").replace(b'"', b"")
    raw = (b'From: "' + quoted + b'" <a@x.example>\r\nSubject: ' + subject.replace(b"\n", b" ") +
           b"\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\n"
           b"text\x00\x1b\r\n--B\r\nContent-Disposition: attachment; filename=\"" +
           filename.replace(b'"', b"").replace(b"\n", b"") + b"\"\r\n\r\nAAAA\r\n--B--\r\n")
    mail = parse(raw)
    texts = [mail.subject, mail.raw_subject, mail.from_name, mail.from_address, mail.sender_problem,
             *(v for values in mail.headers.values() for v in values), *mail.headers,
             *(a.filename for a in mail.attachments), *mail.defects]
    for text in texts:
        assert not any(c in _UNSAFE for c in text), repr(text)
    assert not any(c in _UNSAFE for c in mail.text_body.replace("\n", "").replace("\t", ""))
