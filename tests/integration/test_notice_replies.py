"""Mail that comes back from a distribution list, end to end on real Dovecot and SMTP: a reply
to a notice is refused with how to open a case, quoting the notice's reference; an
out-of-office is not answered; bounces count toward the list's suspension."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway import directory
from gateway.app import App
from gateway.clock import FrozenClock
from gateway.daemon import Daemon
from gateway.notices import lists
from gateway.notices.incidents import Incidents
from testkit.mails import answers, bounce, inbound_rows, new_mail, out_of_office, parse, reply, text_of
from testkit.servers.smtp import RecordingSmtpServer
from testkit.world import open_world, settings_for
from tests.plugins.smtp import smtp_settings

LIST = "noc@acme.example"


@pytest.fixture
async def app(db_url: str, imap_account: Any, smtp_server: RecordingSmtpServer,
              clock: FrozenClock) -> AsyncIterator[App]:
    settings = settings_for(db_url, mailboxes=[imap_account.mailbox_settings()],
                            smtp=smtp_settings(smtp_server))
    async with open_world(settings, clock) as app:
        async with app.sessions.begin() as session:
            await directory.add_organisation(session, clock, name="Acme Corp", timezone="Europe/Berlin",
                                             country="DE", total_agents=100)
            await lists.add(session, clock.now(), address=LIST, organisation="Acme Corp",
                            timezone=None, kinds=None)
        yield app


async def open_incident(app: App, summary: str = "Calls drop") -> str:
    async with app.sessions.begin() as session:
        notice = await Incidents(app.settings, app.renderer).open(
            session, app.clock.now(), orgs="Acme Corp", everyone=False, summary=summary,
            impact="Agents disconnected", services=None, recommendation=None)
        return notice.reference


async def test_a_reply_to_a_notice_is_told_how_to_open_a_case(
    app: App, imap_account: Any, smtp_server: RecordingSmtpServer
) -> None:
    reference = await open_incident(app)
    await Daemon(app).run_once()
    [alert] = smtp_server.messages
    imap_account.append(reply(alert.data, sender=LIST, text="Is chat affected too?"))
    imap_account.append(new_mail(sender="cto@acme.example", subject=f"Question about {reference}",
                                 text="When is the RCA due?"))
    imap_account.append(new_mail(sender="cto@acme.example", subject="About INC-2026-00999",
                                 text="Unknown reference."))
    imap_account.append(out_of_office(alert.data, sender=LIST))
    await Daemon(app).run_once()
    rows = await inbound_rows(app)
    assert [r.disposition for r in rows] == [
        "refused_new_case", "refused_new_case", "refused_new_case", "auto_reply_ignored"]
    bodies = []
    for row in rows[:3]:
        [answer] = await answers(app, row.id)
        assert answer.kind == "new_case_refused" and answer.case_id is None
        bodies.append(" ".join(text_of(parse(answer.data)).split()))
    for body in bodies[:2]:
        assert f"Your email answers our notice {reference}." in body
        assert f"quote the reference {reference}" in body
        assert "cannot be opened by email" in body
    assert "answers our notice" not in bodies[2]  # no such notice: nothing to quote
    assert await answers(app, rows[3].id) == []


async def test_bounces_count_toward_suspension(
    app: App, imap_account: Any, smtp_server: RecordingSmtpServer, clock: FrozenClock
) -> None:
    for n in range(3):
        await open_incident(app, f"Incident {n}")
    await Daemon(app).run_once()
    assert len(smtp_server.messages) == 3
    for sent in smtp_server.messages:
        imap_account.append(bounce(sent.data, recipient=LIST))
    await Daemon(app).run_once()
    assert {r.disposition for r in await inbound_rows(app)} == {"bounce"}
    async with app.sessions() as session:
        [view] = await lists.views(session)
    assert (view.failures, view.suspended_at) == (3, None)
    clock.advance(minutes=5)
    await open_incident(app, "Incident 4")
    await Daemon(app).run_once()
    assert [m.rcpt_tos for m in smtp_server.messages[3:]] == [("care-management@vendor.example",)]
    async with app.sessions() as session:
        [view] = await lists.views(session)
    assert view.suspended_at == clock.now()
