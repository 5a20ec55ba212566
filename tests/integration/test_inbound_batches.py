"""Batches over a real Dovecot: the next batch is fetched (and parsing) while the current one is
decided; stopping between batches leaves the batch fetched ahead undecided in the inbox."""

from __future__ import annotations

from typing import Any

from gateway.clock import FrozenClock
from gateway.daemon import Daemon
from gateway.inbound import imap as imap_module
from gateway.inbound import processor as processor_module
from gateway.inbound import runner as runner_module
from gateway.outbound.transport import MemoryTransport
from tests.mails import inbound_rows, new_mail
from tests.world import add_customer, open_world, settings_for


def five_new_case_attempts(imap_account: Any) -> None:
    imap_account.append_many(
        new_mail(sender=f"person{n}@example.org", subject=f"Attempt {n}", text="Open a case.")
        for n in range(5)
    )


async def test_the_next_batch_is_fetched_before_the_current_one_is_decided(
    db_url: str, imap_account: Any, clock: FrozenClock, monkeypatch: Any
) -> None:
    settings = settings_for(db_url, mailboxes=[imap_account.mailbox_settings(batch_size=2)])
    steps: list[tuple[str, list[int]]] = []
    fetch, process = imap_module.AioImapMailbox.fetch, processor_module.Processor.process

    async def fetching(self: Any, uids: Any) -> Any:
        steps.append(("fetch", list(uids)))
        return await fetch(self, uids)

    async def deciding(self: Any, mailbox: Any, uidvalidity: int, batch: Any, *args: Any) -> Any:
        steps.append(("decide", [f.uid for f in batch]))
        return await process(self, mailbox, uidvalidity, batch, *args)

    monkeypatch.setattr(imap_module.AioImapMailbox, "fetch", fetching)
    monkeypatch.setattr(processor_module.Processor, "process", deciding)
    async with open_world(settings, clock) as app:
        await add_customer(app)
        five_new_case_attempts(imap_account)
        summary = await Daemon(app, transport=MemoryTransport()).run_once()
        assert steps[:6] == [
            ("fetch", [1, 2]), ("fetch", [3, 4]), ("decide", [1, 2]),
            ("fetch", [5]), ("decide", [3, 4]), ("decide", [5]),
        ]
        assert (summary.inbound.decided, summary.inbound.moved) == (5, 5)
        assert [r.disposition for r in await inbound_rows(app)] == ["refused_new_case"] * 5
        assert imap_account.messages("INBOX") == []


async def test_stopping_leaves_the_batch_fetched_ahead_undecided(
    db_url: str, imap_account: Any, clock: FrozenClock, monkeypatch: Any
) -> None:
    settings = settings_for(db_url, mailboxes=[imap_account.mailbox_settings(batch_size=2)])
    move = runner_module.MailboxRunner._move

    async def move_then_stop(self: Any, *args: Any) -> int:
        moved = await move(self, *args)
        self.stop()  # as SIGTERM would, once the first batch is committed and moved
        return moved

    async with open_world(settings, clock) as app:
        await add_customer(app)
        five_new_case_attempts(imap_account)
        with monkeypatch.context() as patch:
            patch.setattr(runner_module.MailboxRunner, "_move", move_then_stop)
            summary = await Daemon(app, transport=MemoryTransport()).run_once()
        assert (summary.inbound.decided, summary.inbound.moved) == (2, 2)
        assert len(imap_account.messages("INBOX")) == 3
        assert [r.disposition for r in await inbound_rows(app)] == ["refused_new_case"] * 2

        summary = await Daemon(app, transport=MemoryTransport()).run_once()
        assert summary.inbound.decided == 3
        assert [r.disposition for r in await inbound_rows(app)] == ["refused_new_case"] * 5
        assert imap_account.messages("INBOX") == []
