"""The one backoff rule for everything that tries again later: the outbox relay, recovery's
checks, the shop's capture/cancel replays and its webhook sweep."""

from __future__ import annotations

import random


def backoff_delay(retry: int, *, base: float, cap: float, jitter: bool = True) -> float:
    """Seconds to wait before retry number `retry` (1 = the first retry, 0 counts as 1):
    `base`, doubling per retry, at most `cap`. With `jitter`, a uniform pick in the upper half
    of that, so many waiting items do not all come back at the same moment."""
    ceiling = min(cap, base * 2 ** min(max(retry, 1) - 1, 32))
    if not jitter:
        return ceiling
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto
