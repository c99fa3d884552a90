"""Server-rendered pages for people, under /ui: one blueprint per area (what they share is in
web.ui.common, which imports none of them)."""

from __future__ import annotations

from flask import Flask

from web.ui import (
    catalog,
    common,
    documents,
    flows,
    invoices,
    pipeline,
    printing,
    reports,
    runs,
    session,
    settings,
)

BLUEPRINTS = (
    session.bp,
    runs.bp,
    flows.bp,
    invoices.bp,
    pipeline.bp,
    printing.bp,
    documents.bp,
    catalog.bp,
    reports.bp,
    settings.bp,
)


def register(app: Flask) -> None:
    """Register every area's blueprint, and what their forms need in every template."""
    common.init_app(app)
    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
