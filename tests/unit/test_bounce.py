"""parse_bounce: standard DSNs, non-standard dialects through flufl.bounce, and the mail that
talks about bounces without being one."""

from __future__ import annotations

import email
from pathlib import Path

import pytest

from gateway.config import LimitSettings
from gateway.inbound.mail.bounce import BounceReport, FailedRecipient, parse_bounce
from gateway.inbound.mail.parse import parse_message
from gateway.inbound.mail.parsed import ParsedMail

DATA = Path(__file__).parents[1] / "data" / "mail"
OURS = "<0123456789abcdef0123456789abcdef.cg@example.com>"


def report_of(raw: bytes) -> BounceReport | None:
    return parse_message(raw, LimitSettings()).bounce


def test_standard_dsn_per_recipient_fields_and_returned_headers() -> None:
    report = report_of((DATA / "dsn_postfix_ours.eml").read_bytes())
    assert report is not None and report.evidence == "delivery-status report"
    assert report.recipients == (
        FailedRecipient("Gone@Customer.example", "5.1.1", True,
                        "550 5.1.1 <gone@customer.example>: Recipient address rejected: "
                        "User unknown in local recipient table"),
        FailedRecipient("slow@customer.example", "4.4.1", False, "451 4.4.1 connection timed out"),
    )
    assert report.original_message_ids == (OURS,)


def test_parse_bounce_parses_raw_itself_when_not_given_a_message() -> None:
    raw = (DATA / "dsn_postfix_ours.eml").read_bytes()
    mail = parse_message(raw, LimitSettings())
    assert parse_bounce(mail, raw) == mail.bounce
    assert parse_bounce(mail, raw, message=email.message_from_bytes(raw)) == mail.bounce


def test_qmail_bounce_through_flufl_with_status_and_returned_message_id() -> None:
    report = report_of((DATA / "qmail_bounce.eml").read_bytes())
    assert report is not None
    [failed] = report.recipients
    assert (failed.address, failed.status, failed.permanent) == (
        "nobody-here@customer.example", "5.1.1", True)
    assert "no mailbox here" in failed.diagnostic
    assert report.original_message_ids == ("<fedcba9876543210fedcba9876543210.cg@example.com>",)


def _dsn(action: str, status: str, *, returned: str = "message/rfc822") -> bytes:
    return (
        "From: Mail Delivery Subsystem <mailer-daemon@mx.example.org>\r\n"
        "Subject: Delivery Status Notification\r\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=R\r\n\r\n"
        "--R\r\nContent-Type: text/plain\r\n\r\nSorry.\r\n"
        "--R\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n"
        f"Final-Recipient: rfc822;<who@dest.example>\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"--R\r\nContent-Type: {returned}\r\n\r\nMessage-ID: {OURS}\r\nSubject: hi\r\n\r\nbody\r\n--R--\r\n"
    ).encode()


@pytest.mark.parametrize(("action", "status", "permanent"), [
    ("failed", "5.2.2", True), ("delayed", "4.4.7", False), ("failed", "4.4.7", True),
    ("Failed (gave up)", "5.0.0", True), ("error", "5.1.1", True), ("", "5.1.2", True), ("", "4.2.2", False),
])
def test_dsn_permanence(action: str, status: str, permanent: bool) -> None:
    raw = _dsn(action, status)
    if not action:
        raw = raw.replace(b"Action: \r\n", b"")
    report = report_of(raw)
    assert report is not None
    assert [(r.address, r.status, r.permanent) for r in report.recipients] == [("who@dest.example", status,
                                                                                permanent)]
    assert report.original_message_ids == (OURS,)


@pytest.mark.parametrize("action", ["delivered", "relayed", "expanded"])
def test_success_reports_are_bounces_without_failed_recipients(action: str) -> None:
    report = report_of(_dsn(action, "2.0.0"))
    assert report is not None and report.recipients == ()


def test_returned_headers_in_a_text_part() -> None:
    report = report_of(_dsn("failed", "5.1.1", returned="text/rfc822-headers"))
    assert report is not None and report.original_message_ids == (OURS,)


def test_daemon_sender_with_failure_subject_is_a_bounce_even_without_recipients() -> None:
    raw = b"From: MAILER-DAEMON@mx.example.org\r\nSubject: Returned mail: see transcript\r\n\r\nodd\r\n"
    report = report_of(raw)
    assert report is not None and report.recipients == ()
    assert report.evidence == "mailer-daemon@mx.example.org sent 'Returned mail: see transcript'"


EXIM_BODY = (
    "This message was created automatically by mail delivery software.\r\n\r\n"
    "A message that you sent could not be delivered to one or more of its\r\n"
    "recipients. This is a permanent error. The following address(es) failed:\r\n\r\n"
    "  lost@dest.example\r\n    SMTP error from remote mail server after RCPT TO:<lost@dest.example>:\r\n"
    "    550 5.1.1 No such user\r\n"
)


@pytest.mark.parametrize(("sender", "subject", "threaded", "bounce"), [
    ("Mail Delivery System <Mailer-Daemon@mx.example.org>", "Mail delivery failed", False, True),
    ("<>", "Mail delivery failed: returning message to sender", False, True),
    ("virus-gateway@example.org", "Mail delivery failed: returning message to sender", False, True),
    ("virus-gateway@example.org", "Note: mail delivery failed", False, True),
    ("carol@customer.example", "Re: mail delivery failed", True, False),
    ("carol@customer.example", "Fwd: Mail delivery failed: returning message", False, False),
    ("carol@customer.example", "Our agents", False, False),
])
def test_non_standard_bounce_detection(sender: str, subject: str, threaded: bool, bounce: bool) -> None:
    thread = "In-Reply-To: <a@b.example>\r\n" if threaded else ""
    raw = f"From: {sender}\r\nSubject: {subject}\r\n{thread}\r\n{EXIM_BODY}".encode()
    report = report_of(raw)
    assert (report is not None) == bounce
    if report is not None:
        assert [(r.address, r.permanent) for r in report.recipients] == [("lost@dest.example", True)]


def test_people_mentioning_bounces_are_not_bounces() -> None:
    for name in ("customer_reply_quoting_bounce.eml", "forwarded_bounce.eml", "ooo_de_exchange.eml"):
        assert report_of((DATA / name).read_bytes()) is None, name


def test_garbage_that_flufl_reads_as_an_address_is_dropped() -> None:
    raw = b"Subject: failure notice\r\n\r\n<T\"1>$>01)`(*@1NNN>:\r\nSorry, no mailbox here by that name.\r\n"
    report = report_of(raw)
    assert report is None or all("@" in r.address and '"' not in r.address for r in report.recipients)


def test_a_detector_crash_on_a_missing_from_does_not_lose_the_others() -> None:
    raw = f"Subject: Mail delivery failed\r\nReturn-Path: <>\r\n\r\n{EXIM_BODY}".encode()
    mail: ParsedMail = parse_message(raw, LimitSettings())
    assert mail.bounce is not None and [r.address for r in mail.bounce.recipients] == ["lost@dest.example"]
