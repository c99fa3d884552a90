"""Web layer: app factory and blueprints (hooks, api, ui)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify, request
from redis.exceptions import RedisError
from sqlalchemy import text
from werkzeug.exceptions import HTTPException

from connector.runtime import Runtime, build_runtime
from connector.settings import Settings


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
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["puente"] = runtime

    from web import api, filters, hooks, i18n, metrics, ui

    app.register_blueprint(hooks.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(ui.bp)
    i18n.init_app(app)
    filters.init_app(app)

    @app.get("/healthz")
    def healthz() -> Any:
        return _health(runtime)

    @app.get("/")
    def index() -> Any:
        from flask import redirect, url_for

        return redirect(url_for("ui.runs"))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        if request.blueprint == "ui":
            return exc
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
        return jsonify(body), code

    return app


def _health(rt: Runtime) -> Any:
    checks: dict[str, Any] = {}
    try:
        with rt.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = {"ok": True, "dialect": rt.engine.dialect.name}
    except Exception as exc:
        checks["database"] = {"ok": False, "error": str(exc).splitlines()[0]}
    try:
        rt.redis.ping()
        checks["redis"] = {"ok": True, "queued_jobs": rt.queue.count}
    except RedisError as exc:
        checks["redis"] = {"ok": False, "error": str(exc)}
    ok = all(c["ok"] for c in checks.values())
    return jsonify({"status": "ok" if ok else "degraded", **checks}), 200 if ok else 503


def runtime_of(app: Flask) -> Runtime:
    rt: Runtime = app.extensions["puente"]
    return rt
