"""A mailbox through an outage: opening its IMAP connection (every failed attempt is logged
with the time of the next, the recovery is logged, a stop (SIGTERM/SIGINT) ends the wait at
once, and ``run --once`` gives up after a bounded time), and the daemon loop's backoff and log
of failed rounds.

The time spent is counted as the backoff waits plus the attempts themselves (each bounded by
the mailbox's ``timeout_seconds``), so that it does not depend on the wall clock in tests.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import structlog
from sqlalchemy.exc import SQLAlchemyError
from tenacity import RetryCallState, wait_random_exponential

from gateway.clock import Clock
from gateway.config import MailboxSettings
from gateway.errors import TemporaryTransportError
from gateway.inbound.imap.mailbox import Mailbox

log = structlog.get_logger(__name__)

RETRY_SECONDS = 60
"""Longest wait between two attempts to connect, and after a round that failed on the IMAP
connection or the database."""
RETRY_PERMANENT_SECONDS = 300
"""Longest wait after a permanent IMAP error or an unexpected one (someone must fix the
account, the server or the gateway; the other mailboxes go on meanwhile)."""
_SHORT_BACKOFF = wait_random_exponential(multiplier=0.5, max=RETRY_SECONDS)
_LONG_BACKOFF = wait_random_exponential(multiplier=5, max=RETRY_PERMANENT_SECONDS)


class Stopped(Exception):
    """The daemon is stopping: the wait for a connection ended."""


class Unreachable(TemporaryTransportError):
    """``run --once`` gave up on a mailbox's server."""


def describe(settings: MailboxSettings) -> str:
    """How a mailbox is named in a message people read: its name and server."""
    return f"mailbox {settings.name} ({settings.host}:{settings.port})"


async def open_with_retries(
    open_mailbox: Callable[[MailboxSettings], Awaitable[Mailbox]],
    settings: MailboxSettings,
    *,
    pause: Callable[[float], Awaitable[None]],
    stopping: asyncio.Event,
    clock: Clock,
    give_up_seconds: float | None = None,
    on_failure: Callable[[Exception], Awaitable[None]] | None = None,
) -> Mailbox:
    """A new connection, tried again after a randomised exponential backoff while the server
    cannot be reached. Raises :class:`Stopped` once ``stopping`` is set, :class:`Unreachable`
    when the next attempt would start more than ``give_up_seconds`` after the first (None:
    never), and a permanent error at once. ``on_failure`` hears of every failed attempt (the
    mailbox's health for ``status``)."""
    spent, attempt = 0.0, 0
    while True:
        if stopping.is_set():
            raise Stopped()
        attempt += 1
        started = time.monotonic()
        try:
            client = await open_mailbox(settings)
        except TemporaryTransportError as exc:
            if on_failure is not None:
                await on_failure(exc)
            spent += time.monotonic() - started
            delay = _delay(attempt)
            if give_up_seconds is not None and spent + delay > give_up_seconds:
                raise Unreachable(f"{describe(settings)}: unreachable for {spent:.0f} s "
                                  f"({attempt} attempts): {exc}") from exc
            log.warning("imap.connect_failed", mailbox=settings.name,
                        server=f"{settings.host}:{settings.port}", error=str(exc), attempt=attempt,
                        retry_in_seconds=round(delay, 1),
                        next_attempt_at=(clock.now() + timedelta(seconds=delay)).isoformat())
            await pause(delay)
            spent += delay
            continue
        if attempt > 1:
            log.info("imap.connected_again", mailbox=settings.name, attempts=attempt,
                     after_seconds=round(spent, 1))
        return client


def _delay(attempt: int) -> float:
    """The randomised exponential backoff after failed attempt ``attempt`` (as tenacity's
    ``wait_random_exponential(multiplier=0.5, max=60)``: several replicas do not retry in step)."""
    return random.uniform(0, min(RETRY_SECONDS, 0.5 * 2 ** min(attempt, 16)))


def round_backoff(state: RetryCallState) -> float:
    """The daemon loop's wait before it tries a failed round again: short after a temporary
    error (the connection, the database), long after any other."""
    error = state.outcome.exception() if state.outcome is not None else None
    usual = isinstance(error, (TemporaryTransportError, SQLAlchemyError, OSError))
    return (_SHORT_BACKOFF if usual else _LONG_BACKOFF)(state)


class FailingRounds:
    """The daemon loop's log of a mailbox's failed rounds: when one is tried again, and when
    rounds work again (with when they began to fail)."""

    def __init__(self, mailbox: str, clock: Clock) -> None:
        self.mailbox = mailbox
        self.clock = clock
        self.since: datetime | None = None
        """When the rounds began to fail (None: the last one worked)."""

    def retry_scheduled(self, state: RetryCallState) -> None:
        """tenacity's ``before_sleep``: the failed round (logged where it failed) is tried again."""
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        self.since = self.since or self.clock.now()
        log.warning("inbound.retry_scheduled", mailbox=self.mailbox, attempt=state.attempt_number,
                    retry_in_seconds=round(delay, 1),
                    next_attempt_at=(self.clock.now() + timedelta(seconds=delay)).isoformat())

    def recovered(self) -> None:
        if self.since is not None:
            log.info("inbound.recovered", mailbox=self.mailbox, failing_since=self.since.isoformat())
            self.since = None

