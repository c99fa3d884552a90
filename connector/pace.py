"""Fairness between integrations: how many items each may send a minute, and which queue
their runs wait on.

One subscription or connection flooding (a 256 KiB body of hundreds of items, a loop in a
CRM workflow) must not make everyone else's deals wait behind it. Each scope (the integration
items arrive on) has a per-minute budget of items, counted in Redis (a fixed window, shared by
every web process); past it deliveries are refused with a wait, before anything is stored, and
the sender retries (CRMs and Zapier retry a 429). Below the budget, a scope that has already
sent `bulk_after` items this minute has its runs queued on the bulk queue, which workers take
only when the main queue is empty: a quiet integration's run never waits behind a busy one's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from connector.runtime import Runtime

WINDOW_SECONDS = 60
_PREFIX = "puente:pace:"


@dataclass(frozen=True)
class Taken:
    """What the scope's budget says of a delivery."""

    wait: int | None = None  # refused: seconds until the next window
    bulk: bool = False  # admitted, its runs on the bulk queue


def take(rt: Runtime, scope: str, items: int, now: float | None = None) -> Taken:
    """Count `items` against the scope's budget of this minute."""
    limit, bulk_after = rt.settings.items_per_minute, rt.settings.bulk_after_items
    if items <= 0 or (limit <= 0 and bulk_after <= 0):
        return Taken()
    now = time.time() if now is None else now
    window = int(now // WINDOW_SECONDS)
    name = f"{_PREFIX}{scope}:{window}"
    with rt.redis.pipeline() as pipe:
        pipe.incrby(name, items)
        pipe.expire(name, WINDOW_SECONDS * 2)
        used = int(pipe.execute()[0])
    if 0 < limit < used:
        rt.redis.decrby(name, items)  # what is refused is not spent: the retry may pass
        return Taken(wait=max(1, int((window + 1) * WINDOW_SECONDS - now + 0.999)))
    return Taken(bulk=0 < bulk_after < used)
