"""The loop over one IMAP mailbox: rounds (:mod:`~gateway.inbound.loop.round`), each after a
push (IDLE) or the poll interval, on one connection that is made again, with randomised
exponential backoff, after any error.

Each round searches the whole inbox folder (messages leave it only once their fate is
committed), so a UID is never skipped: one that failed to fetch or to move is simply found
again next round.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol

import structlog
from sqlalchemy.exc import SQLAlchemyError
from tenacity import AsyncRetrying, retry_if_exception_type

from gateway.clock import Clock
from gateway.config import MailboxSettings
from gateway.errors import TransportError
from gateway.inbound.imap.mailbox import Mailbox
from gateway.inbound.loop import store
from gateway.inbound.loop.batch import BatchDecider
from gateway.inbound.loop.lock import MailboxLock
from gateway.inbound.loop.reconnect import (
    RETRY_PERMANENT_SECONDS,
    FailingRounds,
    Stopped,
    Unreachable,
    describe,
    open_with_retries,
    round_backoff,
)
from gateway.inbound.loop.round import InboxRound, RoundStats

log = structlog.get_logger(__name__)

MailboxFactory = Callable[[MailboxSettings], Awaitable[Mailbox]]

class MailboxHealth(Protocol):
    """Where each round's outcome is written for ``status``
    (:class:`gateway.operations.health.HealthRecorder`)."""

    def connected(self, mailbox: str) -> None: ...
    async def polled(self, mailbox: str, now: datetime, waiting: int) -> None: ...
    async def failed(self, mailbox: str, now: datetime, error: BaseException | str) -> None: ...


class MailboxRunner:
    def __init__(
        self,
        settings: MailboxSettings,
        decider: BatchDecider,
        open_mailbox: MailboxFactory,
        clock: Clock,
        *,
        max_message_bytes: int,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_decided: Callable[[], None] | None = None,
        health: MailboxHealth | None = None,
    ) -> None:
        self.settings = settings
        self.decider = decider
        self.open_mailbox = open_mailbox
        self.clock = clock
        self.max_message_bytes = max_message_bytes
        self.sleep = sleep
        self.on_decided = on_decided
        """Called after a batch was committed (the daemon wakes its sender: replies may be due)."""
        self.health = health
        """Where each round's outcome is written for ``status`` (None: nowhere)."""
        self.client: Mailbox | None = None
        self.stopping = asyncio.Event()
        self.lock = MailboxLock(decider.engine, settings.name)
        self.give_up_seconds: float | None = None
        """How long ``run --once`` keeps trying to reach the server (None: for ever)."""
        self.failure: str | None = None
        """What ended the last of :meth:`run_until_empty`'s rounds early (a temporary error)."""
        self.rounds = FailingRounds(settings.name, clock)
        self.reconciled = False
        """Whether the decided messages moved by an earlier process, or before a failure, but
        not marked moved were looked for (at the start of the next round)."""
        self.standby: bool | None = None
        """Whether another replica held the mailbox at the last round (None: no round yet)."""

    async def connect(self) -> Mailbox:
        if self.client is not None and not self.client.broken:
            return self.client
        await self.drop()
        self.client = await open_with_retries(
            self.open_mailbox, self.settings, pause=self._pause, stopping=self.stopping, clock=self.clock,
            give_up_seconds=self.give_up_seconds, on_failure=self._record_failure)
        if self.health is not None:
            self.health.connected(self.settings.name)
        folders = [self.settings.processed_folder, self.settings.refused_folder,
                   self.settings.quarantine_folder]
        await self.client.ensure_folders(folders)
        return self.client

    async def drop(self) -> None:
        """Close the client (after a failure too: a move may have happened unrecorded)."""
        self.reconciled = False
        client, self.client = self.client, None
        if client is not None:
            await client.close()

    async def run_once(self) -> RoundStats:
        """One pass over the inbox folder: everything there now is decided and moved."""
        if not await self.lock.hold():
            if self.standby is not True:  # said once, not every few seconds
                log.info("imap.standby", mailbox=self.settings.name)
            self.standby = True
            return RoundStats(held_elsewhere=True)
        if self.standby is not False:
            log.info("imap.mailbox_held", mailbox=self.settings.name)
        self.standby = False
        client = await self.connect()
        state = await client.select(self.settings.folder)
        previous = await store.check_uidvalidity(self.decider.engine, self.settings.name,
                                                 state.uidvalidity, self.clock.now())
        if previous is not None:
            log.warning("imap.uidvalidity_changed", mailbox=self.settings.name, old=previous,
                        new=state.uidvalidity)
        uids = await client.search_uids(1)
        if not self.reconciled:  # the first round, and the first after a failed one
            gone = await store.reconcile_moved(self.decider.engine, self.settings.name,
                                               state.uidvalidity, set(uids))
            if gone:
                log.info("imap.moves_reconciled", mailbox=self.settings.name, messages=gone)
            self.reconciled = True
        if self.health is not None:
            await self.health.polled(self.settings.name, self.clock.now(), len(uids))
        if not uids:
            return RoundStats()
        batches = self.decider.start_round(self.settings, state.uidvalidity, self.stopping.is_set)
        return await InboxRound(client, self.settings, batches, self.decider.engine,
                                max_message_bytes=self.max_message_bytes, stopping=self.stopping,
                                on_decided=self.on_decided).run(uids)

    async def run_until_empty(self) -> RoundStats:
        """Rounds until a round finds nothing (``run --once``); a temporary error ends them."""
        with structlog.contextvars.bound_contextvars(mailbox=self.settings.name):
            return await self._until_empty(self._guarded_round)

    async def run_forever(self) -> None:
        """Rounds, each after a push (IDLE) or the poll interval, until :meth:`stop`.

        A round or a wait that fails is tried again after a randomised exponential backoff
        (not after the poll interval: mail may be waiting); a success resets the backoff. On
        the IMAP connection or the database, at most :data:`RETRY_SECONDS` apart; after a
        permanent IMAP error (login refused, folder missing) or an unexpected one, each
        logged as an error, at most :data:`RETRY_PERMANENT_SECONDS` apart, until someone
        fixes the account, the server or the gateway: the other mailboxes and the outbox go
        on meanwhile.
        """
        retrying = AsyncRetrying(
            wait=round_backoff, retry=retry_if_exception_type(Exception), sleep=self._pause, reraise=True,
            before_sleep=self.rounds.retry_scheduled,
        )
        with structlog.contextvars.bound_contextvars(mailbox=self.settings.name):
            while not self.stopping.is_set():
                await retrying(self._rounds_then_wait)
            await self.drop()

    async def _rounds_then_wait(self) -> None:
        """Rounds until one finds nothing, then wait for a push or the poll interval."""
        if self.stopping.is_set():
            return
        try:
            # Rounds until one finds nothing: mail that arrived during a round is reported in
            # the responses to its MOVE commands, which the IMAP library drops, so IDLE would
            # not hear of it. An empty round sends nothing but the search before IDLE.
            stats = await self._until_empty(self.run_once)
            self.rounds.recovered()
            if self.stopping.is_set():
                return
            if stats.held_elsewhere:  # a standby replica: no connection, ask again soon
                standby = min(self.settings.standby_seconds, self.settings.poll_seconds)
                await self._pause(random.uniform(standby / 2, standby))
                return
            client = await self.connect()  # the round's connection, its folder selected
            waiter = asyncio.ensure_future(client.wait_for_changes(self.settings.poll_seconds))
            stopper = asyncio.ensure_future(self.stopping.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            for task in (waiter, stopper):
                task.cancel()
            if waiter.done() and not waiter.cancelled() and waiter.exception() is not None:
                raise waiter.exception()  # type: ignore[misc]
        except Stopped:
            return
        except TransportError as exc:
            await self._record_failure(exc)
            if exc.temporary:
                log.warning("imap.round_failed", mailbox=self.settings.name, error=str(exc), temporary=True)
            else:
                log.error("imap.round_failed", mailbox=self.settings.name, error=str(exc), temporary=False,
                          retry_within_seconds=RETRY_PERMANENT_SECONDS)
            await self.drop()
            raise
        except (SQLAlchemyError, OSError) as exc:  # the database: what was committed stays
            await self._record_failure(exc)
            log.warning("inbound.round_failed", mailbox=self.settings.name,
                        error=f"{type(exc).__name__}: {exc}")
            await self.drop()
            raise
        except Exception as exc:
            await self._record_failure(exc)
            log.exception("inbound.round_failed_unexpectedly", mailbox=self.settings.name,
                          retry_within_seconds=RETRY_PERMANENT_SECONDS)
            await self.drop()
            raise

    async def _until_empty(self, round_: Callable[[], Awaitable[RoundStats]]) -> RoundStats:
        total = RoundStats()
        while True:
            stats = await round_()
            total.seen += stats.seen
            total.decided += stats.decided
            total.moved += stats.moved
            total.held_elsewhere = stats.held_elsewhere
            if stats.seen == 0 or stats.decided == 0 or self.stopping.is_set():
                return total

    async def _pause(self, seconds: float) -> None:
        """``sleep`` for ``seconds``, cut short by :meth:`stop`."""
        sleeper = asyncio.ensure_future(self.sleep(seconds))
        stopper = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, stopper):
                task.cancel()

    async def _guarded_round(self) -> RoundStats:
        """A round of ``run --once``: a temporary error ends it (and is kept in
        :attr:`failure`), a permanent one is raised."""
        try:
            return await self.run_once()
        except Stopped:
            return RoundStats()
        except TransportError as exc:
            await self._record_failure(exc)
            log.warning("imap.round_failed", mailbox=self.settings.name, error=str(exc),
                        temporary=exc.temporary)
            await self.drop()
            if not exc.temporary:
                raise
            self.failure = str(exc) if isinstance(exc, Unreachable) else f"{describe(self.settings)}: {exc}"
            return RoundStats()

    async def _record_failure(self, error: BaseException) -> None:
        if self.health is not None and not isinstance(error, Unreachable):  # its attempts were
            await self.health.failed(self.settings.name, self.clock.now(), error)  # recorded already

    def stop(self) -> None:
        self.stopping.set()
