"""Read every engine setting from the environment in one place.

Only what the engine needs is here; a domain reads its own settings (the invoicing core's
are `invoicing/settings.py`) and hands them to its actions as a runtime service.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    """The engine's process configuration; build it with `Settings.from_env()`."""

    database_url: str
    redis_url: str | None
    secret_key: str
    instance_dir: Path
    queue_name: str = "puente"
    public_url: str = "http://127.0.0.1:5000"
    max_body_bytes: int = 256 * 1024
    signature_tolerance_seconds: int = 300
    run_timeout_seconds: int = 300
    bootstrap_api_key: str | None = None
    # The first admin, created on first start when there is no account yet (web.cli init);
    # without a password, one is generated and printed once.
    bootstrap_admin_email: str = "admin@puente.local"
    bootstrap_admin_password: str | None = None
    log_level: str = "INFO"
    # Days run payloads are kept; run metadata stays (connector.retention).
    retention_days: int = 30
    # Non-public targets outbound HTTP may reach anyway: hosts or CIDR ranges, comma-separated.
    http_allow: str = ""
    # Previous secret keys, still able to decrypt until `web.cli rotate-secret-key` has run.
    old_secret_keys: tuple[str, ...] = ()
    # Signs the UI's session cookies, apart from secret_key: rotating one leaves the other be.
    # Empty (settings built by hand): derived from secret_key.
    session_key: str = ""
    # Requests each API key may make per minute (0: no limit); past it, 429 with Retry-After.
    api_rate_limit_per_minute: int = 600
    # Fairness between integrations (connector.pace): items one subscription, connection or
    # API key (the push API) may send per minute (0: no limit), at most this many in one
    # delivery or request, and past how many in a minute its runs wait on the bulk queue.
    items_per_minute: int = 6000
    max_items_per_delivery: int = 100
    bulk_after_items: int = 50

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `PUENTE_*`, `DATABASE_URL` and `REDIS_URL`."""
        env = os.environ if environ is None else environ
        instance_dir = Path(env.get("PUENTE_INSTANCE_DIR", PROJECT_ROOT / "instance")).resolve()
        database_url = env.get("DATABASE_URL") or f"sqlite:///{instance_dir / 'puente.db'}"
        return cls(
            database_url=normalize_database_url(database_url),
            redis_url=env.get("REDIS_URL") or None,
            secret_key=env.get("PUENTE_SECRET_KEY") or _instance_secret(instance_dir),
            session_key=env.get("PUENTE_SESSION_KEY")
            or _instance_secret(instance_dir, "session_key"),
            instance_dir=instance_dir,
            old_secret_keys=tuple(
                k.strip() for k in env.get("PUENTE_OLD_SECRET_KEYS", "").split(",") if k.strip()
            ),
            queue_name=env.get("PUENTE_QUEUE", "puente"),
            public_url=env.get("PUENTE_PUBLIC_URL", "http://127.0.0.1:5000").rstrip("/"),
            max_body_bytes=int(env.get("PUENTE_MAX_BODY_BYTES", 256 * 1024)),
            signature_tolerance_seconds=int(env.get("PUENTE_SIGNATURE_TOLERANCE", 300)),
            run_timeout_seconds=int(env.get("PUENTE_RUN_TIMEOUT", 300)),
            bootstrap_api_key=env.get("PUENTE_BOOTSTRAP_API_KEY") or None,
            bootstrap_admin_email=env.get("PUENTE_BOOTSTRAP_ADMIN_EMAIL") or "admin@puente.local",
            bootstrap_admin_password=env.get("PUENTE_BOOTSTRAP_ADMIN_PASSWORD") or None,
            log_level=env.get("PUENTE_LOG_LEVEL", "INFO").upper(),
            http_allow=env.get("PUENTE_HTTP_ALLOW", ""),
            retention_days=int(env.get("PUENTE_RETENTION_DAYS", 30)),
            api_rate_limit_per_minute=int(env.get("PUENTE_API_RATE_LIMIT", 600)),
            items_per_minute=int(env.get("PUENTE_ITEMS_PER_MINUTE", 6000)),
            max_items_per_delivery=int(env.get("PUENTE_MAX_ITEMS_PER_DELIVERY", 100)),
            bulk_after_items=int(env.get("PUENTE_BULK_AFTER_ITEMS", 50)),
        )

    @property
    def cookie_key(self) -> str:
        """The key session cookies are signed with: session_key, or one derived from
        secret_key (never secret_key itself) when none was given."""
        if self.session_key:
            return self.session_key
        return hmac.new(self.secret_key.encode(), b"puente session cookies", "sha256").hexdigest()

    def with_(self, **changes: object) -> Settings:
        """Return a copy with some fields changed (tests, launcher)."""
        return replace(self, **changes)  # type: ignore[arg-type]


def normalize_database_url(url: str) -> str:
    """Use psycopg 3 for plain `postgresql://` URLs, the driver we install."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _instance_secret(instance_dir: Path, name: str = "secret_key") -> str:
    """Create (once) and read a secret kept in the instance folder: `secret_key` encrypts
    stored credentials, `session_key` signs session cookies.

    Embedded mode keeps them beside the SQLite file so a restart can still decrypt and keep
    people signed in; production sets PUENTE_SECRET_KEY and PUENTE_SESSION_KEY instead.
    """
    path = instance_dir / name
    if not path.exists():
        instance_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
    return path.read_text().strip()
