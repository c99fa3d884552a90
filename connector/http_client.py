"""The `ctx.http` actions use: named connections (credentials decrypted only here), the
outbound guard and the per-connection rate limit."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from connector import connections, outbound
from connector.connections import (
    AuthKind,
    ConnectionView,
    OAuthTokens,
    Providers,
    Said,
    default_providers,
    read_secret,
    refused,
)
from connector.crypto import SecretBox
from connector.errors import ConfigurationError
from connector.models import Connection
from connector.redaction import hold

AUTH_KINDS = tuple(AuthKind)


@dataclass
class HttpClient:
    sessions: sessionmaker[Session]
    secrets: SecretBox
    allowed: outbound.Allowed
    limiter: outbound.RateLimiter | None = None
    providers: Providers = field(default_factory=default_providers)
    # For the OAuth 2 refresh lock; the rate limiter's Redis when not given.
    redis: Redis | None = None
    _tokens: OAuthTokens | None = field(default=None, init=False, repr=False)

    def request(
        self,
        method: str,
        url: str,
        *,
        connection: str | None = None,
        headers: Mapping[str, str] | None = None,
        payload: Any = None,
        idempotency_key: str | None = None,
    ) -> outbound.Answer:
        """Call `url` (relative to the connection's base URL when one is named)."""
        sent = dict(headers or {})
        if idempotency_key:
            sent.setdefault("Idempotency-Key", idempotency_key)
        if connection is None:
            return outbound.request(
                method.upper(), url, allowed=self.allowed, headers=sent, payload=payload
            )
        conn, secret = self._connection(connection)
        spec = self.providers.get(conn.type)
        if not url.startswith(("http://", "https://")):
            url = urljoin(conn.base_url.rstrip("/") + "/", url.lstrip("/"))
        outbound.parse_target(url)  # an unreadable URL says so, not that it lies elsewhere
        if not outbound.within(url, conn.base_url):
            raise refused(
                "url",
                Said(
                    f"{url} is outside connection {connection!r} ({conn.base_url}): its "
                    "credentials stay there; use a path under it",
                    f"{url} queda fuera de la conexión {connection!r} ({conn.base_url}): sus "
                    "credenciales no salen de ahí; usa una ruta dentro de ella",
                ),
            )
        rate = conn.rate_limit_per_second or spec.rate_limit_per_second
        if self.limiter is not None and rate:
            self.limiter.wait(f"connection:{conn.id}", rate)
        oauth = spec.auth_kind(conn) is AuthKind.OAUTH2
        if oauth:
            secret = {**secret, "access_token": self.tokens().access_token(conn.id)}
        credentials = spec.authenticate(conn, secret)
        # Whatever the answer echoes of them is masked in the step's log (connector.redaction).
        hold([*secret.values(), *credentials.values()])
        answer = self._send(method, url, conn, credentials, sent, payload)
        if oauth and answer.status == 401:
            # Revoked before its time (or expired early): one fresh token, one more try.
            token = self.tokens().access_token(conn.id, stale=secret["access_token"])
            secret = {**secret, "access_token": token}
            credentials = spec.authenticate(conn, secret)
            hold([token, *credentials.values()])
            answer = self._send(method, url, conn, credentials, sent, payload)
        return answer

    def _send(
        self,
        method: str,
        url: str,
        conn: ConnectionView,
        credentials: dict[str, str],
        headers: dict[str, str],
        payload: Any,
    ) -> outbound.Answer:
        return outbound.request(
            method.upper(),
            url,
            allowed=self.allowed,
            headers=headers,
            credentials=credentials,
            scope=conn.base_url,
            payload=payload,
        )

    def tokens(self) -> OAuthTokens:
        """The OAuth 2 token keeper for this client's database and Redis."""
        if self._tokens is None:
            redis = self.redis or (self.limiter.redis if self.limiter else None)
            if redis is None:
                raise ConfigurationError("OAuth 2 connections need Redis for the refresh lock")
            self._tokens = OAuthTokens(
                self.sessions, self.secrets, redis, self.allowed, self.providers
            )
        return self._tokens

    def view(self, name: str) -> ConnectionView:
        """What an action may read of a connection: its type, base URL, settings, account
        (never its secret)."""
        return self._connection(name)[0]

    def _connection(self, name: str) -> tuple[ConnectionView, dict[str, str]]:
        with self.sessions() as s:
            conn = s.scalar(select(Connection).where(Connection.name == name))
            if conn is None:
                raise refused(
                    "connection",
                    Said(
                        f"there is no connection named {name!r}; create it under "
                        "Connections or fix the name",
                        f"no hay ninguna conexión llamada {name!r}; créala en Conexiones o "
                        "corrige el nombre",
                    ),
                )
            return ConnectionView.of(conn), read_secret(conn, self.secrets)


def save_connection(
    s: Session,
    box: SecretBox,
    *,
    name: str,
    base_url: str,
    auth: str = "none",
    secret: dict[str, str] | None = None,
    header_name: str | None = None,
    rate_limit_per_second: float | None = None,
) -> Connection:
    """Create or replace an HTTP connection (connections.save_connection for every type)."""
    return connections.save_connection(
        s,
        box,
        name=name,
        base_url=base_url,
        type="http",
        auth=auth,
        secret=secret,
        header_name=header_name,
        rate_limit_per_second=rate_limit_per_second,
    )
