"""Message bytes: round trips through the stdlib parser, header safety, fan-out."""

from __future__ import annotations

import email
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import InvalidValue
from gateway.identity import LOOP_HEADER
from gateway.outbound.compose import (
    MAX_REFERENCES,
    assemble,
    clean_references,
    compose,
    compose_body,
    compose_headers,
)
from gateway.outbound.kinds import MailKind
from gateway.outbound.render import Rendered, Renderer, one_line
from testkit.mail_samples import BRANDING, sample_context

DATE = datetime(2026, 12, 1, 14, 0, tzinfo=timezone(timedelta(hours=1)))
EXPECTED_HEADERS = {
    "date", "from", "to", "reply-to", "subject", "message-id", "x-auto-response-suppress",
    LOOP_HEADER.lower(), "mime-version", "content-type",
}


def _compose(rendered: Rendered, **overrides: Any) -> bytes:
    args: dict[str, Any] = {
        "kind": MailKind.CARE_REPLY,
        "from_address": "care@acme.test",
        "from_name": "Acme Customer Care",
        "reply_to": "care@acme.test",
        "to": [("Alice Example", "alice@customer.test")],
        "message_id": "<0123abcd.cg@acme.test>",
        "date": DATE,
        "id_domain": "acme.test",
    }
    args.update(overrides)
    return compose(rendered, **args)


def _parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def _bodies(msg: EmailMessage) -> tuple[str, str]:
    plain, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert plain is not None and html is not None
    return (
        plain.get_content().replace("\r\n", "\n"),
        html.get_content().replace("\r\n", "\n"),
    )


def _header_lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(BRANDING, None)


@pytest.mark.parametrize("kind", list(MailKind))
def test_round_trip_every_kind(renderer: Renderer, kind: MailKind) -> None:
    rendered = renderer.render(kind, sample_context(kind))
    raw = _compose(rendered, kind=kind, in_reply_to="<in@customer.test>",
                   references=["<first@customer.test>", "<in@customer.test>"])
    assert raw.isascii() and b"\n" not in raw.replace(b"\r\n", b"")
    msg = _parse(raw)
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["Subject"] == rendered.subject
    assert _bodies(msg) == (rendered.text, rendered.html)
    assert msg["Message-ID"] == "<0123abcd.cg@acme.test>"
    assert msg["In-Reply-To"] == "<in@customer.test>"
    assert msg["References"] == "<first@customer.test> <in@customer.test>"
    assert msg[LOOP_HEADER] == "acme.test"
    assert msg["Auto-Submitted"] == kind.spec.auto_submitted
    assert msg["X-Auto-Response-Suppress"] == "OOF, AutoReply"
    assert msg["Precedence"] is None
    assert msg["Date"].datetime == DATE
    assert not msg.defects
    assert all(len(line) <= 78 for line in _header_lines(raw))


def test_non_ascii_everywhere_and_long_lines() -> None:
    subject = "[REF:00012345-abc] Störung: 電話が切れる 🎉 Ärger mit Übergabe — bitte prüfen"
    text = "Grüße aus München\n" + "ä" * 1500 + "\n" + "y" * 3000 + "\n日本語のテキスト 👍\n"
    html = "<p>Grüße &amp; 電話</p>\n<p>" + "z" * 2500 + "</p>\n"
    raw = _compose(Rendered(subject, text, html), from_name="Jürgen Müller — Care 日本",
                   to=[("José Ñandú", "jose@customer.test"), ("Zoë 🐱", "zoe@customer.test")])
    assert raw.isascii()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    msg = _parse(raw)
    assert msg["Subject"] == subject
    assert _bodies(msg) == (text, html)
    assert msg["From"].addresses[0].display_name == "Jürgen Müller — Care 日本"
    names = [a.display_name for a in msg["To"].addresses]
    assert names == ["José Ñandú", "Zoë 🐱"]


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Plain ASCII text.\n", "7bit"),
        ("A line that is far too long: " + "x" * 1200 + "\n", "quoted-printable"),
        ("Grüße aus München, please check the agent desktop logs again.\n", "quoted-printable"),
        ("日本語のテキストです。よろしくお願いします。\n", "base64"),
        ("NUL \x00 and bell \x07\n", "quoted-printable"),
    ],
)
def test_transfer_encoding_choice(text: str, encoding: str) -> None:
    msg = _parse(_compose(Rendered("s", text, "<p>x</p>\n")))
    plain = msg.get_body(("plain",))
    assert plain is not None
    assert plain["Content-Transfer-Encoding"] == encoding
    assert plain.get_content().replace("\r\n", "\n") == text


def test_line_endings_are_normalised() -> None:
    msg = _parse(_compose(Rendered("s", "a\r\nb\rc\nd", "<p>\r\n</p>")))
    assert _bodies(msg) == ("a\nb\nc\nd\n", "<p>\n</p>\n")


def test_hostile_subject_and_names_cannot_inject_headers() -> None:
    evil = "x\r\nBcc: evil@attacker.test\r\n\r\nbody"
    raw = _compose(
        Rendered(evil, "t\n", "<p>h</p>\n"),
        from_name="Care\nBcc: evil@attacker.test",
        to=[("Alice\rCc: evil@attacker.test", "alice@customer.test")],
        extra_headers={"X-Campaign": "n\r\nBcc: evil@attacker.test"},
    )
    msg = _parse(raw)
    assert msg["Bcc"] is None and msg["Cc"] is None
    assert msg["Subject"] == "x Bcc: evil@attacker.test body"
    assert msg["From"].addresses[0].display_name == "Care Bcc: evil@attacker.test"
    assert msg["To"].addresses[0].addr_spec == "alice@customer.test"
    assert msg["X-Campaign"] == "n Bcc: evil@attacker.test"
    assert not msg.defects


@pytest.mark.parametrize(
    "field",
    [
        {"from_address": "care@acme.test\r\nBcc: evil@attacker.test"},
        {"to": ["alice@customer.test\nBcc: evil@attacker.test"]},
        {"to": [("A", "alice@customer.test, evil@attacker.test")]},
        {"to": ["Alice <alice@customer.test>"]},
        {"to": ["no-at-sign"]},
        {"to": []},
        {"reply_to": "care@acme.test\r\n"},
        {"message_id": "<a@b>\r\nBcc: evil@attacker.test"},
        {"message_id": "no-brackets@acme.test"},
        {"in_reply_to": "<a@b> <c@d>"},
        {"id_domain": "acme.test\r\nBcc: x"},
        {"date": datetime(2026, 12, 1, 14, 0)},
        {"extra_headers": {"Bcc": "evil@attacker.test"}},
        {"extra_headers": {"X-Bad\r\nBcc": "v"}},
        {"extra_headers": {"Subject": "second subject"}},
    ],
)
def test_bad_values_are_refused(field: dict[str, Any]) -> None:
    with pytest.raises(InvalidValue):
        _compose(Rendered("s", "t", "h"), **field)


def test_references_from_customer_data_are_cleaned() -> None:
    refs = ["<a@x>", "junk <b@x>\r\nBcc: e@x", "<a@x>", "<bad id@x>"] + [
        f"<r{i}@x>" for i in range(40)
    ]
    cleaned = clean_references(refs)
    assert cleaned == ["<a@x>"] + [f"<r{i}@x>" for i in range(40 - MAX_REFERENCES + 1, 40)]
    assert clean_references(refs[:4]) == ["<a@x>", "<b@x>"]
    msg = _parse(_compose(Rendered("s", "t", "h"), references=refs))
    assert msg["References"].split() == cleaned


def test_fan_out_shares_one_body(renderer: Renderer) -> None:
    kind = MailKind.INCIDENT_ALERT
    rendered = renderer.render(kind, sample_context(kind))
    body = compose_body(rendered)
    messages = []
    for i in range(3):
        headers = compose_headers(
            subject=rendered.subject, kind=kind, from_address="noc@acme.test",
            from_name="Acme Operations", to=[f"list{i}@customer.test"],
            message_id=f"<n{i}.cg@acme.test>", date=DATE, id_domain="acme.test",
        )
        messages.append(assemble(headers, body))
    assert len({m.split(b"\r\n\r\n", 1)[1] for m in messages}) == 1
    for i, raw in enumerate(messages):
        msg = _parse(raw)
        assert msg["To"] == f"list{i}@customer.test"
        assert msg["Auto-Submitted"] == "auto-generated"
        assert msg["Subject"] == rendered.subject
        assert _bodies(msg) == (rendered.text, rendered.html)


def test_plain_address_recipients_and_folding() -> None:
    to = [f"person{i}@customer.test" for i in range(12)]
    raw = _compose(Rendered("s", "t", "h"), to=to, reply_to=None)
    msg = _parse(raw)
    assert [a.addr_spec for a in msg["To"].addresses] == to
    assert msg["Reply-To"] is None
    assert all(len(line) <= 78 for line in _header_lines(raw))


_names = st.text(st.characters(codec="utf-8"), max_size=120)


@settings(max_examples=300, deadline=None)
@given(subject=_names, name=_names, to_name=_names)
def test_any_text_round_trips_without_injection(subject: str, name: str, to_name: str) -> None:
    raw = _compose(Rendered(subject, "t", "h"), from_name=name,
                   to=[(to_name, "alice@customer.test")])
    assert raw.isascii()
    lines = _header_lines(raw)
    assert all(len(line) <= 998 for line in lines)
    assert all(b"\r" not in line and b"\n" not in line for line in lines)
    msg = _parse(raw)
    assert {k.lower() for k in msg} == EXPECTED_HEADERS
    assert msg["Subject"] == one_line(subject)
    assert msg["From"].addresses[0].addr_spec == "care@acme.test"
    assert msg["To"].addresses[0].addr_spec == "alice@customer.test"
    legacy = email.message_from_bytes(raw, policy=policy.compat32)
    for header, given_name in (("From", name), ("To", to_name)):
        _check_display_name(msg[header].addresses[0].display_name, legacy[header], given_name)


def _check_display_name(parsed: str, raw_value: str, given: str) -> None:
    """Exact through the stdlib parser when the name fits one encoded-word; otherwise exact
    through an RFC 2047 decoder (the stdlib parser puts a space between encoded-words)."""
    expected = one_line(given)
    if "=?" not in raw_value or len(expected.encode()) <= 45:
        assert parsed == expected
    else:
        decoded = str(make_header(decode_header(raw_value)))
        assert decoded == f"{expected} <{decoded.rsplit('<', 1)[1]}"


def test_date_header_uses_the_given_zone() -> None:
    msg = _parse(_compose(Rendered("s", "t", "h"), date=datetime(2026, 7, 1, 9, 30, tzinfo=UTC)))
    assert msg["Date"] == "Wed, 01 Jul 2026 09:30:00 +0000"


@settings(max_examples=200, deadline=None)
@given(text=st.text(st.characters(codec="utf-8"), max_size=3000))
def test_any_body_round_trips(text: str) -> None:
    msg = _parse(_compose(Rendered("s", text, text)))
    expected = text.replace("\r\n", "\n").replace("\r", "\n")
    if not expected.endswith("\n"):
        expected += "\n"
    assert _bodies(msg) == (expected, expected)


def test_a_header_template_writes_what_compose_headers_writes() -> None:
    from datetime import UTC, datetime

    from gateway.outbound.bulk import header_template
    from gateway.outbound.compose import compose_headers
    from gateway.outbound.kinds import MailKind

    common = {"subject": "[INC-2026-00001] Incident alert: Ünïcode — a long subject " * 2,
              "kind": MailKind.INCIDENT_ALERT, "from_address": "care@vendor.example",
              "from_name": "Customer Care", "date": datetime(2026, 3, 2, 9, tzinfo=UTC),
              "id_domain": "vendor.example", "reply_to": "care@vendor.example"}
    template = header_template(**common)
    for address in ("noc@acme.example", "a.very.long.address.of.a.distribution.list@sub.acme.example"):
        expected = compose_headers(**common, to=[address], message_id="<abc.def@vendor.example>")
        assert template.render(address, "<abc.def@vendor.example>") == expected


def test_a_calendar_part_sits_beside_text_and_html() -> None:
    import email
    from email import policy

    from gateway.outbound.bulk import CalendarPart, with_calendar
    from gateway.outbound.compose import assemble, compose_body
    from gateway.outbound.render import Rendered

    ics = b"BEGIN:VCALENDAR\r\nMETHOD:CANCEL\r\nEND:VCALENDAR\r\n"
    body = with_calendar(compose_body(Rendered("s", "Grüße, text\n", "<p>html</p>\n")),
                         CalendarPart(ics, "CANCEL"))
    headers = b"From: a@b.example\r\nTo: c@d.example\r\nSubject: s\r\n"
    message = email.message_from_bytes(assemble(headers, body), policy=policy.default)
    assert message.get_content_type() == "multipart/mixed"
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content().rstrip() == "Grüße, text" and html.get_content().rstrip() == "<p>html</p>"
    [calendar] = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert calendar.get_param("method") == "CANCEL"
    assert calendar.get_payload(decode=True) == ics
