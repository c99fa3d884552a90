"""Connection providers and the engine side of connections.

A connection has a provider type (`http`, a CRM): its provider declares the config JSON Schema
(secrets `writeOnly`: stored encrypted, never shown back), how it authenticates, how it tests
itself ("Probar conexión"), the account it routes events by and its rate limit. Here: loading
providers from `providers.ALL`, saving a connection valid against its provider's schema,
reading its secret, and OAuth 2 refresh under a Redis lock (as Meltano's OAuthAuthenticator
does), so two workers never spend one refresh token at once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING, Any

from redis import Redis
from redis.exceptions import LockError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from connector import messages, outbound, schemas
from connector.crypto import SecretBox, new_token
from connector.errors import (
    ConfigurationError,
    FieldError,
    PuenteError,
    Said,
    TransientError,
)
from connector.models import Connection
from database import utcnow

if TYPE_CHECKING:
    from connector.http_client import HttpClient

log = logging.getLogger(__name__)


class AuthKind(StrEnum):
    NONE = "none"
    BEARER = "bearer"
    BASIC = "basic"
    HEADER = "header"  # an API key in a header of the connection's choice
    OAUTH2 = "oauth2"  # a refresh token; access tokens refreshed and kept here


def refused(path: str, said: Said) -> ConfigurationError:
    """A ConfigurationError about one field, with both texts (`errors[0].text('es')`)."""
    return ConfigurationError(f"{path}: {said.en}" if path else said.en, [said.field_error(path)])


def spanish(exc: PuenteError) -> str:
    """The error's message in Spanish where its field errors have one, else in English."""
    if exc.errors:
        return "; ".join(
            f"{e.path}: {e.text('es')}" if e.path else e.text("es") for e in exc.errors[:5]
        )
    return exc.message


@dataclass(frozen=True)
class CheckResult:
    """What "Probar conexión" answers: ok or not, in plain words."""

    ok: bool
    said: Said
    account_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "message": self.said.en, "message_es": self.said.es}


@dataclass(frozen=True)
class ConnectionView:
    """What a provider sees of a connection: no database object, and no secret."""

    id: int
    name: str
    type: str
    base_url: str
    auth: str
    header_name: str | None
    settings: Mapping[str, Any]
    account_id: str | None
    rate_limit_per_second: float | None

    @classmethod
    def of(cls, conn: Connection) -> ConnectionView:
        return cls(
            conn.id,
            conn.name,
            conn.type,
            conn.base_url,
            conn.auth,
            conn.header_name,
            dict(conn.settings or {}),
            conn.account_id,
            conn.rate_limit_per_second,
        )


@dataclass
class CheckContext:
    """What a provider's test may touch: the connection, and HTTP with its credentials."""

    connection: ConnectionView
    http: HttpClient

    def request(self, method: str, path: str, **kwargs: Any) -> outbound.Answer:
        """Call `path` under the connection's base URL, authenticated as it is."""
        return self.http.request(method, path, connection=self.connection.name, **kwargs)


@dataclass(frozen=True)
class ProviderSpec:
    """A type of connection, declared as data plus a few small functions."""

    key: str  # stable: "http", "hubspot", …
    title: str
    title_es: str
    description: str
    config_schema: str  # under schemas/: the whole connection document (base_url, settings, …)
    # How it authenticates; None: each connection chooses in its "auth" field (http).
    auth: AuthKind | None
    # The headers that authenticate a call, from the decrypted secret (for OAuth 2 with the
    # current access token added as "access_token").
    authenticate: Callable[[ConnectionView, Mapping[str, str]], dict[str, str]]
    # "Probar conexión": one cheap authenticated call, answered in plain words.
    test: Callable[[CheckContext], CheckResult]
    # The account events are routed by (a HubSpot portal id), asked after a test succeeds.
    account_id: Callable[[CheckContext], str | None] | None = None
    rate_limit_per_second: float | None = None  # when the connection sets none
    # OAuth 2: where a refresh token is exchanged for an access token.
    token_url: Callable[[ConnectionView], str] | None = None
    # OAuth 2, when that place is one of the credentials (Zoho's accounts server is the
    # account's data centre's): given the decrypted secret too; wins over token_url.
    secret_token_url: Callable[[ConnectionView, Mapping[str, str]], str] | None = None
    # Deliveries arrive at the connection's own address, /hooks/<inbound token> (CRMs).
    inbound: bool = False
    # Tidies the document before it is validated and saved (drops what its auth does not use).
    normalize: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def auth_kind(self, conn: ConnectionView) -> AuthKind:
        return self.auth or AuthKind(conn.auth)

    def secret_fields(self) -> tuple[str, ...]:
        """The write-only fields of the secret its schema declares."""
        secret = schemas.load_schema(self.config_schema).get("properties", {}).get("secret", {})
        return tuple(k for k, v in secret.get("properties", {}).items() if v.get("writeOnly"))


@dataclass(frozen=True)
class Providers:
    by_key: dict[str, ProviderSpec]

    @classmethod
    def build(cls, specs: Iterable[ProviderSpec]) -> Providers:
        found: dict[str, ProviderSpec] = {}
        for spec in specs:
            if spec.key in found:
                raise ValueError(f"provider {spec.key!r} is registered twice")
            found[spec.key] = spec
        return cls(found)

    def get(self, key: str) -> ProviderSpec:
        try:
            return self.by_key[key]
        except KeyError:
            known = ", ".join(sorted(self.by_key))
            raise refused(
                "type",
                Said(
                    f"unknown connection type {key!r}; use one of: {known}",
                    f"tipo de conexión desconocido, {key!r}; usa uno de estos: {known}",
                ),
            ) from None


@cache
def default_providers() -> Providers:
    """The providers shipped in providers/."""
    import providers

    return Providers.build(providers.ALL)


# Saving and reading


def read_secret(conn: Connection, box: SecretBox) -> dict[str, str]:
    """The connection's decrypted secret ({} when it has none)."""
    if not conn.secret_encrypted:
        return {}
    secret: dict[str, str] = json.loads(box.decrypt(conn.secret_encrypted))
    return secret


def save_connection(
    s: Session,
    box: SecretBox,
    *,
    name: str,
    base_url: str,
    type: str = "http",
    auth: str | None = None,
    secret: Mapping[str, str | None] | None = None,
    header_name: str | None = None,
    settings: Mapping[str, Any] | None = None,
    rate_limit_per_second: float | None = None,
    providers: Providers | None = None,
) -> Connection:
    """Create or replace a connection, valid against its provider's schema.

    Its secret is stored encrypted and never shown again. `secret=None` keeps the stored one
    (a change of settings needs no credentials again); a field sent as None is removed.
    """
    spec = (providers or default_providers()).get(type)
    if rate_limit_per_second is not None and not rate_limit_per_second > 0:
        raise refused(
            "rate_limit_per_second",
            Said(
                "must be a positive number of calls per second (or null for the provider's "
                "default)",
                "debe ser un número positivo de llamadas por segundo (o null para el valor "
                "por defecto del proveedor)",
            ),
        )
    conn = s.scalar(select(Connection).where(Connection.name == name))
    stored = read_secret(conn, box) if conn is not None else {}
    kept = {**stored, **(secret or {})}
    document: dict[str, Any] = {
        "base_url": base_url,
        "settings": dict(settings or {}),
        "secret": {k: v for k, v in kept.items() if v is not None},
    }
    if auth is not None:
        document["auth"] = auth
    if header_name is not None:
        document["header_name"] = header_name
    if spec.normalize is not None:
        document = spec.normalize(document)
    errors = [_without_value(e) for e in schemas.validate(spec.config_schema, document)]
    if errors:
        raise ConfigurationError.from_field_errors(
            f"connection {name!r} ({spec.key}) is not valid", errors
        )
    if conn is None:
        conn = Connection(name=name)
        s.add(conn)
    new_secret = document.get("secret") or None
    if conn.type != spec.key or new_secret != (stored or None):
        # Other credentials: the access token of the old ones does not stand for them.
        conn.access_token_encrypted = conn.access_token_expires_at = None
    if conn.type != spec.key:
        conn.account_id = None
    conn.type = spec.key
    conn.base_url = document["base_url"]
    conn.auth = str(document.get("auth") or (spec.auth or AuthKind.NONE))
    conn.header_name = document.get("header_name")
    conn.settings = document.get("settings") or {}
    conn.rate_limit_per_second = rate_limit_per_second
    conn.secret_encrypted = box.encrypt(json.dumps(new_secret)) if new_secret else None
    if spec.inbound and conn.inbound_token is None:
        conn.inbound_token = new_token()
    elif not spec.inbound:
        conn.inbound_token = None
    s.flush()
    return conn


def _without_value(error: FieldError) -> FieldError:
    """A field error that cannot show a secret's value (a pattern's message quotes it)."""
    if not error.path.startswith("secret") or "got" not in error.params:
        return error
    params = {**error.params, "got": "••••••"}
    return FieldError(
        error.path, messages.render(error.code, params) or error.message, error.code, params
    )


def webhook_url(conn: Connection, public_url: str) -> str | None:
    """The address the connection's provider sends its webhooks to, when it has one."""
    return f"{public_url.rstrip('/')}/hooks/{conn.inbound_token}" if conn.inbound_token else None


# OAuth 2


@dataclass
class OAuthTokens:
    """Access tokens of OAuth 2 connections: refreshed once for every worker, under a lock.

    The refresh token may be rotated by the provider (each use returns a new one and voids
    the old): two workers refreshing at once would leave one of them, and the connection,
    with a dead token. So a refresh happens under a Redis lock, and whoever gets the lock
    first looks again at the database: another worker may have refreshed meanwhile.
    """

    sessions: sessionmaker[Session]
    box: SecretBox
    redis: Redis
    allowed: outbound.Allowed
    providers: Providers = field(default_factory=default_providers)
    margin: timedelta = timedelta(seconds=60)  # refreshed this long before it expires
    lock_seconds: float = 60.0  # longer than a refresh may take (TOKEN_TIMEOUT + margin)
    refreshed: int = 0  # refreshes this object made (for logs and tests)

    TOKEN_TIMEOUT = (5.0, 15.0)
    TOKEN_TOTAL = 30.0

    def access_token(self, connection_id: int, stale: str | None = None) -> str:
        """A valid access token; `stale` is one the API has just refused (refresh it)."""
        token = self._current(connection_id, stale)
        if token is not None:
            return token
        lock = self.redis.lock(
            f"puente:oauth:{connection_id}",
            timeout=self.lock_seconds,
            blocking_timeout=self.lock_seconds,
        )
        if not lock.acquire():
            raise TransientError(
                f"connection {connection_id}: another worker has been refreshing its OAuth "
                "token for too long; trying again later"
            )
        try:
            token = self._current(connection_id, stale)  # refreshed while we waited?
            return token if token is not None else self._refresh(connection_id)
        finally:
            try:
                lock.release()
            except LockError:  # it expired: the refresh took longer than lock_seconds
                log.warning("connection %s: the OAuth refresh outlived its lock", connection_id)

    def _current(self, connection_id: int, stale: str | None) -> str | None:
        with self.sessions() as s:
            conn = s.get(Connection, connection_id)
            if conn is None or not conn.access_token_encrypted:
                return None
            expires = conn.access_token_expires_at
            if expires is not None and expires <= utcnow() + self.margin:
                return None
            token = self.box.decrypt(conn.access_token_encrypted)
        return None if token == stale else token

    def _refresh(self, connection_id: int) -> str:
        with self.sessions() as s:
            conn = s.get_one(Connection, connection_id)
            view, secret = ConnectionView.of(conn), read_secret(conn, self.box)
        spec = self.providers.get(view.type)
        if spec.secret_token_url is not None:
            url = spec.secret_token_url(view, secret)
        elif spec.token_url is not None:
            url = spec.token_url(view)
        else:
            url = str(view.settings.get("token_url", ""))
        missing = [k for k in ("client_id", "client_secret", "refresh_token") if not secret.get(k)]
        if missing or not url:
            raise refused(
                "secret",
                Said(
                    f"connection {view.name!r} cannot refresh its OAuth 2 token: it lacks "
                    f"{', '.join(missing) or 'a token URL'}; connect the account again",
                    f"la conexión {view.name!r} no puede renovar su token OAuth 2: le falta "
                    f"{', '.join(missing) or 'la URL de tokens'}; vuelve a conectar la cuenta",
                ),
            )
        form = {
            "grant_type": "refresh_token",
            "refresh_token": secret["refresh_token"],
            "client_id": secret["client_id"],
            "client_secret": secret["client_secret"],
        }
        answer = outbound.request(
            "POST",
            url,
            allowed=self.allowed,
            headers={"Accept": "application/json"},
            form=form,
            timeout=self.TOKEN_TIMEOUT,
            total=self.TOKEN_TOTAL,
        )
        body = answer.body if isinstance(answer.body, dict) else {}
        token = body.get("access_token")
        if answer.status >= 400 or not isinstance(token, str) or not token:
            raise _token_refused(view.name, answer.status, body)
        expires_in = body.get("expires_in")
        seconds = float(expires_in) if isinstance(expires_in, int | float | str) else 3600.0
        rotated = body.get("refresh_token")
        with self.sessions.begin() as s:
            conn = s.get_one(Connection, connection_id)
            conn.access_token_encrypted = self.box.encrypt(token)
            conn.access_token_expires_at = utcnow() + timedelta(seconds=seconds)
            if isinstance(rotated, str) and rotated and rotated != secret["refresh_token"]:
                # Read again under the lock: the secret saved is the one we refreshed with.
                kept = read_secret(conn, self.box)
                conn.secret_encrypted = self.box.encrypt(
                    json.dumps({**kept, "refresh_token": rotated})
                )
        self.refreshed += 1
        log.info("connection %s: OAuth 2 access token refreshed", view.name)
        return token


def _token_refused(name: str, status: int, body: Mapping[str, Any]) -> ConfigurationError:
    reason = str(body.get("error_description") or body.get("error") or f"HTTP {status}")[:200]
    return refused(
        "secret.refresh_token",
        Said(
            f"the token URL of connection {name!r} refused to renew its access ({reason}): "
            "the refresh token or the client id/secret are no longer valid; connect the "
            "account again",
            f"la URL de tokens de la conexión {name!r} no ha renovado el acceso ({reason}): "
            "el token de refresco o el id/secreto de cliente ya no valen; vuelve a conectar "
            "la cuenta",
        ),
    )


# Testing


def check_connection(
    name: str, http: HttpClient, sessions: sessionmaker[Session], providers: Providers | None = None
) -> CheckResult:
    """Run the provider's test; remember the account it answers for. Never raises for what
    the other side (or the configuration) got wrong: the answer says it in plain words."""
    with sessions() as s:
        conn = s.scalar(select(Connection).where(Connection.name == name))
        if conn is None:
            return CheckResult(
                False,
                Said(f"there is no connection named {name!r}", f"no hay ninguna conexión {name!r}"),
            )
        view = ConnectionView.of(conn)
    spec = (providers or default_providers()).get(view.type)
    ctx = CheckContext(view, http)
    try:
        result = spec.test(ctx)
        if result.ok and spec.account_id is not None:
            result = replace(result, account_id=spec.account_id(ctx))
    except PuenteError as exc:
        return CheckResult(
            False,
            Said(
                f"the test of connection {name!r} failed: {exc.message}",
                f"la prueba de la conexión {name!r} ha fallado: {spanish(exc)}",
            ),
        )
    if result.ok and result.account_id and result.account_id != view.account_id:
        with sessions.begin() as s:
            s.get_one(Connection, view.id).account_id = result.account_id
    return result
