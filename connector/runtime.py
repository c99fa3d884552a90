"""The process-wide runtime: settings, database, Redis queue and registry, built once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from redis import Redis
from rq import Queue
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from connector.crypto import SecretBox
from connector.registry import Registry, default_registry
from connector.settings import Settings
from connector.spec import ServiceKey, ServiceRegistry
from database import make_engine, make_sessionmaker

if TYPE_CHECKING:
    from connector.http_client import HttpClient
    from connector.runner import Tools


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Any]
    redis: Redis
    queue: Queue
    # Runs of an integration sending a lot (connector.pace): workers take them after the
    # main queue's.
    bulk_queue: Queue
    registry: Registry
    secrets: SecretBox
    # What the domains offer actions (the invoicing facade and settings, signing credentials,
    # mail), registered by the registry's installers when the runtime is built.
    services: ServiceRegistry

    @cached_property
    def http(self) -> HttpClient:
        """Outbound HTTP for actions, with this installation's allow-list and rate limits."""
        from connector.http_client import HttpClient
        from connector.outbound import Allowed, RateLimiter

        return HttpClient(
            self.sessions,
            self.secrets,
            Allowed.parse(self.settings.http_allow),
            RateLimiter(self.redis),
        )

    @cached_property
    def tools(self) -> Tools:
        """What steps get besides the database: services, outbound HTTP, the sealing key."""
        from connector.runner import Tools

        return Tools(self.services, self.http, self.secrets)

    def close(self) -> None:
        self.engine.dispose()
        self.redis.close()


def build_runtime(
    settings: Settings,
    registry: Registry | None = None,
    *,
    services: Mapping[ServiceKey[Any], Any] | None = None,
) -> Runtime:
    """The runtime for `settings`; `services` are given to `build_services` (a domain's own
    settings built in code rather than read from the environment, as tests do)."""
    if not settings.redis_url:
        raise RuntimeError(
            "REDIS_URL is not set: point it at Redis (redis://host:6379/0), "
            "or start Puente with `make run`, which starts an embedded Redis"
        )
    engine = make_engine(settings.database_url)
    redis = Redis.from_url(settings.redis_url, socket_timeout=10, health_check_interval=30)
    registry = registry or default_registry()
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        redis=redis,
        queue=Queue(settings.queue_name, connection=redis),
        bulk_queue=Queue(bulk_queue_name(settings.queue_name), connection=redis),
        registry=registry,
        secrets=SecretBox.for_settings(settings),
        services=build_services(registry, settings, services),
    )


def bulk_queue_name(queue_name: str) -> str:
    return f"{queue_name}-bulk"


def build_services(
    registry: Registry,
    settings: Settings,
    given: Mapping[ServiceKey[Any], Any] | None = None,
) -> ServiceRegistry:
    """The service registry the registry's installers fill for these settings.

    The engine's `Settings` carry nothing of a domain: a domain reads its own configuration
    (the invoicing core: `invoicing/settings.py`, from the environment) when its installer
    runs. `given` is how to configure a domain in code instead: each value is registered
    before the installers run, so an installer can build on it (the invoicing installer uses
    a given `INVOICING_SETTINGS` rather than reading the environment), and registered again
    after them, so a given value always wins over what an installer provides. (Rather than
    an untyped bag on `Settings`: each given value is typed by its `ServiceKey`, and the
    engine never learns what a domain's settings are.)
    """
    services = ServiceRegistry()
    given = given or {}
    for key, value in given.items():
        services.provide(key, value)
    for install in registry.installers:
        install(services, settings)
    for key, value in given.items():
        services.provide(key, value)
    return services


_current: Runtime | None = None


def _after_fork_in_child() -> None:
    # A forked job must not reuse the parent's pooled database connections.
    if _current is not None:
        _current.engine.dispose(close=False)


os.register_at_fork(after_in_child=_after_fork_in_child)


def install(runtime: Runtime | None) -> None:
    """Make `runtime` the one jobs in this process use (workers, tests)."""
    global _current
    _current = runtime


def current() -> Runtime:
    """The installed runtime, or one built from the environment on first use (RQ workers)."""
    global _current
    if _current is None:
        _current = build_runtime(Settings.from_env())
    return _current
