"""Mail that tries to get past the policy, and mail that is merely broken, end to end on a real
Dovecot and SMTP server: spoofed senders and forged, tampered or ambiguous references; the same
mail delivered twice; hostile input (every message gets a disposition, the run never crashes,
the inbox ends empty); and the many shapes of a genuine reply, which finds its case however the
mail client mangled it. The policy table itself: test_inbound_policy.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from gateway.app import App
from gateway.clock import FrozenClock
from gateway.identity import REPLY_MARKER
from gateway.models import Case
from testkit.mails import (
    answers,
    encoded_subject,
    html_reply,
    inbound_rows,
    nested_mime,
    new_mail,
    raw_mail,
    redelivered,
    reply,
    sent_mail,
    stored_raw,
    token_of,
    with_header,
)
from testkit.servers.smtp import RecordingSmtpServer
from testkit.world import ANA, STRANGER, open_case
from tests.integration.test_inbound_policy import (
    TRUSTED_MX,
    assert_refused_without_a_trace,
    case_state,
    folders,
    one_answer,
    run,
    security_events,
    world,
)

CAROL = "carol@acme.example"  # a colleague of Ana's, not a contact at all
APPLIED_ONLY = {"INBOX": 0, "Processed": 1, "Refused": 0, "Quarantine": 0}
QUARANTINED_ONLY = {"INBOX": 0, "Processed": 0, "Refused": 0, "Quarantine": 1}


@pytest.fixture
async def app(db_url: str, imap_account: Any, smtp_server: RecordingSmtpServer,
              clock: FrozenClock) -> AsyncIterator[App]:
    async with world(db_url, imap_account, smtp_server, clock) as app:
        yield app


@pytest.fixture
async def case(app: App) -> Case:
    return await open_case(app)


async def applied_text(app: App, case: Case) -> str:
    """The run decided one message, applied to ``case``; the text it added to the timeline."""
    (row,) = await inbound_rows(app)
    assert row.disposition == "applied", row.trail
    assert row.case_id == case.id
    _, events = await case_state(app, case.number)
    assert [e.kind for e in events] == ["opened", "customer_reply"]
    assert await answers(app, row.id) == []
    return events[-1].body or ""


# --- who may not update a case, whatever the mail claims ------------------------------------------


@pytest.mark.parametrize("spoof", ["someone-else", "dmarc-fail"])
async def test_spoofed_sender_with_a_valid_token_is_refused(
    app: App, imap_account, smtp_server, spoof: str
) -> None:
    """A correct token in the subject does not make anyone a contact; nor does a forged From
    that a trusted receiving server marked DMARC fail."""
    case = await open_case(app)
    _, events = await case_state(app, case.number)
    token = token_of(await sent_mail(app, case.id))
    subject = f"RE: [{token}] Case {case.number} received: {case.subject}"
    if spoof == "someone-else":
        mail, answer_to = new_mail(sender=STRANGER, subject=subject, text="Close this case now."), STRANGER
    else:
        results = f"{TRUSTED_MX}; spf=fail smtp.mailfrom=evil.example; dmarc=fail header.from=acme.example"
        mail = new_mail(sender=ANA, subject=subject, text="Close this case now.",
                        extra_headers={"Authentication-Results": results})
        answer_to = ANA
    imap_account.append(mail)
    await run(app)
    await assert_refused_without_a_trace(app, imap_account, smtp_server, case, mail, answer_to,
                                          len(events))


async def test_reply_all_from_a_colleague_in_cc_is_refused(app: App, imap_account, smtp_server) -> None:
    case = await open_case(app)
    _, events = await case_state(app, case.number)
    mail = reply(await sent_mail(app, case.id), sender=CAROL, text="Adding my two cents: it is the SBC.",
                 subject_prefix="RE: RE: ", extra_headers={"Cc": ANA})
    imap_account.append(mail)
    await run(app)
    await assert_refused_without_a_trace(app, imap_account, smtp_server, case, mail, CAROL, len(events))


# --- references that are forged, tampered with, or name two cases ------------------------------


def _other_mac(mac: str, position: int) -> str:
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    return mac[:position] + alphabet[(alphabet.index(mac[position]) + 1) % 32] + mac[position + 1:]


@pytest.mark.parametrize("how", ["guessed", "tampered-mac", "tampered-number"])
async def test_token_with_a_wrong_mac_counts_as_no_reference(
    app: App, imap_account, smtp_server, how: str
) -> None:
    case = await open_case(app)
    number, mac = token_of(await sent_mail(app, case.id)).removeprefix("REF:").split(".")
    forged = {
        "guessed": f"REF:{number}.{'k3j9x2m7q4w8a' if mac != 'k3j9x2m7q4w8a' else 'a8w4q7m2x9j3k'}",
        "tampered-mac": f"REF:{number}.{_other_mac(mac, 6)}",
        "tampered-number": f"REF:{number[:-1]}{(int(number[-1]) + 1) % 10}.{mac}",
    }[how]
    imap_account.append(new_mail(sender=ANA, subject=f"RE: [{forged}] {case.subject}",
                                 text="Please look at this again."))
    await run(app)

    (row,) = await inbound_rows(app)
    assert row.disposition == "refused_new_case", row.trail
    assert row.case_id is None
    (event,) = await security_events(app)
    assert event.kind == "invalid_reference"
    assert event.inbound_message_id == row.id
    assert forged.lower() in event.detail.lower()
    _, events = await case_state(app, case.number)
    assert [e.kind for e in events] == ["opened"]
    await one_answer(app, smtp_server, row.id, "new_case_refused", ANA)
    assert folders(imap_account) == {"INBOX": 0, "Processed": 0, "Refused": 1, "Quarantine": 0}


async def _assert_quarantined_untouched(app: App, imap_account, smtp_server, *cases: Case) -> None:
    (row,) = await inbound_rows(app)
    assert row.disposition == "quarantined", row.trail
    assert await stored_raw(app, row) is not None
    detail = row.trail[-1]["detail"]
    for case in cases:
        assert case.number in detail
        _, events = await case_state(app, case.number)
        assert [e.kind for e in events] == ["opened"]
    assert await answers(app, row.id) == []
    assert len(smtp_server.messages) == len(cases)  # the acknowledgements only
    assert folders(imap_account) == {"INBOX": 0, "Processed": 0, "Refused": 0, "Quarantine": 1}


async def test_mail_naming_two_cases_is_quarantined(app: App, imap_account, smtp_server) -> None:
    first = await open_case(app, "Calls drop after 30 seconds")
    second = await open_case(app, "Wallboard shows no queues")
    one, two = token_of(await sent_mail(app, first.id)), token_of(await sent_mail(app, second.id))
    imap_account.append(new_mail(sender=ANA, subject=f"RE: [{one}] and [{two}] probably related",
                                 text="Both started at the same time."))
    await run(app)
    await _assert_quarantined_untouched(app, imap_account, smtp_server, first, second)


async def test_header_match_and_subject_token_of_another_case_is_quarantined(
    app: App, imap_account, smtp_server
) -> None:
    first = await open_case(app, "Calls drop after 30 seconds")
    second = await open_case(app, "Wallboard shows no queues")
    other = token_of(await sent_mail(app, second.id))
    imap_account.append(reply(await sent_mail(app, first.id), sender=ANA, text="Same root cause?",
                              keep_subject=False, subject_prefix=f"RE: [{other}] ", quote=False))
    await run(app)
    await _assert_quarantined_untouched(app, imap_account, smtp_server, first, second)


# --- the same mail delivered twice ---------------------------------------------------------------


@pytest.mark.parametrize("delivery", ["same-bytes", "different-received-headers"])
async def test_the_same_mail_delivered_twice_takes_effect_once(
    app: App, imap_account, smtp_server, delivery: str
) -> None:
    case = await open_case(app)
    mail = reply(await sent_mail(app, case.id), sender=ANA, text="Logs attached, twice by accident.")
    if delivery == "same-bytes":
        copies = [mail, mail]
    else:
        copies = [redelivered(mail, hop="mx1.acme.example"),
                  redelivered(mail, hop="relay-eu.acme.example", delivered_to="support@vendor.example")]
        assert copies[0] != copies[1]
    imap_account.append_many(copies)
    await run(app)

    first, second = await inbound_rows(app)
    assert (first.disposition, second.disposition) == ("applied", "duplicate"), (first.trail, second.trail)
    assert f"inbound message {first.id}" in second.trail[-1]["detail"]
    _, events = await case_state(app, case.number)
    assert [e.kind for e in events] == ["opened", "customer_reply"]
    assert await answers(app, first.id) == await answers(app, second.id) == []
    assert folders(imap_account) == {"INBOX": 0, "Processed": 2, "Refused": 0, "Quarantine": 0}


async def test_a_duplicate_arriving_a_day_later_is_still_a_duplicate(
    app: App, imap_account, smtp_server, clock: FrozenClock
) -> None:
    case = await open_case(app)
    mail = reply(await sent_mail(app, case.id), sender=ANA, text="Logs attached.")
    imap_account.append(mail)
    await run(app)
    clock.advance(timedelta(days=1))
    imap_account.append(redelivered(mail, hop="slow-backup-mx.acme.example"))
    await run(app)
    assert [r.disposition for r in await inbound_rows(app)] == ["applied", "duplicate"]
    _, events = await case_state(app, case.number)
    assert [e.kind for e in events] == ["opened", "customer_reply"]


# --- hostile or broken input -------------------------------------------------------------------


async def test_unbalanced_parentheses_in_the_subject(app: App, case: Case, imap_account) -> None:
    token = token_of(await sent_mail(app, case.id))
    imap_account.append(new_mail(sender=ANA, subject=f"Re: (urgent (( [{token}]", text="Still failing."))
    await run(app)
    assert await applied_text(app, case) == "Still failing."
    assert folders(imap_account) == APPLIED_ONLY


async def test_a_huge_header_block(app: App, case: Case, imap_account) -> None:
    mail = reply(await sent_mail(app, case.id), sender=ANA, text="Sent through a very chatty relay.")
    filler = "".join(f"X-Scanner-{n:05d}: {'checked; ' * 9}\r\n" for n in range(5500)).encode()
    huge = filler + mail
    assert len(filler) > 500_000
    imap_account.append(huge)
    await run(app)
    assert await applied_text(app, case) == "Sent through a very chatty relay."
    (row,) = await inbound_rows(app)
    assert await stored_raw(app, row) == huge
    assert folders(imap_account) == APPLIED_ONLY


async def test_a_one_megabyte_single_line_body(app: App, case: Case, imap_account) -> None:
    token = token_of(await sent_mail(app, case.id))
    line = b"x" * 1_000_000
    imap_account.append(raw_mail(sender=ANA, subject=f"RE: [{token}] dump", body=line + b"\r\n"))
    await run(app)
    text = await applied_text(app, case)
    assert set(text) <= {"x", "\n"}
    assert 0 < len(text.replace("\n", "")) <= app.settings.limits.max_new_text_chars
    assert folders(imap_account) == APPLIED_ONLY


@pytest.mark.parametrize("body, content_type", [
    ("Grüße, the trace is attached.".encode(), "text/plain; charset=x-unknown"),
    (b"Caf\xe9 \xff\xfe\xc3 the trace is attached.", "text/plain; charset=utf-8"),
    (b"\x1b$B$3$s\x1b(B the trace is attached.", 'text/plain; charset="iso-2022-jp-99"'),
], ids=["unknown-charset", "invalid-utf-8", "bogus-iso-2022"])
async def test_broken_charsets(app: App, case: Case, imap_account, body: bytes, content_type: str) -> None:
    token = token_of(await sent_mail(app, case.id))
    subject = f"RE: [{token}] =?x-unknown?Q?Gr=FC=DFe?="
    imap_account.append(raw_mail(sender=ANA, subject=subject, body=body + b"\r\n", content_type=content_type))
    await run(app)
    assert "the trace is attached." in await applied_text(app, case)
    assert folders(imap_account) == APPLIED_ONLY


async def test_an_empty_message(app: App, case: Case, imap_account, smtp_server) -> None:
    imap_account.append(b"\r\n")
    await run(app)
    (row,) = await inbound_rows(app)
    assert row.disposition in ("auto_reply_ignored", "quarantined"), row.trail
    assert await answers(app, row.id) == []  # nobody to answer
    _, events = await case_state(app, case.number)
    assert [e.kind for e in events] == ["opened"]
    assert folders(imap_account)["INBOX"] == 0
    assert sum(folders(imap_account).values()) == 1


async def test_a_message_over_the_size_limit_is_quarantined_with_its_headers(
    db_url: str, imap_account, smtp_server, clock: FrozenClock
) -> None:
    async with world(db_url, imap_account, smtp_server, clock, max_message_bytes=50_000) as app:
        case = await open_case(app)
        mail = reply(await sent_mail(app, case.id), sender=ANA, text="The full capture.",
                     attachments=[("capture.pcap", "application/octet-stream", bytes(range(256)) * 300)])
        assert len(mail) > 50_000
        imap_account.append(mail)
        await run(app)

        (row,) = await inbound_rows(app)
        assert row.disposition == "quarantined", row.trail
        assert "max_message_bytes" in (row.error or "")
        assert row.size == len(mail)
        head = mail.partition(b"\r\n\r\n")[0]
        raw = await stored_raw(app, row)
        assert raw is not None and raw.startswith(head) and len(raw) < 50_000
        _, events = await case_state(app, case.number)
        assert [e.kind for e in events] == ["opened"]
        assert await answers(app, row.id) == []
        assert folders(imap_account) == QUARANTINED_ONLY
        assert imap_account.messages("Quarantine") == [mail]  # the whole message, for a human


async def test_mime_nested_deeper_than_the_limit_is_quarantined(app: App, case: Case, imap_account) -> None:
    token = token_of(await sent_mail(app, case.id))
    depth = app.settings.limits.max_mime_depth + 5
    mail = nested_mime(sender=ANA, subject=f"RE: [{token}] nested", depth=depth)
    imap_account.append(mail)
    await run(app)
    (row,) = await inbound_rows(app)
    assert row.disposition == "quarantined", row.trail
    assert "depth" in (row.error or "").lower()
    assert await stored_raw(app, row) == mail
    _, events = await case_state(app, case.number)
    assert [e.kind for e in events] == ["opened"]
    assert await answers(app, row.id) == []
    assert folders(imap_account) == QUARANTINED_ONLY


async def test_mime_nested_within_the_limit_is_applied(app: App, case: Case, imap_account) -> None:
    token = token_of(await sent_mail(app, case.id))
    depth = app.settings.limits.max_mime_depth
    imap_account.append(nested_mime(sender=ANA, subject=f"RE: [{token}] nested", depth=depth,
                                    text="Forwarded through many gateways."))
    await run(app)
    assert await applied_text(app, case) == "Forwarded through many gateways."


async def test_a_batch_of_hostile_mail_never_stops_the_run(app: App, case: Case, imap_account) -> None:
    """All of the above in one inbox: each gets its disposition, the good reply at the end too."""
    original = await sent_mail(app, case.id)
    token = token_of(original)
    imap_account.append_many([
        b"\r\n",
        nested_mime(sender=ANA, subject=f"RE: [{token}]", depth=40),
        raw_mail(sender=ANA, subject=f"RE: [{token}]", body=b"\xff\xfe\x00\x01",
                 content_type="text/plain; charset=x-"),
        b"From: \r\nSubject: =?utf-8?B?////?=\r\nContent-Type: multipart/mixed\r\n\r\n--\r\n",
        reply(original, sender=ANA, text="This one is real."),
    ])
    summary = await run(app)
    assert summary.inbound.decided == 5
    rows = await inbound_rows(app)
    assert all(r.disposition is not None for r in rows), [(r.disposition, r.trail) for r in rows]
    assert rows[1].disposition == "quarantined"
    assert rows[-1].disposition == "applied"
    assert folders(imap_account)["INBOX"] == 0


# --- the ways a genuine reply finds its case ---------------------------------------------------


def _variant(original: bytes, how: str) -> bytes:
    token = token_of(original)
    text = "Logs attached."
    if how == "token-in-body-only":  # subject rewritten, no threading headers, original quoted
        return reply(original, sender=ANA, text=text, keep_threading=False, keep_subject=False)
    if how == "html-only":
        return html_reply(original, sender=ANA, text=text)
    if how == "threading-headers-only":  # subject edited, nothing quoted
        return reply(original, sender=ANA, text=text, keep_subject=False, quote=False)
    if how == "decorated-subject":
        return reply(original, sender=ANA, text=text, subject_prefix="AW: WG: [EXTERNAL] ",
                     keep_threading=False, quote=False)
    if how == "upper-cased-subject":
        return reply(original, sender=ANA, text=text, keep_threading=False, quote=False,
                     keep_subject=False, subject_prefix=f"RE: [{token.upper()}] ")
    if how == "quoted-printable-soft-break":  # the encoder broke the line inside the token
        number, mac = token.split(".")
        body = (f"{text}\r\n\r\nOn Mon, 2 Nov 2026, Customer Care wrote:\r\n"
                f"> Reference: {number}.{mac[:5]}=\r\n{mac[5:]}\r\n").encode()
        return raw_mail(sender=ANA, subject="Re: my reply", body=body,
                        transfer_encoding="quoted-printable")
    plain = reply(original, sender=ANA, text=text, keep_threading=False, quote=False)
    subject = f"AW: Grüße aus München – Änderung [{token}]"
    if how == "rfc2047-subject":
        return with_header(plain, "Subject", encoded_subject(subject))
    assert how == "rfc2047-split-words"
    return with_header(plain, "Subject", encoded_subject(subject, chunk=7))


@pytest.mark.parametrize("how, via", [
    ("token-in-body-only", "body"),
    ("html-only", "body"),
    ("threading-headers-only", "header"),
    ("decorated-subject", "subject"),
    ("upper-cased-subject", "subject"),
    ("quoted-printable-soft-break", "body"),
    ("rfc2047-subject", "subject"),
    ("rfc2047-split-words", "subject"),
])
async def test_reply_variants_find_their_case(app: App, case: Case, imap_account, how: str, via: str) -> None:
    original = await sent_mail(app, case.id)
    imap_account.append(_variant(original, how))
    await run(app)
    text = await applied_text(app, case)
    (row,) = await inbound_rows(app)
    match = next(t for t in row.trail if t["stage"] == "match")
    assert match["detail"] == f"case {case.number} by {via}"
    assert text == "Logs attached."
    assert REPLY_MARKER not in text
    assert token_of(original) not in text
    assert folders(imap_account) == APPLIED_ONLY
