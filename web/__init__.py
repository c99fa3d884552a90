"""Web layer: app factory and blueprints (hooks, api, ui)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, current_app, jsonify, request
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, ServiceUnavailable

from connector.runtime import Runtime, build_runtime
from connector.settings import Settings
from database import is_transient

log = logging.getLogger(__name__)

DATABASE_RETRY_AFTER_SECONDS = 5
# Scripts and styles from this site only (inline styles allowed: the pages' own CSS; no inline
# script: behaviour comes from static/*.js), never framed, no plug-ins, forms post here only.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
EXTENSION = "puente"  # where the app keeps its runtime: read it with current_runtime()


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Flask:
    """Build the Flask app around a runtime (database, Redis, registry)."""
    if runtime is None:
        runtime = build_runtime(settings or Settings.from_env())
    settings = runtime.settings
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.cookie_key,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # Served over HTTPS, the session never travels in clear.
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https://"),
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION] = runtime

    from web import api, audit, docs, filters, hooks, i18n, metrics, ui

    app.register_blueprint(hooks.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(docs.bp)
    ui.register(app)
    pages = frozenset(bp.name for bp in ui.BLUEPRINTS)  # their errors are pages, not JSON
    i18n.init_app(app)
    filters.init_app(app)
    audit.init_app(app)

    @app.after_request
    def secure(response: Any) -> Any:
        """Every answer: the security headers. Pages and API answers carry someone's data:
        no cache keeps them (static files may be cached)."""
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.path.startswith(("/ui", "/api/")) and "Cache-Control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/healthz")
    def healthz() -> Any:
        """Up or down for anyone (load balancers, uptime checks); what is down, and the
        queue's length, only for a request with a valid API key."""
        from web import auth

        body, code = _health(runtime)
        if auth.has_valid_key():
            return jsonify(body), code
        return jsonify({"status": body["status"]}), code

    @app.get("/")
    @app.get("/ui")
    @app.get("/ui/")
    def index() -> Any:
        """The app's front door: the runs, or the sign-in page on the way there."""
        from flask import redirect, url_for

        return redirect(url_for("runs.runs"))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        if request.blueprint in pages or request.path.startswith("/ui/"):
            return ui.error_page(exc)
        code = exc.code or 500
        body = {
            "error": (exc.name or "error").lower().replace(" ", "_"),
            "message": exc.description,
        }
        if code == 413:
            body["message"] = (
                f"the body is larger than {settings.max_body_bytes} bytes; "
                "send fewer items per delivery"
            )
        # Allow (405), WWW-Authenticate (401), Retry-After: the answer keeps its headers.
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
        return jsonify(body), code, headers

    @app.errorhandler(OperationalError)
    @app.errorhandler(PoolTimeout)
    def database_unavailable(exc: Exception) -> Any:
        """The database is down, restarting or busy: a 503 to try again, not a 500. A webhook
        sender sends the delivery again with the same webhook-id, and it is stored once."""
        if isinstance(exc, OperationalError) and not is_transient(exc):
            raise exc  # a real error: a 500, logged with its traceback
        cause = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        log.warning("%s %s: database unavailable: %s", request.method, request.path, cause)
        unavailable = ServiceUnavailable(
            "the database is not answering (restarting?): send the same request again in "
            f"{DATABASE_RETRY_AFTER_SECONDS} seconds",
            retry_after=DATABASE_RETRY_AFTER_SECONDS,
        )
        if request.blueprint in pages:
            return ui.error_page(unavailable)
        body = {"error": "database_unavailable", "message": unavailable.description}
        return jsonify(body), 503, {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)}

    return app


def _health(rt: Runtime) -> tuple[dict[str, Any], int]:
    checks: dict[str, Any] = {}
    try:
        with rt.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = {"ok": True, "dialect": rt.engine.dialect.name}
    except Exception as exc:  # the details (hosts, users) go to the log, not to anyone asking
        log.warning("health: the database does not answer: %s", exc)
        checks["database"] = {"ok": False, "error": type(exc).__name__}
    try:
        rt.redis.ping()
        checks["redis"] = {"ok": True, "queued_jobs": rt.queue.count}
    except RedisError as exc:
        log.warning("health: Redis does not answer: %s", exc)
        checks["redis"] = {"ok": False, "error": type(exc).__name__}
    ok = all(c["ok"] for c in checks.values())
    return {"status": "ok" if ok else "down", **checks}, 200 if ok else 503


def runtime_of(app: Flask) -> Runtime:
    rt: Runtime = app.extensions[EXTENSION]
    return rt


def current_runtime() -> Runtime:
    """The runtime of the app handling this request (or in this app context)."""
    return runtime_of(current_app)
