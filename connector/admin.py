"""Administrative writes: API keys, inbound subscriptions and flow versions."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connector.crypto import SecretBox, new_token, new_webhook_secret
from connector.db import utcnow
from connector.flows import compile_flow
from connector.models import ApiKey, Flow, FlowVersion, Subscription
from connector.registry import Registry

API_KEY_PREFIX = "pk_"


def hash_api_key(key: str) -> str:
    # Keys are 256-bit random strings, so a plain SHA-256 is enough (no password stretching).
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(s: Session, name: str, key: str | None = None, role: str = "admin") -> str:
    """Store a new API key (hashed) and return it in clear, the only time it is shown."""
    key = key or API_KEY_PREFIX + secrets.token_urlsafe(32)
    s.add(ApiKey(name=name, role=role, prefix=key[:10], key_hash=hash_api_key(key)))
    s.flush()
    return key


def find_api_key(s: Session, key: str) -> ApiKey | None:
    """The live key matching `key`; marks it used."""
    row = s.scalar(
        select(ApiKey).where(ApiKey.key_hash == hash_api_key(key), ApiKey.revoked_at.is_(None))
    )
    if row is not None:
        row.last_used_at = utcnow()
    return row


def bootstrap_api_key(s: Session, key: str) -> bool:
    """Register `key` for the first admin when no key exists yet; True when it was added."""
    if len(key) < 24:
        raise ValueError("PUENTE_BOOTSTRAP_API_KEY must be at least 24 characters long")
    if s.scalar(select(func.count()).select_from(ApiKey)):
        return False
    try:
        with s.begin_nested():
            create_api_key(s, "bootstrap admin", key)
    except IntegrityError:
        return False
    return True


@dataclass(frozen=True)
class NewSubscription:
    subscription: Subscription
    secret: str  # shown once; stored encrypted


def create_subscription(
    s: Session, box: SecretBox, name: str, trigger_key: str, secret: str | None = None
) -> NewSubscription:
    secret = secret or new_webhook_secret()
    sub = Subscription(
        name=name, trigger_key=trigger_key, token=new_token(), secret_encrypted=box.encrypt(secret)
    )
    s.add(sub)
    s.flush()
    return NewSubscription(sub, secret)


def save_flow(
    s: Session,
    registry: Registry,
    document: dict[str, Any],
    *,
    flow: Flow | None = None,
    subscription_id: int | None = None,
    enabled: bool | None = None,
) -> Flow:
    """Validate and compile `document`, then store it as the flow's next version."""
    compiled = compile_flow(document, registry)  # raises ConfigurationError listing every problem
    if flow is None:
        flow = Flow(
            name=compiled.name,
            trigger_key=compiled.trigger.key,
            subscription_id=subscription_id,
            enabled=False,
        )
        s.add(flow)
        s.flush()
    latest = s.scalar(select(func.max(FlowVersion.version)).where(FlowVersion.flow_id == flow.id))
    version = FlowVersion(flow_id=flow.id, version=(latest or 0) + 1, document=document)
    s.add(version)
    s.flush()
    s.execute(
        update(Flow)
        .where(Flow.id == flow.id)
        .values(
            name=compiled.name,
            trigger_key=compiled.trigger.key,
            current_version_id=version.id,
            **({"enabled": enabled} if enabled is not None else {}),
            **({"subscription_id": subscription_id} if subscription_id is not None else {}),
        )
    )
    s.refresh(flow)
    return flow
