"""Ready-made flows: GET /api/v1/templates lists them; POST /api/v1/templates/<key>/install
creates one, enabled, for a connection of its type."""

from __future__ import annotations

from typing import Any

from flask import jsonify
from sqlalchemy import select

from connector import admin
from connector.models import Connection
from connector.spec import TemplateSpec
from web import current_runtime
from web.api import ApiError, bp, json_body, sessions


def template_json(template: TemplateSpec) -> dict[str, Any]:
    return {
        "key": template.key,
        "title": template.title,
        "title_es": template.title_es,
        "description": template.description,
        "description_es": template.description_es,
        "connection_type": template.connection_type,
    }


@bp.get("/templates")
def list_templates() -> Any:
    templates = sorted(current_runtime().registry.templates.values(), key=lambda t: t.key)
    return jsonify({"items": [template_json(t) for t in templates]})


@bp.post("/templates/<key>/install")
def install_template(key: str) -> Any:
    """{"connection": "<name>"} → 201 {"flow_id"}: the flow is created and enabled."""
    rt = current_runtime()
    template = rt.registry.templates.get(key)
    if template is None:
        known = ", ".join(sorted(rt.registry.templates))
        raise ApiError(404, "not_found", f"there is no template {key!r}; known: {known}")
    name = "" if template.connection_type is None else _connection(template.connection_type)
    with sessions().begin() as s:
        saved, secret = admin.create_flow(
            s, rt.secrets, rt.registry, template.document(name), enabled=True
        )
        body: dict[str, Any] = {"flow_id": saved.flow.id, "name": saved.flow.name}
        if secret is not None and saved.flow.subscription is not None:
            # A template whose trigger has an address of its own (the hours webhook): it and
            # its secret, shown in this answer only.
            token = saved.flow.subscription.token
            body |= {
                "webhook_url": f"{rt.settings.public_url}/hooks/{token}",
                "webhook_secret": secret,
            }
        return jsonify(body), 201


def _connection(needed: str) -> str:
    """The connection the request names, which must exist and be of the type `needed`."""
    name = json_body().get("connection")
    if not isinstance(name, str) or not name:
        raise ApiError(
            422,
            "invalid",
            'name the connection the flow uses: {"connection": "<name>"}',
            "connection",
        )
    with sessions()() as s:
        kind = s.scalar(select(Connection.type).where(Connection.name == name))
    if kind is None:
        raise ApiError(
            422, "invalid", f"there is no connection named {name!r}; create it first", "connection"
        )
    if kind != needed:
        raise ApiError(
            422,
            "invalid",
            f"connection {name!r} is a {kind} connection; this template needs a {needed} one",
            "connection",
        )
    return name
