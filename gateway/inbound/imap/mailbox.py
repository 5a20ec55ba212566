"""The :class:`Mailbox` interface the inbound side is written against.

Two implementations exist: :class:`gateway.inbound.imap.client.AioImapMailbox` (a real IMAP
connection) and :class:`gateway.inbound.imap.memory.MemoryMailbox` (an in-memory twin for
unit tests). A caller replaces a broken one with a new one (the daemon's
:class:`~gateway.inbound.loop.runner.MailboxRunner` does, with randomised backoff).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from gateway.inbound.imap.wire import FolderState

__all__ = ["FolderState", "Mailbox"]


class Mailbox(Protocol):
    """One IMAP account as the inbound side sees it; any method may raise a TransportError.

    Message methods work on the folder of the last :meth:`select`. ``broken`` is True once a
    connection error happened: the caller then closes this one and opens a new one.
    """

    @property
    def broken(self) -> bool: ...

    async def select(self, folder: str | None = None) -> FolderState: ...
    async def ensure_folders(self, names: Iterable[str]) -> None: ...
    async def search_uids(self, min_uid: int = 1) -> list[int]: ...
    async def fetch_sizes(self, uids: Sequence[int]) -> dict[int, int]: ...
    async def fetch(self, uids: Sequence[int]) -> list[tuple[int, bytes]]: ...
    async def fetch_header(self, uid: int) -> bytes | None: ...
    async def move(self, uids: Sequence[int], folder: str) -> None: ...
    async def wait_for_changes(self, timeout: float | None = None) -> bool: ...  # noqa: ASYNC109
    async def close(self) -> None: ...
