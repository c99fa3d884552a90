"""Fixtures: a fresh database (SQLite and PostgreSQL) and real Redis for every test."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from rq import SimpleWorker

from actions.invoicing import INVOICING_SETTINGS
from connector import migrate, runtime
from connector.runtime import Runtime, build_runtime
from connector.settings import Settings
from database import Base
from invoicing.settings import InvoicingSettings
from tests.openapi_check import CheckedClient
from tests.smtp import SmtpServer, smtp_server
from web import create_app

POSTGRES_URL = os.environ.get(
    "PUENTE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
# A Redis database of its own, flushed before each test.
REDIS_URL = os.environ.get("PUENTE_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
BACKENDS = [
    b.strip()
    for b in os.environ.get("PUENTE_TEST_DATABASES", "sqlite,postgresql").split(",")
    if b.strip()
]


def _with_search_path(url: str, schema: str) -> str:
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating once keeps the suite fast)."""
    path = tmp_path_factory.mktemp("template") / "puente.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_schema() -> Iterator[str]:
    """A migrated PostgreSQL schema private to this test session, dropped at the end."""
    schema = f"puente_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        pytest.exit(
            f"PostgreSQL is not reachable at {POSTGRES_URL} ({exc.orig}). Start it, point "
            "PUENTE_TEST_POSTGRES_URL at it, or run `PUENTE_TEST_DATABASES=sqlite make test`.",
            returncode=3,
        )
    url = _with_search_path(POSTGRES_URL, schema)
    migrate.upgrade(url)
    yield url
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "puente.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_schema")
        engine = sa.create_engine(url)
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        with engine.begin() as conn:
            conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        engine.dispose()
        return url
    raise ValueError(f"unknown test database {request.param!r}: use sqlite or postgresql")


@pytest.fixture
def redis_url() -> str:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    except redis.ConnectionError as exc:
        pytest.exit(f"Redis is not reachable at {REDIS_URL}: {exc}", returncode=3)
    client.close()
    return REDIS_URL


@pytest.fixture
def settings(database_url: str, redis_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        secret_key="test-secret-key",
        instance_dir=tmp_path,
        queue_name="puente-test",
        public_url="http://127.0.0.1:5000",
    )


# What invoicing/settings.py reads (PUENTE_STANDARDS_DIR aside: the XSDs are the same anywhere).
INVOICING_VARIABLES = ("PUENTE_FACTURAE_", "PUENTE_SMTP_", "PUENTE_MAIL_FROM", "PUENTE_VERIFACTU_")


@pytest.fixture(autouse=True)
def _no_invoicing_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A runtime built without invoicing settings reads them from the environment: tests
    see none of the developer's certificate, mail server or AEAT endpoint."""
    for name in list(os.environ):
        if name.startswith(INVOICING_VARIABLES):
            monkeypatch.delenv(name)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it accepts."""
    with smtp_server() as server:
        yield server


@pytest.fixture
def invoicing_settings() -> InvoicingSettings:
    """The invoicing side's own settings in `rt`: nothing configured (override to mail...)."""
    return InvoicingSettings()


@pytest.fixture
def rt(settings: Settings, invoicing_settings: InvoicingSettings) -> Iterator[Runtime]:
    """The runtime tests and in-process workers share, like a worker process has one."""
    built = build_runtime(settings, services={INVOICING_SETTINGS: invoicing_settings})
    runtime.install(built)
    yield built
    runtime.install(None)
    built.close()


@pytest.fixture
def local_rt(
    settings: Settings, invoicing_settings: InvoicingSettings, rt: Runtime
) -> Iterator[Runtime]:
    """The runtime with outbound HTTP allowed to 127.0.0.1, where the tests' fake APIs and
    CRMs listen (the guard refuses loopback otherwise)."""
    built = build_runtime(
        settings.with_(http_allow="127.0.0.1"),
        services={INVOICING_SETTINGS: invoicing_settings},
    )
    runtime.install(built)
    yield built
    runtime.install(rt)
    built.close()


@pytest.fixture
def app(rt: Runtime) -> Flask:
    application = create_app(runtime=rt)
    application.config["TESTING"] = True
    # Every /api/v1 answer is checked against the OpenAPI document (tests/openapi_check.py).
    application.test_client_class = CheckedClient
    return application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def drain(rt: Runtime) -> None:
    """Run every queued job with a real RQ worker (SimpleWorker, burst mode, real Redis)."""
    SimpleWorker([rt.queue, rt.bulk_queue], connection=rt.redis).work(
        burst=True, logging_level="WARNING"
    )


# Browser tests: Debian's chromium driven by Playwright; never a downloaded browser.
CHROMIUM = os.environ.get("PUENTE_TEST_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser_type_launch_args(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    if not Path(CHROMIUM).exists():
        pytest.exit(f"{CHROMIUM} is missing: `apt-get install chromium` (.ci/run does)", 3)
    home = tmp_path_factory.mktemp("chromium-home")
    return {
        "executable_path": CHROMIUM,
        "args": [
            "--headless",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
        "env": {**os.environ, "HOME": str(home)},
    }


@pytest.fixture(scope="session")
def browser_context_args() -> dict[str, object]:
    return {"locale": "es-ES", "timezone_id": "Europe/Madrid"}


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """The app on a real HTTP port of 127.0.0.1, for browsers and concurrent clients."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def verifactu_mode(monkeypatch: pytest.MonkeyPatch) -> str:
    """The installation in VERI*FACTU mode (records sent), pointed at the AEAT's test host;
    the URL is never dialled unless a test gives a sender its own."""
    url = "https://prewww1.aeat.es/wlpl/TIKE-CONT/ws/SistemaFacturacion/VerifactuSOAP"
    monkeypatch.setenv("PUENTE_VERIFACTU_MODE", "verifactu")
    monkeypatch.setenv("PUENTE_VERIFACTU_URL", url)
    monkeypatch.setenv("PUENTE_SIF_PRODUCER_NAME", "Integraciones Puente SL")
    monkeypatch.setenv("PUENTE_SIF_PRODUCER_NIF", "B65410011")
    return url
