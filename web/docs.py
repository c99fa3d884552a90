"""/api/docs: the OpenAPI document as a page to browse, from our own static files (no CDN)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

bp = Blueprint("docs", __name__)


@bp.get("/api/docs")
def api_docs() -> Any:
    return render_template("api_docs.html")
