"""The `ctx.http` actions use: named connections (credentials decrypted only here), the
outbound guard and the per-connection rate limit."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from connector import outbound
from connector.crypto import SecretBox
from connector.errors import ConfigurationError
from connector.models import Connection

AUTH_KINDS = ("none", "bearer", "basic", "header")


@dataclass
class HttpClient:
    sessions: sessionmaker[Session]
    secrets: SecretBox
    allowed: outbound.Allowed
    limiter: outbound.RateLimiter | None = None

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
        conn = self._connection(connection)
        if not url.startswith(("http://", "https://")):
            url = urljoin(conn.base_url.rstrip("/") + "/", url.lstrip("/"))
        if not outbound.within(url, conn.base_url):
            raise ConfigurationError(
                f"{url} is outside connection {connection!r} "
                f"({conn.base_url}): its credentials stay there"
            )
        if self.limiter is not None and conn.rate_limit_per_second:
            self.limiter.wait(f"connection:{conn.id}", conn.rate_limit_per_second)
        return outbound.request(
            method.upper(),
            url,
            allowed=self.allowed,
            headers=sent,
            credentials=self._auth(conn),
            scope=conn.base_url,
            payload=payload,
        )

    def _connection(self, name: str) -> Connection:
        with self.sessions() as s:
            conn = s.scalar(select(Connection).where(Connection.name == name))
            if conn is None:
                raise ConfigurationError(f"there is no connection named {name!r}")
            s.expunge(conn)
            return conn

    def _auth(self, conn: Connection) -> dict[str, str]:
        if conn.auth == "none" or not conn.secret_encrypted:
            return {}
        secret = json.loads(self.secrets.decrypt(conn.secret_encrypted))
        if conn.auth == "bearer":
            return {"Authorization": f"Bearer {secret['token']}"}
        if conn.auth == "basic":
            pair = f"{secret['username']}:{secret['password']}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        return {conn.header_name or "X-Api-Key": secret["value"]}


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
    """Create or replace a connection; its secret is stored encrypted and never shown again."""
    if auth not in AUTH_KINDS:
        raise ConfigurationError(f"auth must be one of {', '.join(AUTH_KINDS)}")
    if not base_url.startswith(("http://", "https://")):
        raise ConfigurationError("base_url must start with http:// or https://")
    needed = {
        "bearer": ["token"],
        "basic": ["username", "password"],
        "header": ["value"],
        "none": [],
    }[auth]
    missing = [k for k in needed if not (secret or {}).get(k)]
    if missing:
        raise ConfigurationError(f"auth {auth!r} needs secret fields: {', '.join(missing)}")
    conn = s.scalar(select(Connection).where(Connection.name == name))
    if conn is None:
        conn = Connection(name=name)
        s.add(conn)
    conn.base_url, conn.auth, conn.header_name = base_url, auth, header_name
    conn.rate_limit_per_second = rate_limit_per_second
    conn.secret_encrypted = box.encrypt(json.dumps(secret)) if needed else None
    s.flush()
    return conn
