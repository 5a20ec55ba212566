"""No backscatter: an automatic answer goes to whatever address a From names, which anyone
can forge, so it repeats nothing of the sender's but a short cleaned display name, and the
answers to all addresses together are capped per hour (care management is told, once an
hour). End to end on a real Dovecot and SMTP server and both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from gateway.app import App
from gateway.clock import FrozenClock
from gateway.models import Outbox
from testkit.mails import inbound_rows, new_mail, parse, raw_mail
from testkit.servers.smtp import RecordingSmtpServer
from tests.integration.test_inbound_policy import body_of, one_answer, run, world

VICTIM = "victim@elsewhere.example"


@pytest.fixture
async def app(db_url: str, imap_account: Any, smtp_server: RecordingSmtpServer,
              clock: FrozenClock) -> AsyncIterator[App]:
    async with world(db_url, imap_account, smtp_server, clock) as app:
        yield app


async def test_a_refusal_repeats_a_short_clean_name_and_little_else(app: App, imap_account,
                                                                    smtp_server) -> None:
    name = "Buy cheap pills at pills example " + "A" * 200_000
    references = " ".join(f"<ref{n}.{'x' * 400}@spam.example>" for n in range(100))
    imap_account.append(raw_mail(sender=f"{name} <{VICTIM}>", subject="Please open a case",
                                 body=b"Hello\r\n", headers=f"References: {references}\r\n"))
    await run(app)

    (row,) = await inbound_rows(app)
    assert row.disposition == "refused_new_case", row.trail
    _, data = await one_answer(app, smtp_server, row.id, "new_case_refused", VICTIM)
    assert len(data) < 20_000, len(data)
    message = parse(data)
    shown = str(message["To"])
    assert shown.startswith("Buy cheap pills at pills example AAAA") and len(shown) < 120, shown
    assert f"Dear Buy cheap pills at pills example {'A' * 30}…," in body_of(data)
    assert "A" * 31 not in body_of(data)
    assert len(str(message["References"]).split()) <= 6


async def test_a_from_too_long_to_parse_strictly_is_refused_at_once(app: App, imap_account,
                                                                  smtp_server) -> None:
    """The strict parser's time grows with the square of a From's length: past two lines'
    worth it is not asked, and the mail names no sender to trust (nor to answer)."""
    name = "\\" * 100_000
    imap_account.append(raw_mail(sender=f'"{name}" <{VICTIM}>', subject="Please open a case", body=b"Hi\r\n"))
    await run(app)
    (row,) = await inbound_rows(app)
    assert row.disposition == "refused_unauthorized", row.trail
    assert "characters" in row.trail[-1]["detail"]
    assert smtp_server.messages == []


async def test_automatic_answers_are_capped_per_hour_and_care_is_told_once(
    db_url: str, imap_account, smtp_server, clock: FrozenClock
) -> None:
    async with world(db_url, imap_account, smtp_server, clock, auto_replies_per_hour=3) as app:
        imap_account.append_many(new_mail(sender=f"stranger{n}@evil{n}.example", subject=f"Case {n}",
                                          text="Open a case for me.") for n in range(5))
        await run(app)
        clock.advance(timedelta(minutes=20))
        imap_account.append_many(new_mail(sender=f"late{n}@evil.example", subject=f"Late {n}",
                                          text="Open a case for me.") for n in range(2))
        await run(app)

        rows = await inbound_rows(app)
        assert [r.disposition for r in rows] == ["refused_new_case"] * 7  # all recorded
        notes = [t["detail"] for r in rows for t in r.trail if t["stage"] == "respond"]
        assert sum("queued to" in n for n in notes) == 3
        assert sum("auto_replies_per_hour" in n for n in notes) == 4
        async with app.sessions() as session:
            kinds = list(await session.scalars(select(Outbox.kind).order_by(Outbox.id)))
        assert kinds.count("new_case_refused") == 3
        assert kinds.count("auto_replies_paused") == 1  # told once
        told = [m for m in smtp_server.messages if "care-management@vendor.example" in m.rcpt_tos]
        assert len(told) == 1 and b"Automatic answers paused" in told[0].data
        assert len(smtp_server.messages) == 4

        clock.advance(timedelta(minutes=45))  # the first three answers are more than an hour old
        imap_account.append(new_mail(sender="next@evil.example", subject="Again", text="Open one."))
        await run(app)
        last = (await inbound_rows(app))[-1]
        await one_answer(app, smtp_server, last.id, "new_case_refused", "next@evil.example")
