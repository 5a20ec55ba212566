"""Fixtures shared by every test live in ``tests/plugins/``: one module per real server; the
process-wide state a test may change is put back here."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

pytest_plugins = [
    "tests.plugins.database",
    "tests.plugins.dovecot",
    "tests.plugins.smtp",
]


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    """``case-gateway run`` tunes the process's garbage collector
    (:func:`gateway.daemon.tune_collector`); run in-process by a test, it must not change the
    collector for the tests after it."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
