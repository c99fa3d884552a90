"""Administrative writes: API keys, inbound subscriptions and flow versions."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connector.checks import CheckReport, check_flow, enableable
from connector.crypto import SecretBox, new_token, new_webhook_secret
from connector.errors import ConfigurationError
from connector.models import ApiKey, Flow, FlowVersion, Subscription
from connector.registry import Registry
from connector.spec import TriggerKind
from database import utcnow

API_KEY_PREFIX = "pk_"


def hash_api_key(key: str) -> str:
    # Keys are 256-bit random strings, so a plain SHA-256 is enough (no password stretching).
    return hashlib.sha256(key.encode()).hexdigest()


# What a key may do: read anything; write (create, change, start flows, subscribe hooks);
# admin (API keys, connections, the issuer's data). A route needs one; admin has them all.
SCOPES = ("read", "write", "admin")


def create_api_key(
    s: Session, name: str, key: str | None = None, scopes: Sequence[str] = SCOPES
) -> str:
    """Store a new API key (hashed) and return it in clear, the only time it is shown."""
    return new_api_key(s, name, scopes, key)[1]


def new_api_key(
    s: Session, name: str, scopes: Sequence[str], key: str | None = None
) -> tuple[ApiKey, str]:
    """The stored key and the key in clear."""
    # The prefix, kept to tell keys apart, is shown only of keys made here: a key someone
    # chose (the bootstrap key) keeps all of its characters secret.
    prefix = "(given)" if key else None
    key = key or API_KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        name=name,
        scopes=[scope for scope in SCOPES if scope in scopes],
        prefix=prefix or key[:10],
        key_hash=hash_api_key(key),
    )
    s.add(row)
    s.flush()
    return row, key


def find_api_key(s: Session, key: str) -> ApiKey | None:
    """The live key matching `key`; marks it used."""
    row = s.scalar(
        select(ApiKey).where(ApiKey.key_hash == hash_api_key(key), ApiKey.revoked_at.is_(None))
    )
    if row is not None:
        row.last_used_at = utcnow()
    return row


def revoke_api_key(s: Session, key_id: int) -> bool:
    """Revoke at once (the next request with it is refused); False when there is no such key.
    Revoking twice is not an error."""
    row = s.get(ApiKey, key_id)
    if row is None:
        return False
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return True


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


@dataclass(frozen=True)
class SavedFlow:
    flow: Flow
    report: CheckReport  # problems (a flow with any stays disabled) and the preview


def save_flow(
    s: Session,
    registry: Registry,
    document: dict[str, Any],
    *,
    flow: Flow | None = None,
    subscription_id: int | None = None,
    enabled: bool | None = None,
) -> SavedFlow:
    """Store `document` as the flow's next version, checked at design time.

    A flow with problems is saved as a draft (disabled); enabling it, or saving problems into
    an enabled flow, is refused with every problem listed and nothing saved.
    """
    report = check_flow(document, registry)
    will_be_enabled = enabled if enabled is not None else bool(flow and flow.enabled)
    if report.errors and will_be_enabled:
        raise ConfigurationError(
            "the flow has problems, so it cannot be enabled: "
            + "; ".join(map(str, report.errors[:5])),
            report.errors,
        )
    name = str(document.get("name") or "").strip()[:120] or "(sin nombre)"
    declared = document.get("trigger")
    trigger: dict[str, Any] = declared if isinstance(declared, dict) else {}
    trigger_key = str(trigger.get("key") or "")[:80]
    connection = str(trigger.get("connection") or "")[:80] or None
    if flow is None:
        flow = Flow(
            name=name, trigger_key=trigger_key, subscription_id=subscription_id, enabled=False
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
            name=name,
            trigger_key=trigger_key,
            connection=connection,
            current_version_id=version.id,
            **({"enabled": enabled} if enabled is not None else {}),
            **({"subscription_id": subscription_id} if subscription_id is not None else {}),
        )
    )
    s.refresh(flow)
    return SavedFlow(flow, report)


def create_flow(
    s: Session, box: SecretBox, registry: Registry, document: dict[str, Any], *, enabled: bool
) -> tuple[SavedFlow, str | None]:
    """A new flow. A standalone webhook trigger (the generic signed one) gets an address of
    its own: its secret is returned, to be shown once. A CRM's trigger listens on its
    connection's address, an event or poll trigger on none."""
    declared = document.get("trigger")
    key = str((declared if isinstance(declared, dict) else {}).get("key") or "")
    trigger = registry.triggers.get(key)
    hook = None
    if trigger is not None and trigger.kind is TriggerKind.WEBHOOK and trigger.provider is None:
        hook = create_subscription(s, box, str(document.get("name", ""))[:120], key)
    saved = save_flow(
        s,
        registry,
        document,
        subscription_id=hook.subscription.id if hook else None,
        enabled=enabled,
    )
    return saved, hook.secret if hook else None


def set_enabled(s: Session, registry: Registry, flow: Flow, enabled: bool) -> Flow:
    """Enable (only a flow without problems) or disable a flow."""
    if enabled:
        if flow.current_version is None:
            raise ConfigurationError("the flow has no saved version to enable")
        enableable(flow.current_version.document, registry)
    flow.enabled = enabled
    s.flush()
    return flow
