"""The daemon's garbage-collector set-up (:func:`gateway.daemon.tune_collector`)."""

from __future__ import annotations

import gc
import weakref

from gateway.daemon import YOUNG_GENERATION_THRESHOLD, tune_collector


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> weakref.ref[Node]:
    """A reference cycle nothing else points to (only a collection frees it)."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_what_is_loaded_is_frozen_and_the_young_generation_is_collected_less_often() -> None:
    kept = Node()
    tune_collector()
    assert gc.get_threshold()[0] == YOUNG_GENERATION_THRESHOLD
    assert gc.get_freeze_count() > 1000  # the program's modules, classes, functions
    assert gc.is_tracked(kept) and kept not in gc.get_objects()  # frozen: no collection walks it


def test_garbage_before_the_freeze_is_collected_not_frozen_and_cycles_after_it_still_are() -> None:
    before = cycle()
    tune_collector()
    assert before() is None  # collected before the freeze (a frozen cycle would live forever)
    after = cycle()
    assert after() is not None
    gc.collect()
    assert after() is None
