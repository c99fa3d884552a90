"""Our company (the issuer): fiscal data and numbering series."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from invoicing import issuing
from invoicing.errors import DocumentStateError
from invoicing.models import Issuer
from web.api import ApiError, bp, json_body, sessions
from web.auth import needs

FIELDS = issuing.ISSUER_FIELDS


def issuer_json(issuer: Issuer) -> dict[str, Any]:
    return {
        **{name: getattr(issuer, name) for name in ("id", *FIELDS)},
        "series": [
            {"code": s.code, "purpose": s.purpose, "description": s.description}
            for s in issuer.series
        ],
    }


@bp.get("/issuer")
def get_issuer() -> Any:
    with sessions()() as s:
        try:
            return jsonify(issuer_json(issuing.default_issuer(s)))
        except DocumentStateError as exc:
            raise ApiError(404, "not_found", str(exc)) from None


@bp.put("/issuer")
@needs("admin")
def put_issuer() -> Any:
    data = json_body()
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ApiError(422, "invalid", f"unknown fields: {', '.join(unknown)}", unknown[0])
    missing = [
        f
        for f in ("tax_id", "name", "street", "postal_code", "city", "province")
        if not isinstance(data.get(f), str)
    ]
    if missing:
        raise ApiError(
            422, "invalid", f"required text fields missing: {', '.join(missing)}", missing[0]
        )
    with sessions().begin() as s:
        issuer = issuing.configure_issuer(s, issuing.IssuerData(**data))
        return jsonify(issuer_json(issuer))
