"""The in-memory Mailbox twin (the runner driven by it: tests/integration/test_inbound_reconnect.py)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.errors import PermanentTransportError, TemporaryTransportError
from gateway.inbound.imap.mailbox import Mailbox
from gateway.inbound.imap.memory import MemoryMailbox

RAW = b"Subject: one\r\nFrom: a@example.com\r\n\r\nbody\r\n"


def test_it_satisfies_the_protocol() -> None:
    mailbox: Mailbox = MemoryMailbox()
    assert not mailbox.broken


async def test_select_search_fetch() -> None:
    mailbox = MemoryMailbox()
    uids = [mailbox.deliver(RAW), mailbox.deliver(RAW + b"2")]
    state = await mailbox.select()
    assert (state.name, state.uidvalidity, state.uidnext, state.exists) == ("INBOX", 1, 3, 2)
    assert await mailbox.search_uids() == uids
    assert await mailbox.search_uids(2) == [2]
    assert await mailbox.fetch([2, 1, 99]) == [(2, RAW + b"2"), (1, RAW)]
    assert await mailbox.fetch_sizes([1, 99]) == {1: len(RAW)}
    assert await mailbox.fetch_header(1) == b"Subject: one\r\nFrom: a@example.com\r\n\r\n"
    assert await mailbox.fetch_header(99) is None


async def test_unknown_folder_is_permanent() -> None:
    with pytest.raises(PermanentTransportError):
        await MemoryMailbox().select("Nope")


async def test_move_gives_new_uids_and_needs_the_folder() -> None:
    mailbox = MemoryMailbox()
    first, second = mailbox.deliver(RAW), mailbox.deliver(RAW + b"2")
    await mailbox.select()
    await mailbox.ensure_folders(["Processed", "Processed"])
    await mailbox.move([first, 77], "Processed")
    assert mailbox.messages() == {second: RAW + b"2"}
    assert mailbox.messages("Processed") == {1: RAW}
    with pytest.raises(TemporaryTransportError, match="TRYCREATE"):
        await mailbox.move([second], "Missing")
    assert mailbox.broken


async def test_uids_are_never_reused_and_uidvalidity_can_change() -> None:
    mailbox = MemoryMailbox(uidvalidity=7)
    uid = mailbox.deliver(RAW)
    await mailbox.select()
    await mailbox.ensure_folders(["Done"])
    await mailbox.move([uid], "Done")
    assert mailbox.deliver(RAW) == uid + 1
    mailbox.reset_uidvalidity()
    state = await mailbox.select()
    assert state.uidvalidity == 8 and await mailbox.search_uids() == [1]


async def test_injected_failures_break_the_connection_until_reopen() -> None:
    mailbox = MemoryMailbox()
    mailbox.deliver(RAW)
    await mailbox.select()
    mailbox.fail_next("fetch", times=2)
    with pytest.raises(TemporaryTransportError, match="injected"):
        await mailbox.fetch([1])
    assert mailbox.broken
    with pytest.raises(TemporaryTransportError, match="broken"):
        await mailbox.search_uids()
    mailbox.reopen()
    await mailbox.select()
    with pytest.raises(TemporaryTransportError, match="injected"):
        await mailbox.fetch([1])
    await mailbox.reopen().select()
    assert await mailbox.fetch([1]) == [(1, RAW)]


async def test_injected_permanent_failure_does_not_break() -> None:
    mailbox = MemoryMailbox()
    mailbox.fail_next("select", error=PermanentTransportError("denied"))
    with pytest.raises(PermanentTransportError):
        await mailbox.select()
    assert not mailbox.broken
    with pytest.raises(ValueError):
        mailbox.fail_next("no_such_method")


async def test_wait_for_changes_without_waiting_for_time() -> None:
    mailbox = MemoryMailbox()
    await mailbox.select()
    assert await mailbox.wait_for_changes(0) is False
    waiter = asyncio.create_task(mailbox.wait_for_changes(30))
    await asyncio.sleep(0)  # let the waiter start; a yield, not a wait for time
    mailbox.deliver(RAW)
    assert await waiter is True
    assert await MemoryMailbox(idle=False).wait_for_changes(30) is False


async def test_idle_needs_a_selected_folder_as_on_a_real_server() -> None:
    mailbox = MemoryMailbox()
    with pytest.raises(TemporaryTransportError, match="no folder selected"):
        await mailbox.wait_for_changes(0)
    assert mailbox.broken


async def test_closed_mailbox_refuses_calls() -> None:
    mailbox = MemoryMailbox()
    await mailbox.close()
    with pytest.raises(TemporaryTransportError, match="closed"):
        await mailbox.select()
