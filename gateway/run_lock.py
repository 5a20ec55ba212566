"""One ``run`` (or ``run --once``) per SQLite database at a time.

On SQLite nothing else keeps two processes from reading the same mailboxes into the same
database: each would decide what the other decides. So ``run`` takes an exclusive ``flock``
on a file beside the database (``<database>.run-lock``) for as long as it runs; the kernel
drops it when the process ends, however it ends (SIGKILL included), so a stale file never
blocks a new run. On PostgreSQL each mailbox has its advisory lock instead
(:mod:`gateway.inbound.loop.lock`), so that several replicas can share the work.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

from gateway.errors import GatewayError


class AlreadyRunning(GatewayError):
    """Another ``run`` holds the database."""


def lock_path(database_url: str) -> Path | None:
    """The lock file of a SQLite database file (None for PostgreSQL or an in-memory database)."""
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:"):
        return None
    database = Path(str(url.database)).resolve()
    return database.with_name(database.name + ".run-lock")


@contextlib.contextmanager
def run_lock(database_url: str) -> Iterator[None]:
    """Hold the database's run lock, or raise :class:`AlreadyRunning` naming who holds it."""
    path = lock_path(database_url)
    if path is None:
        yield
        return
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "unknown"
            raise AlreadyRunning(
                f"another case-gateway run (pid {holder}) is using the database {path.name[:-9]}; "
                f"only one run or run --once per SQLite database at a time (lock: {path})") from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(descriptor)  # the lock goes with the descriptor
