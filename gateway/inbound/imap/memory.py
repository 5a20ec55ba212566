"""An in-memory :class:`~gateway.inbound.imap.mailbox.Mailbox`, the twin of the IMAP client for unit tests.

It behaves like the real client where the pipeline can tell: UIDs grow per folder and are
never reused, a folder has a UIDVALIDITY (which a test may change, renumbering the folder),
MOVE gives new UIDs in the target, a missing target folder fails the way a server's
``NO [TRYCREATE]`` does, and after a temporary error the mailbox is ``broken`` until
:meth:`MemoryMailbox.reopen` (what a factory returns as "a new connection").

Failures are injected per method: ``fail_next("fetch", times=2)`` makes the next two
``fetch`` calls raise :class:`~gateway.errors.TemporaryTransportError` (or a given error).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gateway.errors import PermanentTransportError, TemporaryTransportError, TransportError
from gateway.inbound.imap.wire import FolderState


@dataclass
class _Folder:
    uidvalidity: int
    uidnext: int = 1
    messages: dict[int, bytes] = field(default_factory=dict)


class MemoryMailbox:
    """Folders of ``uid -> raw bytes``; ``calls`` lists every method called, in order."""

    def __init__(
        self, folders: Iterable[str] = ("INBOX",), *, uidvalidity: int = 1, idle: bool = True
    ) -> None:
        self.folders: dict[str, _Folder] = {name: _Folder(uidvalidity) for name in folders}
        self.idle = idle
        self.calls: list[str] = []
        self.selected: str | None = None
        self.closed = False
        self._broken = False
        self._failures: dict[str, list[TransportError]] = {}
        self._changed = asyncio.Event()

    # -- test controls ---------------------------------------------------------------------

    def deliver(self, raw: bytes, folder: str = "INBOX") -> int:
        """Put a message in ``folder`` (as the MTA would); wakes :meth:`wait_for_changes`."""
        box = self.folders[folder]
        uid, box.uidnext = box.uidnext, box.uidnext + 1
        box.messages[uid] = bytes(raw)
        self._changed.set()
        return uid

    def messages(self, folder: str = "INBOX") -> dict[int, bytes]:
        """A copy of ``folder``'s messages by UID."""
        return dict(self.folders[folder].messages)

    def reset_uidvalidity(self, folder: str = "INBOX", uidvalidity: int | None = None) -> None:
        """Renumber ``folder`` from UID 1 under a new UIDVALIDITY, as a server rebuild would."""
        box = self.folders[folder]
        old = list(box.messages.values())
        box.uidvalidity = box.uidvalidity + 1 if uidvalidity is None else uidvalidity
        box.messages = {uid: raw for uid, raw in enumerate(old, start=1)}
        box.uidnext = len(old) + 1

    def fail_next(self, method: str, times: int = 1, error: TransportError | None = None) -> None:
        """The next ``times`` calls of ``method`` raise ``error`` (default: a temporary one)."""
        if not hasattr(self, method):
            raise ValueError(f"MemoryMailbox has no method {method!r}")
        made = error or TemporaryTransportError(f"injected failure of {method}")
        self._failures.setdefault(method, []).extend([made] * times)

    def reopen(self) -> MemoryMailbox:
        """Act as a fresh connection: healthy, open, nothing selected. Returns itself."""
        self._broken = False
        self.closed = False
        self.selected = None
        return self

    # -- the Mailbox protocol --------------------------------------------------------------

    @property
    def broken(self) -> bool:
        return self._broken

    async def select(self, folder: str | None = None) -> FolderState:
        self._enter("select")
        name = folder or "INBOX"
        if name not in self.folders:
            raise PermanentTransportError(f"cannot select {name!r}: no such folder")
        self.selected = name
        box = self.folders[name]
        return FolderState(name, box.uidvalidity, box.uidnext, len(box.messages))

    async def ensure_folders(self, names: Iterable[str]) -> None:
        self._enter("ensure_folders")
        for name in names:
            self.folders.setdefault(name, _Folder(uidvalidity=1))

    async def search_uids(self, min_uid: int = 1) -> list[int]:
        return sorted(uid for uid in self._box("search_uids").messages if uid >= min_uid)

    async def fetch_sizes(self, uids: Sequence[int]) -> dict[int, int]:
        messages = self._box("fetch_sizes").messages
        return {uid: len(messages[uid]) for uid in sorted(set(uids)) if uid in messages}

    async def fetch(self, uids: Sequence[int]) -> list[tuple[int, bytes]]:
        messages = self._box("fetch").messages
        return [(uid, messages[uid]) for uid in dict.fromkeys(uids) if uid in messages]

    async def fetch_header(self, uid: int) -> bytes | None:
        raw = self._box("fetch_header").messages.get(uid)
        if raw is None:
            return None
        head, separator, _ = raw.partition(b"\r\n\r\n")
        return head + separator

    async def move(self, uids: Sequence[int], folder: str) -> None:
        source = self._box("move")
        if folder not in self.folders:
            self._broken = True  # the real client treats a NO as a broken state too
            raise TemporaryTransportError(f"IMAP uid move failed: NO [TRYCREATE] {folder!r} does not exist")
        target = self.folders[folder]
        for uid in sorted(set(uids)):
            raw = source.messages.pop(uid, None)
            if raw is not None:
                target.messages[target.uidnext] = raw
                target.uidnext += 1

    async def wait_for_changes(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """True at once if mail was delivered since the last wait, else waits up to ``timeout``
        (default 0: tests never wait for time) for :meth:`deliver`. Without idle: False."""
        if not self.idle:
            self._enter("wait_for_changes")
            return False
        self._box("wait_for_changes")  # IDLE needs a selected folder, as on a real server
        if not self._changed.is_set() and timeout:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
        changed = self._changed.is_set()
        self._changed.clear()
        return changed

    async def close(self) -> None:
        self.calls.append("close")
        self.closed = True
        self.selected = None

    # -- internals -------------------------------------------------------------------------

    def _enter(self, method: str) -> None:
        self.calls.append(method)
        if self.closed or self._broken:
            raise TemporaryTransportError(f"memory mailbox is {'closed' if self.closed else 'broken'}")
        pending = self._failures.get(method)
        if pending:
            error = pending.pop(0)
            self._broken = self._broken or error.temporary
            raise error

    def _box(self, method: str) -> _Folder:
        self._enter(method)
        if self.selected is None:
            self._broken = True
            raise TemporaryTransportError(f"{method}: no folder selected")
        return self.folders[self.selected]
