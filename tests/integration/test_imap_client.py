"""Our IMAP client (gateway.inbound.imap.client) against a real Dovecot."""

from __future__ import annotations

import asyncio
import imaplib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from gateway.errors import PermanentTransportError, TemporaryTransportError, TransportTimeout
from gateway.inbound.imap.client import AioImapMailbox, connect
from tests.plugins.dovecot import ImapAccount

PLAIN = b"From: a@example.com\r\nTo: care@example.com\r\nSubject: plain\r\n\r\nHello.\r\n"
UNBALANCED = b"From: a@example.com\r\nSubject: Re: (case 42 urgent\r\n\r\nParenthesis (never closed\r\n"
TRICKY = (  # no NUL byte: Dovecot rewrites NUL in an APPEND literal
    b"From: b@example.com\r\nSubject: tricky ) ((\r\nContent-Type: application/octet-stream\r\n\r\n"
    b")\r\n* 5 FETCH (UID 99 BODY[] {3}\r\nabc)\r\nA1 OK done\r\n\x01\x7f\xfe\xff ) ( {12}\r\n"
)
MESSAGES = [PLAIN, UNBALANCED, TRICKY]

OpenMailbox = Callable[..., Awaitable[AioImapMailbox]]


@pytest.fixture
async def open_mailbox(imap_account: ImapAccount) -> AsyncIterator[OpenMailbox]:
    """Connects mailboxes for the test's account and closes them all at the end."""
    opened: list[AioImapMailbox] = []

    async def open_(settings: dict[str, Any] | None = None, **options: Any) -> AioImapMailbox:
        mailbox = await connect(imap_account.mailbox_settings(**(settings or {})), **options)
        opened.append(mailbox)
        return mailbox

    yield open_
    for mailbox in opened:
        await mailbox.close()


def seen_flags(account: ImapAccount) -> list[bytes]:
    client = account.connect()
    try:
        client.select("INBOX", readonly=True)
        return [line for line in client.fetch("1:*", "(FLAGS)")[1] if isinstance(line, bytes)]
    finally:
        client.logout()


async def test_login_and_capabilities(open_mailbox: OpenMailbox) -> None:
    mailbox = await open_mailbox()
    assert {"IDLE", "MOVE", "UIDPLUS"} <= mailbox.capabilities
    assert not mailbox.broken


async def test_bad_password_is_permanent(imap_account: ImapAccount) -> None:
    with pytest.raises(PermanentTransportError, match="login refused"):
        await connect(imap_account.mailbox_settings(password="wrong"))


async def test_refused_connection_is_temporary(imap_account: ImapAccount) -> None:
    from testkit.servers.dovecot import free_port

    with pytest.raises(TemporaryTransportError):
        await connect(imap_account.mailbox_settings(port=free_port()))


async def test_silent_server_times_out() -> None:
    from gateway.config import MailboxSettings

    writers: list[asyncio.StreamWriter] = []

    async def say_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(say_nothing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = MailboxSettings(name="t", host="127.0.0.1", port=port, tls="none", timeout_seconds=0.2)
    mailbox = AioImapMailbox(settings)
    try:
        with pytest.raises(TransportTimeout):
            await mailbox.connect()
        assert mailbox.broken
        with pytest.raises(TemporaryTransportError, match="not usable"):
            await mailbox.search_uids()
    finally:
        await mailbox.close()
        server.close()
        for writer in writers:
            writer.close()
            await writer.wait_closed()
        await server.wait_closed()


async def test_select_reports_uidvalidity_uidnext_exists(
    imap_account: ImapAccount, open_mailbox: OpenMailbox
) -> None:
    imap_account.append_many([PLAIN, PLAIN])
    first = await (await open_mailbox()).select()
    again = await (await open_mailbox()).select("INBOX")
    assert first.uidvalidity == again.uidvalidity > 0
    assert (first.name, first.exists, first.uidnext) == ("INBOX", 2, 3)


async def test_select_missing_folder_is_permanent(open_mailbox: OpenMailbox) -> None:
    mailbox = await open_mailbox()
    with pytest.raises(PermanentTransportError, match="cannot select"):
        await mailbox.select("NoSuchFolder")


async def test_search_from_a_min_uid(imap_account: ImapAccount, open_mailbox: OpenMailbox) -> None:
    uids = imap_account.append_many([PLAIN] * 4)
    mailbox = await open_mailbox()
    await mailbox.select()
    assert await mailbox.search_uids() == uids
    assert await mailbox.search_uids(uids[2]) == uids[2:]
    assert await mailbox.search_uids(uids[-1] + 1) == []  # "n:*" matches the last UID: filtered


async def test_fetch_returns_exact_bytes(imap_account: ImapAccount, open_mailbox: OpenMailbox) -> None:
    uids = imap_account.append_many(MESSAGES)
    mailbox = await open_mailbox()
    await mailbox.select()
    fetched = await mailbox.fetch([*uids, 999])
    assert fetched == list(zip(uids, MESSAGES, strict=True))  # 999 does not exist: left out
    assert await mailbox.fetch([uids[1]]) == [(uids[1], UNBALANCED)]
    assert all(b"\\Seen" not in line for line in seen_flags(imap_account))


async def test_fetch_sizes_and_header(imap_account: ImapAccount, open_mailbox: OpenMailbox) -> None:
    uids = imap_account.append_many(MESSAGES)
    mailbox = await open_mailbox()
    await mailbox.select()
    assert await mailbox.fetch_sizes([*uids, 999]) == {u: len(m) for u, m in zip(uids, MESSAGES, strict=True)}
    assert await mailbox.fetch_header(uids[2]) == TRICKY.split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    assert await mailbox.fetch_header(999) is None


async def test_fetch_many_in_batches(imap_account: ImapAccount, open_mailbox: OpenMailbox) -> None:
    raws = [PLAIN.replace(b"plain", f"n{i}".encode()) for i in range(450)]
    uids = imap_account.append_many(raws)
    mailbox = await open_mailbox({"batch_size": 120})
    await mailbox.select()
    assert await mailbox.fetch(uids) == list(zip(uids, raws, strict=True))
    assert len(await mailbox.fetch_sizes(uids)) == 450


async def test_ensure_folders_is_idempotent(imap_account: ImapAccount, open_mailbox: OpenMailbox) -> None:
    mailbox = await open_mailbox()
    await mailbox.ensure_folders(["Processed", "Refused", "Quarantine"])
    await mailbox.ensure_folders(["Processed", "Refused", "Quarantine", "Ärger & Co"])
    assert sorted(imap_account.folders()) == sorted(
        ["INBOX", "Processed", "Refused", "Quarantine", "&AMQ-rger &- Co"]
    )


@pytest.mark.parametrize("use_move", [True, False], ids=["MOVE", "COPY+EXPUNGE"])
async def test_move(imap_account: ImapAccount, open_mailbox: OpenMailbox, use_move: bool) -> None:
    raws = [PLAIN.replace(b"plain", f"m{i}".encode()) for i in range(600)]
    uids = imap_account.append_many(raws)
    mailbox = await open_mailbox(use_move=use_move)
    await mailbox.ensure_folders(["Processed"])
    await mailbox.select()
    # 300 UIDs, none adjacent: one command, a response of 300 lines (EXPUNGE)
    await mailbox.move(uids[1::2], "Processed")
    assert await mailbox.search_uids() == uids[::2]
    mailbox.max_uid_set_chars = 12  # the rest but the last in sets of a few UIDs: many commands
    await mailbox.move(uids[:-2:2], "Processed")
    assert await mailbox.search_uids() == [uids[-2]]
    await mailbox.move(uids[:1], "Processed")  # already gone: not an error
    assert sorted(imap_account.messages("Processed")) == sorted(raws[:-2] + raws[-1:])
    assert imap_account.messages() == raws[-2:-1]


async def test_idle_wakes_up_on_new_mail(imap_account: ImapAccount, open_mailbox: OpenMailbox) -> None:
    idling = asyncio.Event()
    mailbox = await open_mailbox(on_idle=idling.set)
    await mailbox.select()
    waiter = asyncio.create_task(mailbox.wait_for_changes(30))
    await idling.wait()
    await asyncio.to_thread(imap_account.append, PLAIN)
    assert await waiter is True
    assert len(await mailbox.search_uids()) == 1  # the connection is usable after DONE


async def test_idle_returns_false_on_timeout(open_mailbox: OpenMailbox) -> None:
    mailbox = await open_mailbox()
    await mailbox.select()
    assert await mailbox.wait_for_changes(0.05) is False
    assert not mailbox.broken
    assert await mailbox.search_uids() == []


async def test_idle_without_a_selected_folder_is_refused_before_it_is_sent(
    open_mailbox: OpenMailbox,
) -> None:
    """aioimaplib would refuse it too, but leave behind a failed task that nobody awaits."""
    mailbox = await open_mailbox()
    with pytest.raises(TemporaryTransportError, match="no folder selected"):
        await mailbox.wait_for_changes(30)
    assert mailbox.broken


async def test_without_idle_the_wait_is_the_injected_sleep(open_mailbox: OpenMailbox) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    mailbox = await open_mailbox({"idle": False, "poll_seconds": 42.0}, sleep=sleep)
    await mailbox.select()
    assert await mailbox.wait_for_changes() is False
    assert slept == [42.0]


async def test_tls_verification_fails_with_default_cas(imap_account: ImapAccount) -> None:
    settings = imap_account.mailbox_settings(tls="tls", port=imap_account.tls_port)
    with pytest.raises(PermanentTransportError, match="certificate"):
        await connect(settings)


async def test_tls_works_with_the_ca_file(imap_account: ImapAccount) -> None:
    imap_account.append(PLAIN)
    settings = imap_account.mailbox_settings(tls="tls", port=imap_account.tls_port)
    mailbox = await connect(settings, ca_file=imap_account.ca_file)
    try:
        await mailbox.select()
        assert [raw for _, raw in await mailbox.fetch(await mailbox.search_uids())] == [PLAIN]
    finally:
        await mailbox.close()


async def test_close_returns_once_a_tls_connection_is_closed(imap_account: ImapAccount) -> None:
    """TLS closes in the background (close_notify first): a socket still open when the event
    loop ends is never closed, so close() waits for it."""
    settings = imap_account.mailbox_settings(tls="tls", port=imap_account.tls_port)
    mailbox = await connect(settings, ca_file=imap_account.ca_file)
    await mailbox.select()
    sock = mailbox._client.protocol.transport.get_extra_info("socket")
    assert sock.fileno() >= 0
    await mailbox.close()
    assert sock.fileno() == -1


def test_stdlib_sees_no_seen_flag_helper_is_sane(imap_account: ImapAccount) -> None:
    imap_account.append(PLAIN)
    client = imap_account.connect()
    try:
        client.select("INBOX")
        client.fetch("1", "(BODY[])")  # sets \Seen, unlike ours
    finally:
        client.logout()
    assert any(b"\\Seen" in line for line in seen_flags(imap_account))
    assert isinstance(client, imaplib.IMAP4)


async def test_cancelled_idle_leaves_a_broken_mailbox(open_mailbox: OpenMailbox) -> None:
    idling = asyncio.Event()
    mailbox = await open_mailbox(on_idle=idling.set)
    await mailbox.select()
    waiter = asyncio.create_task(mailbox.wait_for_changes(30))
    await idling.wait()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert mailbox.broken  # the connection is mid-IDLE: the caller replaces it
