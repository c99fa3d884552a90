"""Server-rendered pages for people, under /ui: one blueprint per area (what they share is in
web.ui.common, which imports none of them)."""

from __future__ import annotations

from typing import Any

from flask import Flask, render_template
from werkzeug.exceptions import HTTPException

from web.ui import (
    builder,
    catalog,
    common,
    connections,
    dashboard,
    documents,
    flows,
    invoices,
    people,
    pipeline,
    printing,
    reports,
    runs,
    session,
    settings,
)

BLUEPRINTS = (
    session.bp,
    dashboard.bp,
    runs.bp,
    flows.bp,
    builder.bp,
    connections.bp,
    invoices.bp,
    pipeline.bp,
    printing.bp,
    documents.bp,
    catalog.bp,
    reports.bp,
    settings.bp,
    people.bp,
)


def register(app: Flask) -> None:
    """Register every area's blueprint, and what their forms need in every template."""
    common.init_app(app)
    for bp in BLUEPRINTS:
        app.register_blueprint(bp)


def error_page(exc: HTTPException) -> Any:
    """An error as a page in the reader's language: what happened and what to do now."""
    code = exc.code or 500
    known = code if code in (400, 403, 404, 405, 413, 503) else 500
    headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
    return render_template("ui/error.html", code=code, known=known), code, headers
