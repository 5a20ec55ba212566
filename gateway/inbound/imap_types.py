"""The :class:`Mailbox` interface the inbound side is written against, and what is built on it alone.

Two implementations exist: :class:`gateway.inbound.imap.AioImapMailbox` (a real IMAP
connection) and :class:`gateway.inbound.imap_memory.MemoryMailbox` (an in-memory twin for
unit tests). :class:`ReconnectingMailbox` turns either kind of factory into a mailbox that
survives dropped connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Protocol, TypeVar

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from gateway.errors import TemporaryTransportError
from gateway.inbound.fetchparse import FolderState

__all__ = ["FolderState", "Mailbox", "ReconnectingMailbox", "UidValidityChanged"]

log = structlog.get_logger(__name__)
T = TypeVar("T")


class UidValidityChanged(TemporaryTransportError):
    """After a reconnect the folder's UIDVALIDITY differs: every UID the caller holds is void.

    Not retried by :class:`ReconnectingMailbox`; the caller selects again and starts over.
    (Belongs in :mod:`gateway.errors` once that module takes it.)
    """


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


class ReconnectingMailbox:
    """A :class:`Mailbox` that replaces its connection after a temporary error and retries.

    Retries use randomised exponential backoff (several replicas may retry at once) and stop
    after ``attempts``: the last error is raised then. Permanent errors are raised at once.
    After a reconnect the last selected folder is selected again; if its UIDVALIDITY changed,
    :class:`UidValidityChanged` is raised rather than answering with UIDs of another era.
    A reconnect during :meth:`wait_for_changes` counts as a change (mail may have come).
    Operations are retried whole, so a retried ``move`` may COPY twice on servers without MOVE.
    """

    def __init__(
        self,
        factory: Callable[[], Awaitable[Mailbox]],
        *,
        attempts: int = 6,
        initial_wait: float = 0.5,
        max_wait: float = 60.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._factory = factory
        self._attempts = attempts
        self._wait = wait_random_exponential(multiplier=initial_wait, max=max_wait)
        self._sleep = sleep
        self._mailbox: Mailbox | None = None
        self._state: FolderState | None = None
        self.reconnects = 0
        """How many connections were thrown away (for logs, metrics and tests)."""

    @property
    def broken(self) -> bool:
        return False  # it heals itself

    async def select(self, folder: str | None = None) -> FolderState:
        state = await self._run(lambda m: m.select(folder))
        self._state = state
        return state

    async def ensure_folders(self, names: Iterable[str]) -> None:
        names = list(names)
        await self._run(lambda m: m.ensure_folders(names))

    async def search_uids(self, min_uid: int = 1) -> list[int]:
        return await self._run(lambda m: m.search_uids(min_uid))

    async def fetch_sizes(self, uids: Sequence[int]) -> dict[int, int]:
        return await self._run(lambda m: m.fetch_sizes(uids))

    async def fetch(self, uids: Sequence[int]) -> list[tuple[int, bytes]]:
        return await self._run(lambda m: m.fetch(uids))

    async def fetch_header(self, uid: int) -> bytes | None:
        return await self._run(lambda m: m.fetch_header(uid))

    async def move(self, uids: Sequence[int], folder: str) -> None:
        await self._run(lambda m: m.move(uids, folder))

    async def wait_for_changes(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        try:
            return await (await self._current()).wait_for_changes(timeout)
        except UidValidityChanged:
            raise
        except TemporaryTransportError as error:
            log.warning("imap.wait_failed", error=str(error))
            await self._discard()
        await self._run(_nothing)
        return True

    async def close(self) -> None:
        await self._discard()

    async def _run(self, operation: Callable[[Mailbox], Awaitable[T]]) -> T:
        retrying = AsyncRetrying(
            retry=retry_if_exception(_retryable),
            wait=self._wait,
            stop=stop_after_attempt(self._attempts),
            sleep=self._sleep,
            reraise=True,
            before_sleep=_log_retry,
        )
        async for attempt in retrying:
            with attempt:
                try:
                    return await operation(await self._current())
                except TemporaryTransportError:
                    await self._discard()
                    raise
        raise AssertionError("unreachable: tenacity returns or raises")

    async def _current(self) -> Mailbox:
        if self._mailbox is not None:
            return self._mailbox
        mailbox = await self._factory()
        if self._state is not None:
            try:
                state = await mailbox.select(self._state.name)
            except BaseException:
                await mailbox.close()
                raise
            known, self._state = self._state, state
            if state.uidvalidity != known.uidvalidity:
                await mailbox.close()
                raise UidValidityChanged(f"UIDVALIDITY of {state.name!r} is now {state.uidvalidity}")
        self._mailbox = mailbox
        return mailbox

    async def _discard(self) -> None:
        mailbox, self._mailbox = self._mailbox, None
        if mailbox is not None:
            self.reconnects += 1
            await mailbox.close()


async def _nothing(mailbox: Mailbox) -> None:
    """An operation that only makes sure a connection exists."""


def _retryable(error: BaseException) -> bool:
    return isinstance(error, TemporaryTransportError) and not isinstance(error, UidValidityChanged)


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.warning("imap.retry", attempt=state.attempt_number, error=str(error))
