"""Settings for people: our company's fiscal data and its numbering series."""

from __future__ import annotations

from typing import Any

from flask import flash, g, redirect, render_template, request, url_for
from sqlalchemy import select

from invoicing import fields, issuing
from invoicing.errors import InvoicingError
from invoicing.models import Issuer
from web.filters import refusal, said
from web.ui.common import blueprint, sessions

bp = blueprint("settings", __name__)


@bp.route("/settings", methods=["GET", "POST"])
def settings() -> Any:
    """Our company's fiscal data: needed before the first invoice is issued."""
    errors: dict[str, str] = {}
    values: dict[str, str] = {}
    if request.method == "POST":
        values = {
            k: (request.form.get(k) or "").strip() for k in issuing.IssuerData.__annotations__
        }
        data: dict[str, Any] = {k: v for k, v in values.items() if v}
        data["simplified_art_4_2"] = bool(values.get("simplified_art_4_2"))
        try:
            with sessions().begin() as s:
                issuing.configure_issuer(
                    s,
                    issuing.IssuerData(
                        **{
                            "tax_id": "",
                            "name": "",
                            "street": "",
                            "postal_code": "",
                            "city": "",
                            "province": "",
                            **data,
                        }
                    ),
                )
            flash("settings_ok", "ok")
            return redirect(url_for("settings.settings"))
        except InvoicingError as exc:
            errors = {path: said(message) for path, message in getattr(exc, "errors", [])}
            errors = errors or {"": refusal(exc)}
    with sessions()() as s:
        issuer = s.scalar(select(Issuer).order_by(Issuer.id).limit(1))
        if not values and issuer is not None:
            values = {k: getattr(issuer, k) or "" for k in issuing.IssuerData.__annotations__}
        series = list(issuer.series) if issuer else []
        return render_template(
            "ui/settings.html",
            values=values,
            errors=errors,
            series=series,
            countries=fields.countries(str(g.get("lang", "es"))),
        ), 422 if errors else 200
