"""Engine tables: API keys, subscriptions, flows and their versions, events, runs and steps,
and what leaves Puente: public events and the REST hook subscriptions they are delivered to."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from database import Base, JSONType, UTCDateTime, utcnow


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"  # a filter step ended it: nothing to do, on purpose
    DEAD = "dead"  # transient failures outlasted the retries: the dead-letter list


class StepStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"


class EventStatus(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    # What the key may do (web.api.scopes): "read", "write", "admin".
    scopes: Mapped[list[str]] = mapped_column(JSONType)
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class User(Base):
    """A person who signs in to the UI with e-mail and password (connector.accounts)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # lowercased
    name: Mapped[str] = mapped_column(String(120), default="")
    role: Mapped[str] = mapped_column(String(10))  # admin, editor, operator, viewer
    password_hash: Mapped[str] = mapped_column(String(255))
    # A password an admin gave (first or reset): changed by its owner at the next sign-in.
    must_change_password: Mapped[bool] = mapped_column(default=True)
    active: Mapped[bool] = mapped_column(default=True)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Failed runs by e-mail: "immediate", "daily" (a digest from 08:00, Madrid) or "off".
    notify: Mapped[str] = mapped_column(String(10), default="immediate")
    notified_event_id: Mapped[int | None]  # the last run.failed public event considered
    digest_on: Mapped[date | None] = mapped_column(Date)  # the day of the last digest
    lang: Mapped[str] = mapped_column(String(2), default="es")  # the app's, and their mails'


class AuditEntry(Base):
    """Who changed what: every successful change made through the UI or the API."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    actor: Mapped[str] = mapped_column(String(300))  # the e-mail, or the API key's name
    action: Mapped[str] = mapped_column(String(80))  # what was done: "flows.flow_save"…
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str | None] = mapped_column(String(120), index=True)  # "flow 3"…


class ApiIdempotency(Base):
    """The first answer to a POST made with an Idempotency-Key, replayed for repeats."""

    __tablename__ = "api_idempotency"
    __table_args__ = (UniqueConstraint("api_key_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    key: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64))  # method, path and body, hashed
    status: Mapped[int]
    body: Mapped[Any] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Subscription(Base):
    """An inbound endpoint: /hooks/<token>, verified with its (encrypted) secret."""

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    trigger_key: Mapped[str] = mapped_column(String(80))
    token: Mapped[str] = mapped_column(String(64), unique=True)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Flow(Base):
    __tablename__ = "flows"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    trigger_key: Mapped[str] = mapped_column(String(80))
    subscription_id: Mapped[int | None] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    # The connection its trigger listens on (a CRM's one address for all its events), by name.
    connection: Mapped[str | None] = mapped_column(String(80), index=True)
    enabled: Mapped[bool] = mapped_column(default=False)
    # Who made it in the UI: told by e-mail when its runs fail (web.notifications).
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    current_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("flow_versions.id", use_alter=True)
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    subscription: Mapped[Subscription | None] = relationship()
    current_version: Mapped[FlowVersion | None] = relationship(
        foreign_keys=[current_version_id], post_update=True
    )


class FlowVersion(Base):
    """An immutable saved flow document; runs are pinned to one."""

    __tablename__ = "flow_versions"
    __table_args__ = (UniqueConstraint("flow_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    flow_id: Mapped[int] = mapped_column(ForeignKey("flows.id"))
    version: Mapped[int]
    document: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SignIn(Base):
    """One browser's sign-in, kept here so that signing out ends it for good (a copied cookie
    is worth nothing after it); the cookie holds a random token, this table its SHA-256."""

    __tablename__ = "sign_ins"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the token
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Event(Base):
    """One trigger item as received; unique per source, trigger and delivery (or item) key:
    a redelivery is a no-op."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("source", "trigger_key", "dedup_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Where it came from: "subscription:<id>", "connection:<id>", "outbox", "poll:<flow id>",
    # "api" (a push trigger), "manual:<flow id>".
    source: Mapped[str] = mapped_column(String(80))
    # The integration it arrived on ("subscription:<id>", "connection:<name>", "api", ...; None
    # for outbox events and events stored before 0020): its entity is unique within it.
    scope: Mapped[str | None] = mapped_column(String(100))
    subscription_id: Mapped[int | None] = mapped_column(ForeignKey("subscriptions.id"))
    trigger_key: Mapped[str] = mapped_column(String(80))
    dedup_key: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default=EventStatus.ACCEPTED)
    payload: Mapped[Any] = mapped_column(JSONType)
    errors: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    pruned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # payload dropped (retention)


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("event_id", "flow_id"),
        # By status newest first (the failed ones) without sorting them all; the sweeper's
        # queued and running runs are few and it filters their deadlines as it reads them.
        Index("ix_runs_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    flow_id: Mapped[int] = mapped_column(ForeignKey("flows.id"), index=True)
    flow_version_id: Mapped[int] = mapped_column(ForeignKey("flow_versions.id"))
    status: Mapped[str] = mapped_column(String(20), default=RunStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    job_id: Mapped[str | None] = mapped_column(String(60))  # the RQ job carrying the next attempt
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Past this, a queued or running run is presumed lost and the sweeper re-enqueues it.
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # When the run (or its retry or replay) was last put on the queue: for the queue wait.
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A replay may edit the trigger data; the event keeps what was received.
    trigger_override: Mapped[Any] = mapped_column(JSONType, nullable=True)
    replays: Mapped[int] = mapped_column(default=0)
    # Runs with the same entity (the trigger's: source + deal) never run at the same time.
    entity_key: Mapped[str | None] = mapped_column(String(150), index=True)

    event: Mapped[Event] = relationship()
    flow: Mapped[Flow] = relationship()
    flow_version: Mapped[FlowVersion] = relationship()
    steps: Mapped[list[RunStep]] = relationship(order_by="RunStep.id", back_populates="run")
    attempts_log: Mapped[list[RunAttempt]] = relationship(order_by="RunAttempt.attempt")
    keys: Mapped[list[RunKey]] = relationship(order_by="RunKey.id", lazy="selectin")

    def key(self, name: str) -> str | None:
        """The last value of business key `name` (e.g. an invoice's number after its id)."""
        values = [k.value for k in self.keys if k.name == name]
        return values[-1] if values else None


class RunKey(Base):
    """A business key a run is found by (deal, invoice, customer tax id, …), as its trigger
    and actions declare them; a run may have several values of one name."""

    __tablename__ = "run_keys"
    __table_args__ = (
        UniqueConstraint("run_id", "name", "value"),
        Index("ix_run_keys_name_value", "name", "value"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    name: Mapped[str] = mapped_column(String(40))
    value: Mapped[str] = mapped_column(String(100))


class RunAttempt(Base):
    """One execution of a run: its history survives retries and replays."""

    __tablename__ = "run_attempts"
    __table_args__ = (UniqueConstraint("run_id", "attempt"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    attempt: Mapped[int]
    flow_version_id: Mapped[int] = mapped_column(ForeignKey("flow_versions.id"))
    edited_trigger: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class RunStep(Base):
    __tablename__ = "run_steps"
    __table_args__ = (UniqueConstraint("run_id", "step_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    step_id: Mapped[str] = mapped_column(String(40))
    action_key: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(default=1)
    input: Mapped[Any] = mapped_column(JSONType)
    output: Mapped[Any] = mapped_column(JSONType)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_ms: Mapped[int] = mapped_column(default=0)
    queue_wait_ms: Mapped[int | None]  # from enqueued to started, for the attempt's first step
    # The output as later steps read it, sealed with the installation's key, when the log's
    # copy above is masked or cut: a retry or replay resumes from what the step really gave.
    resume_sealed: Mapped[str | None] = mapped_column(Text)

    run: Mapped[Run] = relationship(back_populates="steps")


class TriggerState(Base):
    """What a trigger keeps between calls: a poll's cursor, a webhook registered at the
    source; by name ("poll:flow:<id>", "subscribe:flow:<id>")."""

    __tablename__ = "trigger_states"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    state: Mapped[Any] = mapped_column(JSONType, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Connection(Base):
    """An account at another system (a CRM, any HTTP API): where its provider calls, with
    which credentials (stored encrypted), and the address its webhooks arrive at."""

    __tablename__ = "connections"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    # The provider (connector.connections): "http", or a CRM ("hubspot", "salesforce", …).
    type: Mapped[str] = mapped_column(String(30), default="http")
    base_url: Mapped[str] = mapped_column(String(500))
    auth: Mapped[str] = mapped_column(String(20), default="none")  # none, bearer, basic, header
    header_name: Mapped[str | None] = mapped_column(String(80))  # for auth "header"
    # The provider's non-secret config, valid against its schema; secrets never go here.
    settings: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    secret_encrypted: Mapped[str | None] = mapped_column(Text)
    rate_limit_per_second: Mapped[float | None]
    # The account at the other side (a HubSpot portal, a Salesforce org): events route by it.
    account_id: Mapped[str | None] = mapped_column(String(100), index=True)
    # Its own inbound webhook address, /hooks/<token> (CRM types; http connections have none).
    inbound_token: Mapped[str | None] = mapped_column(String(64), unique=True)
    # OAuth 2: the current access token (encrypted) and when it expires; the refresh token
    # lives in the secret, replaced there when the provider rotates it.
    access_token_encrypted: Mapped[str | None] = mapped_column(Text)
    access_token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PublicEvent(Base):
    """Something that happened in Puente, as Zapier, Make and API clients see it
    (`deal.won`, `invoice.paid`, `run.failed`…): listed by GET /api/v1/events and delivered to
    the REST hook subscriptions of its type. Written once per origin."""

    __tablename__ = "public_events"
    __table_args__ = (Index("ix_public_events_type_id", "type", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    # What it is about ("invoice:12"): one subscription gets one subject's events in order.
    subject: Mapped[str] = mapped_column(String(80))
    # What made it ("outbox:<id>", "run:<id>:<attempt>"): a second publish is a no-op.
    origin: Mapped[str] = mapped_column(String(120), unique=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class HookSubscription(Base):
    """A REST hook: POST every public event of one type to `target_url`, signed with the
    subscription's secret (Standard Webhooks)."""

    __tablename__ = "hook_subscriptions"
    __table_args__ = (Index("ix_hook_subscriptions_event_active", "event", "active"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event: Mapped[str] = mapped_column(String(40))
    target_url: Mapped[str] = mapped_column(String(2000))
    secret_encrypted: Mapped[str] = mapped_column(Text)
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Why it stopped: "removed" (DELETE), "gone" (the target answered 410).
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_reason: Mapped[str | None] = mapped_column(String(20))


class HookDeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # refused (a 4xx) or still failing after the retry window
    CANCELLED = "cancelled"  # its subscription ended first


class HookDelivery(Base):
    """One public event for one subscription: sent until it is delivered, refused, or a day
    of retries has passed."""

    __tablename__ = "hook_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id"),
        Index("ix_hook_deliveries_status_next", "status", "next_attempt_at"),
        Index("ix_hook_deliveries_subject", "subscription_id", "subject", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("hook_subscriptions.id"))
    event_id: Mapped[int] = mapped_column(ForeignKey("public_events.id"))
    subject: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(20), default=HookDeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    # Bumped by each claim: a job holding an older claim sends nothing.
    claims: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class HookAttempt(Base):
    """One POST of a delivery: what the target answered, or why nothing came back."""

    __tablename__ = "hook_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("hook_deliveries.id"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(default=0)
