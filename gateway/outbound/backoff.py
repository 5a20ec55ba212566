"""Retry delays of the outbox: randomised exponential, stored in the row so they survive
restarts (tenacity's in-memory retries would not)."""

from __future__ import annotations

import random
from datetime import timedelta


def retry_delay(attempts: int, base: float, cap: float, rng: random.Random | None = None) -> timedelta:
    """Delay before attempt ``attempts + 1``: uniform in [ceiling/2, ceiling] where the ceiling
    doubles from ``base`` up to ``cap`` (full jitter would allow near-zero delays that hammer a
    struggling relay; half jitter still spreads several replicas apart)."""
    ceiling = min(cap, base * 2 ** max(0, attempts - 1))
    return timedelta(seconds=(rng or random).uniform(ceiling / 2, ceiling))
