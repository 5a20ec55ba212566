"""End to end on a real Dovecot: a designated contact's reply updates the case."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from gateway.app import App
from gateway.cases import get_case, timeline
from gateway.clock import FrozenClock
from gateway.daemon import Daemon
from gateway.models import InboundMessage
from gateway.outbound.transport import MemoryTransport
from tests.mails import reply, sent_mail
from tests.world import ANA, add_customer, open_case, open_world, settings_for


@pytest.fixture
async def app(db_url: str, imap_account, clock: FrozenClock):
    settings = settings_for(db_url, mailboxes=[imap_account.mailbox_settings()])
    async with open_world(settings, clock) as app:
        await add_customer(app)
        yield app


async def test_reply_is_applied(app: App, imap_account) -> None:
    case = await open_case(app)
    original = await sent_mail(app, case.id)
    imap_account.append(reply(original, sender=ANA, text="Here are the logs you asked for."))
    summary = await Daemon(app, transport=MemoryTransport()).run_once()
    assert summary.inbound.decided == 1
    async with app.sessions() as session:
        row = (await session.scalars(select(InboundMessage))).one()
        assert row.disposition == "applied", row.trail
        events = await timeline(session, await get_case(session, case.number))
    assert events[-1].kind == "customer_reply"
    assert events[-1].body == "Here are the logs you asked for."
    assert imap_account.messages("INBOX") == []
    assert len(imap_account.messages("Processed")) == 1
