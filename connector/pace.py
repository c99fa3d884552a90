"""Fairness between integrations: how many items each may send a minute, and which queue
their runs wait on.

One subscription or connection flooding (a 256 KiB body of hundreds of items, a loop in a
CRM workflow) must not make everyone else's deals wait behind it. Each scope (the integration
items arrive on) has a per-minute budget of items, counted in Redis (a fixed window, shared by
every web process); past it deliveries are refused with a wait, before anything is stored, and
the sender retries (CRMs and Zapier retry a 429). Below the budget, a scope that has already
sent `bulk_after` items this minute has its runs queued on the bulk queue, which workers take
only when the main queue is empty: a quiet integration's run never waits behind a busy one's.

Whatever receives items from outside (web.hooks for webhooks, web.api.push for the push API)
asks `admit` before it stores anything, and answers its refusal in its own shape.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis.exceptions import RedisError

from connector.errors import Said
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


@dataclass(frozen=True)
class Sender:
    """How a refusal names what the items came in and who sent them: nouns in English and
    in Spanish (feminine, after "Esta"), e.g. a delivery from an address, a request from an
    API key."""

    batch: Said
    who: Said


HOOK = Sender(Said("delivery", "entrega"), Said("address", "dirección"))
API = Sender(Said("request", "petición"), Said("API key", "clave de API"))


@dataclass(frozen=True)
class Refusal:
    """Items refused before anything is stored: the status to answer and what to say."""

    status: int  # 413: more items than one delivery may carry; 429: past the minute's budget
    error: str  # a stable code: too_many_items, rate_limited
    said: Said
    retry_after: int | None = None  # seconds, with a 429


def admit(rt: Runtime, scope: str, items: int, sender: Sender) -> Refusal | bool:
    """The refusal of `items` sent at once by `scope`, or (admitted, counted against its
    budget) whether their runs take the bulk queue."""
    most = rt.settings.max_items_per_delivery
    batch, who = sender.batch, sender.who
    if 0 < most < items:
        return Refusal(
            413,
            "too_many_items",
            Said(
                f"this {batch.en} carries {items} items; at most {most} are taken in one: "
                "send them in smaller batches",
                f"Esta {batch.es} trae {items} elementos y se admiten como mucho {most} en "
                "una: envíalos en lotes más pequeños.",
            ),
        )
    try:
        taken = take(rt, scope, items)
    except RedisError:  # pacing is not worth losing items over: they are stored
        return False
    if taken.wait is None:
        return taken.bulk
    limit = rt.settings.items_per_minute
    return Refusal(
        429,
        "rate_limited",
        Said(
            f"this {who.en} sent more than {limit} items in a minute; try again in {taken.wait} s",
            f"Esta {who.es} ha enviado más de {limit} elementos en un minuto: vuelve a "
            f"intentarlo dentro de {taken.wait} s.",
        ),
        taken.wait,
    )
