"""Declarations of triggers and actions: frozen data, one function (or a few) each.

Everything a trigger or an action touches reaches it through its arguments: an action gets
one `ActionContext`, a trigger gets the request (`Delivery`), its configuration and, for
polls, a `PollContext`. So a fake context tests them, and the engine never imports a domain.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from connector.http_client import HttpClient

T = TypeVar("T")


class Effects(StrEnum):
    """What performing an action does, which decides how the runner and dry runs treat it."""

    # Reads from the outside (fetch a CRM deal): safe to repeat; a dry run performs it when a
    # real connection is at hand, and answers from the step's sample otherwise.
    READ = "read"
    # Every effect is in our database: shares the run's transaction; a dry run performs it and
    # rolls it back.
    DATABASE = "database"
    # Writes to the outside (mail, a CRM update, an HTTP POST): never repeated, a transaction
    # of its own, skipped in dry runs.
    EXTERNAL_WRITE = "external_write"


class TriggerKind(StrEnum):
    WEBHOOK = "webhook"  # verify and parse an inbound HTTP request
    POLL = "poll"  # read a source with a cursor kept in the database
    EVENT = "event"  # an internal domain event from the outbox
    PUSH = "push"  # items an API client (Zapier, Make, a program) posts with an API key


@dataclass(frozen=True)
class ServiceKey(Generic[T]):
    """A typed name for a service: `ctx.service(INVOICING)` is an `Invoicing`."""

    name: str


class ServiceRegistry:
    """What a domain offers actions, registered when the runtime is built.

    A service is a value (settings), a value loaded on first use (a certificate), or a
    factory called with the step's database session (a facade working in the run's
    transaction), made once per step.
    """

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self._lazy: dict[str, Callable[[], Any]] = {}
        self._factories: dict[str, Callable[[Session], Any]] = {}

    def provide(self, key: ServiceKey[T], value: T) -> None:
        self._values[key.name] = value

    def provide_lazy(self, key: ServiceKey[T], load: Callable[[], T]) -> None:
        self._lazy[key.name] = load

    def provide_factory(self, key: ServiceKey[T], factory: Callable[[Session], T]) -> None:
        self._factories[key.name] = factory

    def has(self, key: ServiceKey[Any]) -> bool:
        return any(key.name in kind for kind in (self._values, self._lazy, self._factories))

    def get(self, key: ServiceKey[T], session: Session | None = None) -> T:
        """The service; one made per session needs `session`. A missing one is a
        configuration error."""
        from connector.errors import ConfigurationError

        if key.name in self._values:
            return cast(T, self._values[key.name])
        if key.name in self._lazy:
            self._values[key.name] = self._lazy.pop(key.name)()
            return cast(T, self._values[key.name])
        if key.name in self._factories:
            if session is None:
                raise ConfigurationError(f"the service {key.name!r} needs a database session")
            return cast(T, self._factories[key.name](session))
        raise ConfigurationError(f"the service {key.name!r} is not set up in this process")


@dataclass(frozen=True)
class Entity:
    """What a trigger item is about (a CRM deal, an invoice), as the trigger names it.

    Anything created for the item is unique by (source, key), never by mapped data, so two
    deals can never share one invoice whatever the mapping says."""

    source: str
    key: str

    def __str__(self) -> str:
        return f"{self.source}:{self.key}"

    def arrived_on(self, scope: str | None) -> Entity:
        """The entity as the integration it arrived on knows it: "hubspot@connection:hs".

        A payload may name any source; only the subscription or connection that delivered it
        is proven (its signature), so two integrations can never reach each other's deals.
        Internal events (scope None) come from our own records and are kept as they are."""
        return self if scope is None else Entity(f"{self.source}@{scope}", self.key)


@dataclass
class ActionContext:
    """What an action may touch: everything else is out of reach, so a fake context tests it."""

    idempotency_key: str
    log: logging.Logger
    session: Session | None
    services: ServiceRegistry
    http: HttpClient | None = None
    connection: str | None = None  # the step's named connection, when it has one
    entity: Entity | None = None  # what the trigger item is about
    _made: dict[str, Any] = field(default_factory=dict, repr=False)

    def service(self, key: ServiceKey[T]) -> T:
        """The service registered under `key`, bound to this step's session."""
        if key.name not in self._made:
            self._made[key.name] = self.services.get(key, self.session)
        return cast(T, self._made[key.name])


@dataclass(frozen=True)
class Delivery:
    """An inbound HTTP request as a webhook trigger sees it: enough to verify any signature
    scheme (HubSpot v3 signs method + full URL + body + timestamp; Salesforce sends SOAP)."""

    headers: Mapping[str, str]  # lower-case names
    body: bytes
    method: str = "POST"
    url: str = ""  # the full URL as the sender called it
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ParsedItem:
    """One trigger item and the key that makes its redelivery a no-op."""

    dedup_key: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Answer:
    """What a webhook trigger chooses to answer a delivery it accepted (a SOAP Ack, say)."""

    status: int
    body: bytes
    content_type: str = "application/json"


@dataclass(frozen=True)
class DomainEvent:
    """An internal event from the outbox, as event triggers see it."""

    id: int
    topic: str
    subject_id: int
    payload: dict[str, Any]
    created_at: str  # ISO 8601, UTC


@dataclass(frozen=True)
class PollResult:
    """What a poll found: new items, and the cursor to read from next time."""

    items: list[ParsedItem]
    cursor: Any


@dataclass
class PollContext:
    """What a poll may touch: outbound HTTP and its connection, its flow's config, a log."""

    http: HttpClient | None
    connection: str | None
    config: dict[str, Any]
    log: logging.Logger
    # Lifecycle only (subscribe/unsubscribe/renew): the connection's decrypted credentials,
    # for a source that is given some of them when its webhook is registered (Pipedrive's
    # HTTP Basic user and password). Empty for polls.
    secret: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TriggerSpec:
    """A trigger: its kind, output schema, identity of its items, and its functions."""

    key: str
    title: str
    title_es: str
    description: str
    kind: TriggerKind
    output_schema: str
    # The item's entity (what must never be worked on by two runs at once, and what anything
    # created for it is unique by); None when items have no identity.
    entity: Callable[[dict[str, Any]], Entity | None]
    # Business keys to find runs by: (name, dotted path in the item) pairs.
    business_keys: tuple[tuple[str, str], ...] = ()
    # A JSON Schema for the flow's trigger config (e.g. which stages count as won), or None.
    config_schema: str | None = None
    # The connection provider a webhook or poll trigger belongs to (its deliveries arrive on
    # that connection's address); None for a standalone subscription or an internal event.
    provider: str | None = None
    # webhook: verify(delivery, secret, now, tolerance) → the delivery id, or SignatureError;
    # the secret is a standalone subscription's, or a connection's credentials as JSON;
    # parse(payload, delivery_id, config) → items, each still to be checked against the schema
    # (push triggers parse too: the API key has authenticated the request already).
    verify: Callable[[Delivery, str, int, int], str] | None = None
    parse: Callable[[Any, str, dict[str, Any]], list[ParsedItem]] | None = None
    # webhook: the answer to an accepted delivery, when the source expects its own (None: JSON).
    answer: Callable[[Delivery], Answer] | None = None
    # webhook: what its body is. "json": parse gets it parsed (strictly, web/json_input);
    # "xml": parse gets the raw bytes and reads them itself, safely (Salesforce's SOAP).
    body_format: str = "json"
    # poll: poll(ctx, cursor) → new items and the next cursor; cursor None on the first poll,
    # whose items are recorded as seen without firing.
    poll: Callable[[PollContext, Any], PollResult] | None = None
    poll_every_seconds: int = 300
    # event: the outbox topics it listens to, and the items an event gives.
    topics: tuple[str, ...] = ()
    from_event: Callable[[DomainEvent], list[ParsedItem]] | None = None
    # event: the public event type its items are published as (connector.public_events),
    # for REST hook subscribers and GET /api/v1/events; None when they stay inside.
    public_event: str | None = None
    # Lifecycle at the source: register and remove the webhook (Pipedrive, Zoho), and renew
    # subscriptions that expire. Each gets (ctx, webhook URL) and returns state to keep.
    subscribe: Callable[[PollContext, str], dict[str, Any]] | None = None
    unsubscribe: Callable[[PollContext, dict[str, Any]], None] | None = None
    renew: Callable[[PollContext, dict[str, Any]], dict[str, Any]] | None = None

    @property
    def function(self) -> Callable[..., Any]:
        """The function that makes its items: what the contract test checks the module of."""
        made = {
            TriggerKind.WEBHOOK: self.parse,
            TriggerKind.POLL: self.poll,
            TriggerKind.EVENT: self.from_event,
            TriggerKind.PUSH: self.parse,
        }[self.kind]
        assert made is not None, f"trigger {self.key} has no function for its kind"
        return made


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
    # Business keys to find runs by in its output: (name, dotted path) pairs; for each name
    # the first path with a value wins.
    business_keys: tuple[tuple[str, str], ...] = ()
    effects: Effects = Effects.DATABASE
    # An upsert inside our database (the won-deal record, the customer): a replay with a
    # corrected trigger performs it again when its mapped input changed, so what it keeps
    # follows the correction. Only for Effects.DATABASE.
    upsert: bool = False
    # Retry policy for transient failures: attempts in all, and the first backoff (seconds).
    max_attempts: int = 5
    backoff_base: float = 2.0


@dataclass(frozen=True)
class TemplateSpec:
    """A ready-made flow: installed for one connection of its type, created enabled."""

    key: str  # "<connection type>.<name>", e.g. "hubspot.deal_won_to_invoice"
    title: str
    title_es: str
    description: str
    description_es: str
    # The type of connection it is installed for; None for a template whose trigger has an
    # address of its own (a signed webhook): installing it creates that address.
    connection_type: str | None
    # The flow document for the named connection ("" when it needs none).
    document: Callable[[str], dict[str, Any]]


ServiceInstaller = Callable[[ServiceRegistry, Any], None]
"""Registers a domain's services when the runtime is built; gets the process's Settings."""
