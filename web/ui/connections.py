"""Connections for people: add a CRM (or any HTTP API) with guided steps in Spanish, test it,
copy the address its webhooks go to, and install its ready-made flows in two clicks.

Each type's form is made from its provider's JSON Schema (schemas/providers/): the Spanish
titles there say which value goes where and where to find it in the CRM. Secrets are never
shown again: left empty, the stored one is kept.
"""

from __future__ import annotations

import re
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from connector import admin, connections, schemas
from connector.connections import check_connection, default_providers, read_secret
from connector.errors import ConfigurationError, FieldError
from connector.models import Connection, Flow
from web import current_runtime
from web.i18n import language, translate
from web.ui.common import (
    allow,
    blueprint,
    current_user,
    sessions,
    show_once,
    shown_once,
    typed_amount,
)

bp = blueprint("connections", __name__)

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,79}$")
INSTALLED_SECRET = "template_webhook_secret"

# Where each CRM's webhook address goes (types whose provider registers it itself say so).
PASTE_HELP = {
    "hubspot": (
        "En HubSpot: Configuración → Integraciones → Apps privadas → tu app → pestaña "
        "Webhooks → «URL de destino»: pega esta dirección; crea la suscripción «Negocio → "
        "Propiedad cambiada → dealstage» y actívala.",
        "In HubSpot: Settings → Integrations → Private apps → your app → Webhooks tab → "
        '"Target URL": paste this address; create the subscription "Deal → Property '
        'changed → dealstage" and activate it.',
    ),
    "salesforce": (
        "En Salesforce: Configuración → Mensajes salientes → Nuevo (objeto Oportunidad) → "
        "«URL de extremo»: pega esta dirección, con los campos Id, StageName, IsWon y "
        "LastModifiedDate; envíalo desde un flujo cuando IsWon pase a verdadero.",
        'In Salesforce: Setup → Outbound Messages → New (object Opportunity) → "Endpoint '
        'URL": paste this address, with the fields Id, StageName, IsWon and '
        "LastModifiedDate; send it from a Flow when IsWon becomes true.",
    ),
    "zoho": (
        "No hay que pegarla: Puente da de alta en Zoho CRM un canal de notificaciones hacia "
        "esta dirección al instalar las plantillas.",
        "Nothing to paste: Puente enables a notification channel in Zoho CRM towards this "
        "address when the templates are installed.",
    ),
    "pipedrive": (
        "Puente registra el webhook en Pipedrive al instalar las plantillas. Si lo prefieres "
        "a mano: Configuración → Herramientas y aplicaciones → Webhooks → evento deal / "
        "updated, «URL del extremo»: esta dirección, con el usuario y la contraseña HTTP que "
        "pusiste aquí.",
        "Puente registers the webhook in Pipedrive when the templates are installed. By "
        'hand: Settings → Tools and apps → Webhooks → event deal / updated, "Endpoint '
        'URL": this address, with the HTTP user and password you set here.',
    ),
}


def _es() -> bool:
    return language() == "es"


def _types() -> list[dict[str, str]]:
    return [
        {"key": p.key, "title": p.title_es if _es() else p.title}
        for p in default_providers().by_key.values()
    ]


def _fields(kind: str) -> list[dict[str, Any]]:
    """The form of a connection type: one entry per field a person fills in."""
    schema = schemas.inline(default_providers().get(kind).config_schema)
    found = []
    for name, prop in schema.get("properties", {}).items():
        if "const" in prop:
            continue  # fixed by the type (a CRM's auth)
        if name in ("settings", "secret"):
            required = set(prop.get("required", []))
            for sub, sub_prop in prop.get("properties", {}).items():
                found.append(_field(f"{name}.{sub}", sub_prop, sub in required, name == "secret"))
        else:
            found.append(_field(name, prop, name in schema.get("required", []), False))
    return found


def _field(name: str, prop: dict[str, Any], required: bool, secret: bool) -> dict[str, Any]:
    types = prop.get("type") or []
    types = [types] if isinstance(types, str) else types
    return {
        "name": name,
        "label": (prop.get("x-title-es") if _es() else None) or prop.get("title") or name,
        "help": prop.get("x-description-es") if _es() else prop.get("description"),
        "required": required,
        "secret": secret,
        "choices": prop.get("enum"),
        "list": "array" in types,
        "boolean": "boolean" in types,
        "number": "number" in types or "integer" in types,
        "default": prop.get("default"),
    }


def _document(kind: str) -> dict[str, Any]:
    """The connection document the form sent (secrets left empty: kept as they are)."""
    form = request.form
    doc: dict[str, Any] = {"settings": {}, "secret": {}}
    for f in _fields(kind):
        raw = (form.get(f["name"]) or "").strip()
        if not raw:
            continue
        if f["boolean"]:
            value: Any = {"true": True, "false": False}.get(raw, raw)
        elif f["choices"] is not None:
            value = next((c for c in f["choices"] if str(c) == raw), raw)
        elif f["list"]:
            value = [part.strip() for part in raw.split(",") if part.strip()]
        elif f["number"]:
            try:
                value = float(typed_amount(raw))
            except ValueError:
                value = raw  # refused by the schema, with the field named
        else:
            value = raw
        group, _, key = f["name"].rpartition(".")
        (doc[group] if group else doc)[key or f["name"]] = value
    return doc


def _values(conn: Connection | None) -> dict[str, str]:
    if conn is None:
        return {}
    values: dict[str, str] = {"base_url": conn.base_url, "auth": conn.auth}
    if conn.header_name:
        values["header_name"] = conn.header_name
    for key, value in (conn.settings or {}).items():
        if isinstance(value, bool):
            values[f"settings.{key}"] = "true" if value else "false"
        elif value is not None:
            values[f"settings.{key}"] = ", ".join(value) if isinstance(value, list) else str(value)
    return values


@bp.get("/connections")
def connections_list() -> Any:
    rt = current_runtime()
    with sessions()() as s:
        rows = s.scalars(select(Connection).order_by(Connection.name)).all()
        items = [
            {"conn": c, "webhook_url": connections.webhook_url(c, rt.settings.public_url)}
            for c in rows
        ]
        return render_template("ui/connections.html", items=items, types=_types())


@bp.route("/connections/new", methods=["GET", "POST"])
@allow("flows", to_read=True)
def connection_new() -> Any:
    kind = request.values.get("type", "")
    if kind not in default_providers().by_key:
        return render_template("ui/connections.html", items=None, types=_types())
    return _form(None, kind)


@bp.route("/connections/<name>", methods=["GET", "POST"])
@allow("flows")
def connection_edit(name: str) -> Any:
    with sessions()() as s:
        conn = s.scalar(select(Connection).where(Connection.name == name))
        if conn is None:
            abort(404)
        s.expunge(conn)
    return _form(conn, conn.type)


def _form(conn: Connection | None, kind: str) -> Any:
    rt = current_runtime()
    errors: dict[str, str] = {}
    status = 200
    name = conn.name if conn else request.form.get("name", "").strip()
    if request.method == "POST":
        doc = _document(kind)
        if conn is None and not NAME.match(name):
            errors["name"] = "connection_name_invalid"
        if conn is None and not errors:
            with sessions()() as s:
                if s.scalar(select(Connection.id).where(Connection.name == name)):
                    errors["name"] = "connection_name_taken"
        if not errors:
            try:
                with sessions().begin() as s:
                    connections.save_connection(
                        s,
                        rt.secrets,
                        name=name,
                        type=kind,
                        base_url=doc.get("base_url", ""),
                        auth=doc.get("auth"),
                        secret=doc["secret"] or None,
                        header_name=doc.get("header_name"),
                        settings=doc["settings"] or None,
                        providers=default_providers(),
                    )
            except ConfigurationError as exc:
                errors = _by_field(exc.errors) or {"": exc.message}
            else:
                flash("connection_saved", "notice")
                return redirect(url_for("connections.connection_edit", name=name))
        status = 422
    secret_set: list[str] = []
    webhook = None
    flows: list[Flow] = []
    if conn is not None:
        try:
            secret_set = sorted(read_secret(conn, rt.secrets))
        except ValueError:
            secret_set = []
        webhook = connections.webhook_url(conn, rt.settings.public_url)
        with sessions()() as s:
            every = s.scalars(
                select(Flow).options(selectinload(Flow.current_version)).order_by(Flow.id)
            )
            flows = [f for f in every if conn.name in _connections_of(f)]
    provider = default_providers().get(kind)
    values = _values(conn) | {k: v for k, v in request.form.items() if not k.startswith("secret.")}
    templates = sorted(
        (t for t in rt.registry.templates.values() if t.connection_type == kind),
        key=lambda t: t.key,
    )
    return render_template(
        "ui/connection.html",
        conn=conn,
        kind=kind,
        title=provider.title_es if _es() else provider.title,
        name=name,
        fields=_fields(kind),
        values=values,
        errors=errors,
        secret_set=secret_set,
        webhook=webhook,
        paste_help=PASTE_HELP.get(kind, (None, None))[0 if _es() else 1],
        templates=templates,
        flows=flows,
        installed_secret=shown_once(INSTALLED_SECRET),
    ), status


def _connections_of(flow: Flow) -> set[str | None]:
    """The connections a flow's trigger and steps name."""
    document = flow.current_version.document if flow.current_version else {}
    return {document.get("trigger", {}).get("connection")} | {
        step.get("connection") for step in document.get("steps", [])
    }


def _by_field(errors: list[FieldError]) -> dict[str, str]:
    lang = language()
    found: dict[str, str] = {}
    for e in errors:
        found.setdefault(e.path, e.text(lang))
    return found


@bp.post("/connections/<name>/test")
@allow("flows")
def connection_test(name: str) -> Any:
    rt = current_runtime()
    with sessions()() as s:
        if s.scalar(select(Connection.id).where(Connection.name == name)) is None:
            abort(404)
    result = check_connection(name, rt.http, rt.sessions, default_providers()).as_dict()
    said = result["message_es"] if _es() else result["message"]
    flash(  # already in the reader's language: shown as it is
        f"{translate('connection_ok' if result['ok'] else 'connection_failed')} {said}",
        "notice" if result["ok"] else "error",
    )
    return redirect(url_for("connections.connection_edit", name=name))


@bp.post("/connections/<name>/install/<key>")
@allow("flows")
def template_install(name: str, key: str) -> Any:
    """A ready-made flow for this connection: created and enabled, as the API does."""
    rt = current_runtime()
    template = rt.registry.templates.get(key)
    with sessions()() as s:
        kind = s.scalar(select(Connection.type).where(Connection.name == name))
    if template is None or kind is None or template.connection_type != kind:
        abort(404)
    try:
        with sessions().begin() as s:
            saved, secret = admin.create_flow(
                s, rt.secrets, rt.registry, template.document(name), enabled=True
            )
            user = current_user()
            saved.flow.owner_id = user.id if user else None
    except ConfigurationError as exc:
        problems = "; ".join(_by_field(exc.errors).values()) or exc.message
        flash(f"{translate('template_refused')} {problems}", "error")
    else:
        if secret:
            show_once(INSTALLED_SECRET, secret)
        flash(f"{translate('template_installed')} {saved.flow.name}", "notice")
    return redirect(url_for("connections.connection_edit", name=name))
