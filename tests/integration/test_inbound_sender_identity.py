"""Who can update a case: the one mailbox of the one From header, parsed strictly, end to end
on a real Dovecot and SMTP server and both databases. Every From that names no single sender,
or names another than the one mail programs show, is refused with a security event and never
touches the case; ``inbound.require_dmarc_pass`` refuses mail a trusted server did not pass.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from gateway import directory
from gateway.app import App
from gateway.clock import FrozenClock
from gateway.models import Case
from testkit.mails import answers, inbound_rows, raw_mail, sent_mail, token_of
from testkit.servers.smtp import RecordingSmtpServer
from testkit.world import ANA, ORG, add_customer, open_case, open_world, settings_for
from tests.integration.test_inbound_policy import TRUSTED_MX, case_state, folders, run, security_events
from tests.plugins.smtp import smtp_settings

KAI = "kai@acme.example"
KELVIN = "\u212a"  # KELVIN SIGN: Unicode lower-cases it to an ASCII "k"


@asynccontextmanager
async def world(db_url: str, imap_account: Any, smtp_server: RecordingSmtpServer, clock: FrozenClock,
                **inbound: Any) -> AsyncIterator[App]:
    settings = settings_for(
        db_url, mailboxes=[imap_account.mailbox_settings()], smtp=smtp_settings(smtp_server),
        inbound={"parse_workers": 0, "trusted_authserv_ids": [TRUSTED_MX], **inbound},
    )
    async with open_world(settings, clock) as app:
        await add_customer(app)
        async with app.sessions.begin() as session:
            await directory.add_contact(session, app.clock, email=KAI, organisation=ORG)
        yield app


@pytest.fixture
async def app(db_url: str, imap_account: Any, smtp_server: RecordingSmtpServer,
              clock: FrozenClock) -> AsyncIterator[App]:
    async with world(db_url, imap_account, smtp_server, clock) as app:
        yield app


async def _reply_from(app: App, case: Case, sender: str, headers: str = "") -> bytes:
    token = token_of(await sent_mail(app, case.id))
    return raw_mail(sender=sender, subject=f"RE: [{token}] please close", body=b"Close it now.\r\n",
                    headers=headers)


FORGED = {
    "address-as-display-name": f"{ANA} <mallory@evil.example>",
    "quoted-address-as-display-name": f'"{ANA}" <mallory@evil.example>',
    "encoded-address-as-display-name": "=?utf-8?q?ana=40acme.example?= <mallory@evil.example>",
    "address-in-a-comment-name": f'"Ana ({ANA})" <mallory@evil.example>',
    "two-addresses": f"Ana <{ANA}>, Mallory <mallory@evil.example>",
    "two-addresses-the-forged-first": f"mallory@evil.example, {ANA}",
    "two-from-headers": f"{ANA}\r\nFrom: mallory@evil.example",
    "two-identical-from-headers": f"{ANA}\r\nFrom: {ANA}",
    "route-syntax": f"<@evil.example:{ANA}>",
    "group-syntax": f"Acme: {ANA};",
    "no-local-part": "@evil.example",
    "unclosed-bracket": f"Ana <{ANA}",
    "stray-text-after": f"Ana <{ANA}> mallory@evil.example",
}


@pytest.mark.parametrize("sender", FORGED.values(), ids=FORGED.keys())
async def test_a_from_naming_no_single_sender_is_never_applied(
    app: App, imap_account, smtp_server, sender: str
) -> None:
    case = await open_case(app)
    _, before = await case_state(app, case.number)
    imap_account.append(await _reply_from(app, case, sender))
    await run(app)

    (row,) = await inbound_rows(app)
    assert row.disposition == "refused_unauthorized", row.trail
    assert row.trail[-1]["stage"] == "identify"
    after, events = await case_state(app, case.number)
    assert (after.status, len(events)) == (case.status, len(before))
    assert [e.kind for e in await security_events(app)] == ["ambiguous_sender"]
    assert await answers(app, row.id) == []  # whom it came from is unknown: nobody is answered
    assert folders(imap_account) == {"INBOX": 0, "Processed": 0, "Refused": 1, "Quarantine": 0}


async def test_a_unicode_letter_that_lower_cases_into_ascii_is_another_address(
    app: App, imap_account
) -> None:
    case = await open_case(app)
    imap_account.append(await _reply_from(app, case, f"{KELVIN}ai@acme.example"))
    await run(app)
    (row,) = await inbound_rows(app)
    assert row.disposition == "refused_unauthorized", row.trail
    assert [e.kind for e in await security_events(app)] == ["unauthorized_sender"]
    _, events = await case_state(app, case.number)
    assert [e.kind for e in events] == ["opened"]


GENUINE = {
    "upper-case-ascii": "Ana Alves <ANA@ACME.Example>",
    "quoted-name-with-a-comma": f'"Alves, Ana" <{ANA}>',
    "encoded-name": f"=?utf-8?q?Ana_Alves_=C3=A9?= <{ANA}>",
    "own-address-as-name": f"{ANA} <{ANA}>",
    "own-address-quoted-as-name": f'"{ANA.upper()}" <{ANA}>',
    "comment": f"{ANA} (Ana Alves)",
}


@pytest.mark.parametrize("sender", GENUINE.values(), ids=GENUINE.keys())
async def test_the_forms_a_real_contact_writes_are_applied(app: App, imap_account, sender: str) -> None:
    case = await open_case(app)
    imap_account.append(await _reply_from(app, case, sender))
    await run(app)
    (row,) = await inbound_rows(app)
    assert row.disposition == "applied", row.trail
    assert row.from_address == ANA
    assert await security_events(app) == []


@pytest.mark.parametrize("results, applied", [
    ("", False),
    (f"Authentication-Results: {TRUSTED_MX}; dmarc=pass header.from=acme.example\r\n", True),
    (f"Authentication-Results: {TRUSTED_MX}; dmarc=none header.from=acme.example\r\n", False),
    (f"Authentication-Results: {TRUSTED_MX}; dmarc=pass header.from=evil.example\r\n", False),
    ("Authentication-Results: mx.evil.example; dmarc=pass header.from=acme.example\r\n", False),
    (f"Authentication-Results: {TRUSTED_MX}; dmarc=fail header.from=acme.example\r\n"
     f"Authentication-Results: {TRUSTED_MX}; dmarc=pass header.from=acme.example\r\n", False),
], ids=["none", "trusted-pass", "trusted-none", "pass-for-another-domain", "untrusted-pass",
        "forged-pass-below-a-fail"])
async def test_require_dmarc_pass(
    db_url: str, imap_account, smtp_server, clock: FrozenClock, results: str, applied: bool
) -> None:
    async with world(db_url, imap_account, smtp_server, clock, require_dmarc_pass=True) as app:
        case = await open_case(app)
        imap_account.append(await _reply_from(app, case, ANA, headers=results))
        await run(app)
        (row,) = await inbound_rows(app)
        assert row.disposition == ("applied" if applied else "refused_unauthorized"), row.trail
        kinds = [e.kind for e in await security_events(app)]
        assert kinds == ([] if applied else ["unauthorized_sender"])
