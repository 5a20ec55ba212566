"""No single mail can stall a mailbox: text that no database column takes (a NUL, a lone
surrogate) or that forges what people see (controls, C1, bidirectional overrides), in every
field the gateway stores, end to end on a real Dovecot and SMTP server and on both databases.
One hostile mail among ten: the nine others are decided and moved in the same run.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from gateway.app import App
from gateway.clock import FrozenClock
from gateway.inbound.imap.fetching import Fetched
from gateway.inbound.loop.batch import BatchDecider
from gateway.inbound.loop.failures import GENERIC_ERROR
from gateway.inbound.mail.analysis import Parsed
from gateway.inbound.mail.parsed import ParsedMail
from gateway.inbound.policy.context import Services
from gateway.models import Attachment
from testkit.mails import inbound_rows, raw_mail, reply, sent_mail, token_of
from testkit.servers.smtp import RecordingSmtpServer
from testkit.world import ANA, open_case
from tests.integration.test_inbound_policy import case_state, folders, run, world

UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


@pytest.fixture
async def app(db_url: str, imap_account: Any, smtp_server: RecordingSmtpServer,
              clock: FrozenClock) -> AsyncIterator[App]:
    async with world(db_url, imap_account, smtp_server, clock) as app:
        yield app


def _hostile(token: str, where: str) -> bytes:
    """A reply from Ana with a valid token whose ``where`` carries what no column should hold."""
    subject = f"RE: [{token}] logs"
    headers = ""
    body = b"Here are the logs.\r\n"
    content_type = "text/plain; charset=utf-8"
    sender = ANA
    if where == "subject-nul":
        subject = f"RE: [{token}] =?utf-8?q?a=00b?="
    elif where == "subject-c1-bidi":
        subject = f"RE: [{token}] =?utf-8?q?=C2=85=C2=9B=E2=80=AEgnp.exe?= =?utf-8?q?=1B[31m?="
    elif where == "subject-raw-bytes":
        subject = f"RE: [{token}] caf\udcff\udcfe \x00 \x1b"
    elif where == "from-name":
        sender = f"=?utf-8?q?Ana=00=1B]0;pwned=07?= <{ANA}>"
    elif where == "threading-headers":
        headers = "In-Reply-To: <a\x00b@x.example>\r\nReferences: <c\x01d@x.example> <e\x7ff@x>\r\n"
    elif where == "body":
        body = b"Here are\x00 the\x1b[2J logs\x85.\r\n\xff\xfe\r\n"
    elif where == "message-id":
        headers = "X-Placeholder: 1\r\n"
    elif where == "list-id":
        headers = "List-Id: <\x00\x1b[2Jlist\u202e.example>\r\n"
    elif where == "auto-submitted":
        headers = "Auto-Submitted: auto\x00-replied\x85\r\n"
    elif where == "content-type":
        content_type = 'multipart/mixed; boundary="B"'
        body = (b"--B\r\nContent-Type: text/plain\r\n\r\nHere are the logs.\r\n"
                b"--B\r\nContent-Type: application/x-\x01\x7f=?utf-8?q?=00?=; name=\"a.log\"\r\n"
                b"Content-Disposition: attachment\r\n\r\nAAAA\r\n--B--\r\n")
    elif where == "filename":
        content_type = 'multipart/mixed; boundary="B"'
        body = (b"--B\r\nContent-Type: text/plain\r\n\r\nHere are the logs.\r\n"
                b"--B\r\nContent-Type: application/octet-stream\r\n"
                b"Content-Disposition: attachment; filename*=utf-8''a%00b%1B%C2%85%E2%80%AE.log\r\n"
                b"\r\nAAAA\r\n--B--\r\n")
    raw = raw_mail(sender=sender, subject=subject.replace("\udcff", "").replace("\udcfe", ""), body=body,
                   content_type=content_type, headers=headers)
    if where == "subject-raw-bytes":
        raw = raw.replace(b"caf ", b"caf\xff\xfe ")
    if where == "message-id":
        raw = re.sub(rb"Message-ID: <[^>]*>", b"Message-ID: <a\x00\x1bb\xc2\x85@x.example>", raw)
    return raw


HOSTILE = ["subject-nul", "subject-c1-bidi", "subject-raw-bytes", "from-name", "threading-headers",
           "message-id", "list-id", "auto-submitted", "body", "filename", "content-type"]
NEVER_APPLIED = {"list-id", "auto-submitted"}
"""Hostile mails that are list traffic or an automatic reply: recorded, never applied."""


@pytest.mark.parametrize("where", HOSTILE)
async def test_one_hostile_mail_among_ten_stops_nothing(app: App, imap_account, where: str) -> None:
    case = await open_case(app)
    original = await sent_mail(app, case.id)
    mails = [reply(original, sender=ANA, text=f"Update number {n}.", quote=False) for n in range(9)]
    mails.insert(4, _hostile(token_of(original), where))
    imap_account.append_many(mails)

    summary = await run(app)

    assert summary.inbound.decided == 10
    rows = await inbound_rows(app)
    hostile = "auto_reply_ignored" if where in NEVER_APPLIED else "applied"
    expected = ["applied"] * 4 + [hostile] + ["applied"] * 5
    assert [r.disposition for r in rows] == expected, [(r.disposition, r.error) for r in rows]
    assert folders(imap_account) == {"INBOX": 0, "Processed": 10, "Refused": 0, "Quarantine": 0}
    for row in rows:
        shown = [value for step in row.trail for value in step.values()]
        for value in (row.subject, row.from_address, row.message_id, row.new_text, row.error, *shown):
            assert not UNSAFE.search(value or ""), (where, value)
    _, events = await case_state(app, case.number)
    assert len(events) == 1 + expected.count("applied")
    for event in events:
        assert not UNSAFE.search(event.body or ""), event.body
    async with app.sessions() as session:
        attachments = (await session.execute(select(Attachment.filename, Attachment.content_type))).all()
        assert all(not UNSAFE.search(n + t) for n, t in attachments), attachments
        if where == "filename":
            assert [n for n, _ in attachments] == ["ab.log"]


async def test_a_failure_whose_record_fails_is_still_counted_and_quarantined(app: App) -> None:
    """Were a text no column takes to get past the parser, the pipeline fails on it, and so
    would the record of that failure: a generic reason is recorded instead, every attempt
    counts, and at the limit the message is quarantined (it never stalls the mailbox)."""
    mailer = await app.mailer()
    services = Services(app.settings, app.clock, mailer, mailer.keys, frozenset())
    decider = BatchDecider(app.engine, app.sessions, services)
    mailbox = app.settings.mailboxes[0]
    bad = ParsedMail(message_id="<m\x00\ud800@x.example>", from_address=ANA, subject="a\x00\ud800b",
                     text_body="hello")
    batch = [Fetched(1, b"Subject: x\r\n\r\nhello\r\n", 22)]
    limit = app.settings.limits.pipeline_attempts
    for attempt in range(1, limit + 1):
        future = asyncio.get_running_loop().create_future()
        future.set_result(Parsed(bad))
        known = await decider.store(mailbox, 7, batch)
        decided = await decider.process(mailbox, batch, known, {1: future}, lambda: False)
        (row,) = await inbound_rows(app)
        assert row.attempts == attempt
        assert row.error == GENERIC_ERROR
        assert decided == ({} if attempt < limit else {1: mailbox.quarantine_folder})
    assert row.disposition == "quarantined"


@pytest.mark.parametrize("line", [b"X Bad Name: hello", b"no colon at all", b"X-\xff\xfe: eight-bit name",
                                  b"X-\x00: nul in the name", b"\x00"],
                         ids=["space-in-name", "no-colon", "eight-bit-name", "nul-in-name", "nul-line"])
async def test_a_header_line_the_parser_cannot_read_puts_no_raw_mime_on_the_timeline(
    app: App, imap_account, line: bytes
) -> None:
    case = await open_case(app)
    token = token_of(await sent_mail(app, case.id))
    body = (b"--B\r\nContent-Type: text/plain\r\n\r\nThe real text.\r\n"
            b"--B\r\nContent-Type: text/html\r\n\r\n<p>The real text.</p>\r\n--B--\r\n")
    mail = raw_mail(sender=ANA, subject=f"RE: [{token}] logs", body=body, headers="X-Marker: one\r\n",
                    content_type='multipart/alternative; boundary="B"')
    imap_account.append(mail.replace(b"X-Marker: one\r\n", line + b"\r\n"))
    await run(app)
    (row,) = await inbound_rows(app)
    assert row.disposition == "applied", row.trail
    _, events = await case_state(app, case.number)
    assert events[-1].body == "The real text."
