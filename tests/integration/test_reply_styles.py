"""Replies in the shapes of the common mail programs (``tests/data/replies``), run through
the whole inbound pipeline: Dovecot, one daemon pass, the real database. Each must put on
the case timeline exactly the new text beside it: everything the customer wrote, none of our
quoted mail, quote headers or signatures; forwarded mail under a line naming its sender;
a reply with nothing new keeps its whole text, flagged."""

from __future__ import annotations

import asyncio
import email
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email import policy
from typing import Any

import pytest
from sqlalchemy import select

from gateway.app import App
from gateway.cases import get_case, timeline
from gateway.clock import FrozenClock
from gateway.daemon import Daemon
from gateway.domain import WHOLE_TEXT_KEPT
from gateway.models import Attachment
from testkit.mails import inbound_rows, stored_raw
from testkit.servers.smtp import RecordingSmtpServer
from testkit.world import add_customer, open_world, settings_for
from tests.cli_helpers import Gateway
from tests.plugins.smtp import smtp_settings
from tests.replies import fixtures, request_information


@asynccontextmanager
async def world(db_url: str, imap_account: Any, smtp_server: RecordingSmtpServer, clock: FrozenClock,
                workers: int) -> AsyncIterator[App]:
    settings = settings_for(db_url, mailboxes=[imap_account.mailbox_settings()],
                            smtp=smtp_settings(smtp_server), inbound={"parse_workers": workers})
    async with open_world(settings, clock) as app:
        await add_customer(app)
        yield app


@pytest.fixture(params=[0, 1], ids=["in-process", "worker-process"])
async def app(request: pytest.FixtureRequest, db_url: str, imap_account: Any,
              smtp_server: RecordingSmtpServer, clock: FrozenClock) -> AsyncIterator[App]:
    """A world whose replies are read in the daemon's process, or in a parse worker process
    (the reading then crosses a process boundary before the pipeline finishes it)."""
    async with world(db_url, imap_account, smtp_server, clock, request.param) as app:
        yield app


def whole_text(raw: bytes) -> str:
    """The text part of a fixture as a mail program reads it."""
    message = email.message_from_bytes(raw, policy=policy.default)
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n").strip()


async def test_every_reply_style_puts_the_whole_answer_and_nothing_of_ours_on_the_case(
    app: App, imap_account, smtp_server
) -> None:
    case, request = await request_information(app)
    replies = fixtures()
    assert len(replies) >= 30
    mails = {reply.name: reply.mail(request) for reply in replies}
    imap_account.append_many(mails.values())
    await Daemon(app).run_once()

    rows = await inbound_rows(app)
    assert [r.disposition for r in rows] == ["applied"] * len(replies), [(r.subject, r.trail) for r in rows]
    by_message_id = {email.message_from_bytes(raw)["Message-ID"]: name for name, raw in mails.items()}
    name_of_row = {row.id: by_message_id[row.message_id] for row in rows}
    async with app.sessions() as session:
        events = [e for e in await timeline(session, await get_case(session, case.number))
                  if e.kind == "customer_reply"]
        attachments = list((await session.scalars(select(Attachment))).all())
    assert len(events) == len(replies)
    wrong = []
    for event in events:
        fixture = next(f for f in replies if f.name == name_of_row[event.inbound_message_id])
        flagged = bool((event.data or {}).get(WHOLE_TEXT_KEPT))
        expected = whole_text(mails[fixture.name]) if fixture.whole else fixture.expected
        if event.body != expected or flagged != fixture.whole:
            wrong.append(f"== {fixture.name} (flagged: {flagged})\n{event.body}\n-- expected:\n{expected}")
    assert not wrong, "\n".join(wrong)
    forwarded = [a for a in attachments if a.content_type == "message/rfc822"]
    assert [name_of_row[a.inbound_message_id] for a in forwarded] == ["forward_attached"]
    assert b"Trunks 3 and 7 drop calls" in forwarded[0].content
    async with app.sessions() as session:
        assert (await get_case(session, case.number)).status == "in_progress"


async def test_care_sees_where_each_entry_came_from_and_the_original_mail(
    db_url: str, imap_account, smtp_server, clock: FrozenClock, tmp_path
) -> None:
    async with world(db_url, imap_account, smtp_server, clock, 0) as app:
        case, request = await request_information(app)
        chosen = {f.name: f for f in fixtures()}
        mails = [chosen[name].mail(request) for name in ("mutt_bottom", "nothing_written")]
        imap_account.append_many(mails)
        await Daemon(app).run_once()
        answered, empty = await inbound_rows(app)
        assert await stored_raw(app, answered) == mails[0]
        assert "whole text kept, extraction in doubt" in empty.trail[-1]["detail"]
        assert "whole text kept" not in answered.trail[-1]["detail"]
    gw = Gateway(db_url)

    def cli(*args: str) -> Any:  # the command line runs its own event loop: off this one
        return asyncio.to_thread(gw, *args)

    shown = (await cli("case", "show", case.number)).out
    assert f"customer_reply     ana@acme.example  (inbound {answered.id})\n" in shown
    assert f"(inbound {empty.id}; whole text kept, extraction in doubt)" in shown
    entries = (await cli("case", "show", case.number, "--json")).json()["timeline"]
    replies = [e["inbound_message_id"] for e in entries if e["kind"] == "customer_reply"]
    assert replies == [answered.id, empty.id]

    raw = await cli("inbound", "show", str(answered.id), "--raw")
    assert (raw.code, raw.out_bytes) == (0, mails[0])
    target = tmp_path / "original.eml"
    written = await cli("inbound", "show", str(empty.id), "--raw", "--out", str(target))
    assert (written.code, written.out, target.read_bytes()) == (0, "", mails[1])
    assert (await cli("inbound", "show", str(empty.id), "--out", str(target))).code != 0  # needs --raw
    assert "no inbound message 999" in (await cli("inbound", "show", "999", "--raw")).err
