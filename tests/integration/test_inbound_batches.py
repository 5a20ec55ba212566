"""Batches over a real Dovecot: while a batch is decided, the next ones are fetched (and
parsing) and the batches before it moved; a message is moved only after its commit; stopping
between batches moves what was decided and leaves the batches fetched ahead (stored)
undecided in the inbox."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from gateway.app import App
from gateway.clock import FrozenClock
from gateway.config import Settings
from gateway.daemon import Daemon, RunSummary
from gateway.inbound.imap import client as imap_module
from gateway.inbound.loop import batch as batch_module
from gateway.inbound.loop import round as round_module
from gateway.outbound.transport import MemoryTransport
from testkit.mails import inbound_rows, new_mail
from testkit.world import add_customer, open_world, settings_for


def five_new_case_attempts(imap_account: Any) -> None:
    imap_account.append_many(
        new_mail(sender=f"person{n}@example.org", subject=f"Attempt {n}", text="Open a case.")
        for n in range(5)
    )


@contextlib.asynccontextmanager
async def five_attempts_run(
    settings: Settings, clock: FrozenClock, imap_account: Any
) -> AsyncIterator[tuple[App, RunSummary]]:
    """A world with the customer, five new-case attempts in the inbox, and ``run --once``."""
    async with open_world(settings, clock) as app:
        await add_customer(app)
        five_new_case_attempts(imap_account)
        yield app, await Daemon(app, transport=MemoryTransport()).run_once()


def recorded_steps(monkeypatch: Any) -> list[tuple[str, list[int]]]:
    """The IMAP fetches and moves and the batches decided, in order, as they happen."""
    steps: list[tuple[str, list[int]]] = []
    fetch, move = imap_module.AioImapMailbox.fetch, imap_module.AioImapMailbox.move
    process = batch_module.BatchDecider.process

    async def fetching(self: Any, uids: Any) -> Any:
        steps.append(("fetch", list(uids)))
        return await fetch(self, uids)

    async def moving(self: Any, uids: Any, folder: str) -> Any:
        steps.append(("move", list(uids)))
        return await move(self, uids, folder)

    async def deciding(self: Any, mailbox: Any, batch: Any, *args: Any) -> Any:
        steps.append(("decide", [f.uid for f in batch]))
        decided = await process(self, mailbox, batch, *args)
        steps.append(("committed", sorted(decided)))
        return decided

    monkeypatch.setattr(imap_module.AioImapMailbox, "fetch", fetching)
    monkeypatch.setattr(imap_module.AioImapMailbox, "move", moving)
    monkeypatch.setattr(batch_module.BatchDecider, "process", deciding)
    return steps


async def test_imap_work_runs_while_a_batch_is_decided_and_moves_follow_commits(
    db_url: str, imap_account: Any, clock: FrozenClock, monkeypatch: Any
) -> None:
    box = imap_account.mailbox_settings(batch_size=2, move_batch_size=1)  # each batch moved
    settings = settings_for(db_url, mailboxes=[box])
    steps = recorded_steps(monkeypatch)
    async with five_attempts_run(settings, clock, imap_account) as (app, summary):
        assert round_module.FETCH_AHEAD == 2
        # The two batches after the first are fetched (their parsing starts) before the first
        # is committed ...
        assert steps[0] == ("fetch", [1, 2])
        first_commit = steps.index(("committed", [1, 2]))
        assert steps.index(("decide", [1, 2])) < first_commit
        assert steps.index(("fetch", [3, 4])) < first_commit
        assert steps.index(("fetch", [5])) < first_commit
        # ... and before the decided one is moved ...
        assert steps.index(("fetch", [5])) < steps.index(("move", [1, 2]))
        # ... and every batch is moved after its commit, before the round ends.
        for uids in ([1, 2], [3, 4], [5]):
            assert steps.index(("move", uids)) > steps.index(("committed", uids))
        assert steps.index(("fetch", [5])) < steps.index(("decide", [5]))
        assert (summary.inbound.decided, summary.inbound.moved) == (5, 5)
        assert [r.disposition for r in await inbound_rows(app)] == ["refused_new_case"] * 5
        assert imap_account.messages("INBOX") == []


async def test_batches_fetched_ahead_are_stored_in_the_order_fetched(
    db_url: str, imap_account: Any, clock: FrozenClock, monkeypatch: Any
) -> None:
    """Each batch fetched ahead is stored by a task of its own: while the store of [3, 4] is
    held up (until [5] has been fetched), [5]'s store waits its turn, so the rows are numbered
    in the mailbox's order and no two write transactions wait on each other."""
    settings = settings_for(db_url, mailboxes=[imap_account.mailbox_settings(batch_size=2)])
    steps = recorded_steps(monkeypatch)
    fetch, store = imap_module.AioImapMailbox.fetch, batch_module.BatchDecider.store
    last_fetched = asyncio.Event()

    async def fetching(self: Any, uids: Any) -> Any:
        found = await fetch(self, uids)
        if list(uids) == [5]:
            last_fetched.set()
        return found

    async def storing(self: Any, mailbox: Any, uidvalidity: int, batch: Any) -> Any:
        uids = [f.uid for f in batch]
        steps.append(("store", uids))
        if uids == [3, 4]:
            await last_fetched.wait()
        stored = await store(self, mailbox, uidvalidity, batch)
        steps.append(("stored", uids))
        return stored

    monkeypatch.setattr(imap_module.AioImapMailbox, "fetch", fetching)
    monkeypatch.setattr(batch_module.BatchDecider, "store", storing)
    async with five_attempts_run(settings, clock, imap_account) as (app, summary):
        assert steps.index(("fetch", [5])) < steps.index(("stored", [3, 4]))  # [5] was ready first
        stores = [(step, uids) for step, uids in steps if step.startswith("store")]
        assert stores == [("store", [1, 2]), ("stored", [1, 2]), ("store", [3, 4]), ("stored", [3, 4]),
                          ("store", [5]), ("stored", [5])]
        assert [r.uid for r in await inbound_rows(app)] == [1, 2, 3, 4, 5]
        assert summary.inbound.decided == 5


async def test_decided_messages_are_moved_together_once_enough_are_committed(
    db_url: str, imap_account: Any, clock: FrozenClock, monkeypatch: Any
) -> None:
    """An IMAP server's work per MOVE grows with the folder: messages are moved in sets of
    ``move_batch_size`` (here 3: two batches of two), the rest at the end of the round."""
    box = imap_account.mailbox_settings(batch_size=2, move_batch_size=3)
    settings = settings_for(db_url, mailboxes=[box])
    steps = recorded_steps(monkeypatch)
    async with five_attempts_run(settings, clock, imap_account) as (_app, summary):
        assert [uids for step, uids in steps if step == "move"] == [[1, 2, 3, 4], [5]]
        assert steps.index(("move", [1, 2, 3, 4])) > steps.index(("committed", [3, 4]))
        assert steps.index(("move", [5])) > steps.index(("committed", [5]))
        assert (summary.inbound.decided, summary.inbound.moved) == (5, 5)
        assert imap_account.messages("INBOX") == []
        assert len(imap_account.messages("Refused")) == 5


async def test_stopping_leaves_the_batches_fetched_ahead_undecided(
    db_url: str, imap_account: Any, clock: FrozenClock, monkeypatch: Any
) -> None:
    settings = settings_for(db_url, mailboxes=[imap_account.mailbox_settings(batch_size=2)])
    process = batch_module.BatchDecider.process

    async def decide_then_stop(self: Any, *args: Any) -> Any:
        decided = await process(self, *args)
        daemon.stop()  # as SIGTERM would, once the first batch is committed
        return decided

    async with open_world(settings, clock) as app:
        await add_customer(app)
        five_new_case_attempts(imap_account)
        with monkeypatch.context() as patch:
            patch.setattr(batch_module.BatchDecider, "process", decide_then_stop)
            daemon = Daemon(app, transport=MemoryTransport())
            summary = await daemon.run_once()
        assert (summary.inbound.decided, summary.inbound.moved) == (2, 2)
        assert len(imap_account.messages("INBOX")) == 3
        # the two batches fetched ahead were stored (raw kept) but not decided
        assert [r.disposition for r in await inbound_rows(app)] == ["refused_new_case"] * 2 + [None] * 3

        summary = await Daemon(app, transport=MemoryTransport()).run_once()
        assert summary.inbound.decided == 3
        assert [r.disposition for r in await inbound_rows(app)] == ["refused_new_case"] * 5
        assert imap_account.messages("INBOX") == []
