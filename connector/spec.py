"""Declarations of triggers and actions: frozen data, no behaviour beyond one function each."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from connector.http_client import HttpClient
    from connector.settings import Settings
    from invoicing.facturae import SigningCredentials
    from invoicing.service import Invoicing


class ActionContext(Protocol):
    """What an action may touch: everything else is out of reach, so a fake context tests it."""

    idempotency_key: str
    invoicing: Invoicing
    log: logging.Logger
    public_url: str
    settings: Settings | None
    signing: SigningCredentials | None
    http: HttpClient | None


@dataclass(frozen=True)
class Delivery:
    """An inbound HTTP delivery as a trigger sees it."""

    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class ParsedItem:
    """One trigger item and the key that makes its redelivery a no-op."""

    dedup_key: str
    data: dict[str, Any]


@dataclass(frozen=True)
class TriggerSpec:
    """A trigger: its output schema and how a delivery is verified and parsed."""

    key: str
    title: str
    title_es: str
    description: str
    output_schema: str
    # verify(delivery, secret, now, tolerance) returns the delivery id or raises SignatureError;
    # parse(payload, delivery_id) returns the items, each still to be checked against the schema.
    verify: Callable[[Delivery, str, int, int], str]
    parse: Callable[[Any, str], list[ParsedItem]]


@dataclass(frozen=True)
class ActionSpec:
    """An action: input/output schemas and the function that performs it."""

    key: str
    title: str
    title_es: str
    description: str
    input_schema: str
    output_schema: str
    perform: Callable[[ActionContext, dict[str, Any]], dict[str, Any]]
    # Where the run log finds its business keys in the output, to find runs by them:
    # (run column, dotted path) pairs; for each column the first path with a value wins.
    business_keys: tuple[tuple[str, str], ...] = ()
    # "database": every effect is in our database, so a dry run performs it and rolls back;
    # "external": it reaches the outside world (mail, HTTP), so a dry run does not perform it.
    effects: str = "database"
    # Retry policy for transient failures: attempts in all, and the first backoff (seconds).
    max_attempts: int = 5
    backoff_base: float = 2.0
