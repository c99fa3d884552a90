"""The flow builder's server side: what the page's script (static/builder.js) reads and asks.

- the catalog: every trigger and action by app, with Spanish (or English) titles, each
  action's input schema inlined (the form is generated from it) and each trigger's and
  action's sample data (the field picker shows it), and the connections a CRM step can use;
- checking a flow document as it is built: every problem with the field at fault, in the
  reader's language, and the preview of each step's inputs on the sample data;
- trying the flow, or its steps up to one, on the sample data (a dry run: nothing stays);
- "Nuevo flujo": the page, and creating the flow it sends.

The JSON editor stays on the flow's page (web.ui.flows) as the advanced view.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from flask import jsonify, redirect, render_template, request, url_for
from sqlalchemy import select

from connector import admin, messages, schemas
from connector.checks import check_flow
from connector.connections import default_providers
from connector.dryrun import dry_run
from connector.errors import FieldError, PuenteError
from connector.models import Connection, Event, EventStatus
from web import current_runtime
from web.i18n import keys, language, translate
from web.ui.common import (
    NEW_FLOW_SECRET,
    allow,
    blueprint,
    current_user,
    sessions,
    show_once,
)

bp = blueprint("builder", __name__)
PREFIX = "builder_"  # the builder's texts, handed to static/builder.js without it


@bp.app_context_processor
def texts() -> dict[str, Any]:
    return {"builder_texts": lambda: {k[len(PREFIX) :]: translate(k) for k in keys(PREFIX)}}


def _owner() -> int | None:
    user = current_user()
    return user.id if user else None


def _lang() -> str:
    return language()


def _app(key: str) -> dict[str, str]:
    app = key.split(".", 1)[0]
    name = translate(f"app_{app}")
    return {"key": app, "name": app if name == f"app_{app}" else name}


def _provider(action_key: str) -> str | None:
    """The connection type an action's steps name (a CRM's or http), by its family."""
    family = action_key.partition(".")[0]
    return family if family in default_providers().by_key else None


def _titled(spec: Any) -> dict[str, Any]:
    return {
        "key": spec.key,
        "app": _app(spec.key),
        "title": spec.title_es if _lang() == "es" else spec.title,
    }


@bp.get("/builder/catalog.json")
def catalog() -> Any:
    registry = current_runtime().registry
    with sessions()() as s:
        connections = [
            {"name": name, "type": kind}
            for name, kind in s.execute(
                select(Connection.name, Connection.type).order_by(Connection.name)
            )
        ]
    triggers = [
        {
            **_titled(t),
            "kind": t.kind.value,
            "provider": t.provider,
            "sample": schemas.example(t.output_schema),
            "config": schemas.inline(t.config_schema) if t.config_schema else None,
        }
        for t in sorted(registry.triggers.values(), key=lambda t: t.key)
    ]
    actions = [
        {
            **_titled(a),
            "provider": _provider(a.key),
            "input": schemas.inline(a.input_schema),
            "sample": schemas.example(a.output_schema),
        }
        for a in sorted(registry.actions.values(), key=lambda a: a.key)
    ]
    return jsonify(
        {"lang": _lang(), "triggers": triggers, "actions": actions, "connections": connections}
    )


@bp.get("/builder/sample.json")
def sample() -> Any:
    """The latest real item of a trigger (as received from the CRM or sender, and accepted):
    the field picker shows it and checks and trials run on it instead of the example."""
    key = request.args.get("trigger", "")
    with sessions()() as s:
        event = s.scalar(
            select(Event)
            .where(
                Event.trigger_key == key,
                Event.status == EventStatus.ACCEPTED,
                Event.pruned_at.is_(None),
            )
            .order_by(Event.id.desc())
            .limit(1)
        )
        if event is None or not isinstance(event.payload, dict):
            return jsonify({"error": translate("builder_no_real_sample")}), 404
        return jsonify({"sample": event.payload, "received_at": event.received_at.isoformat()})


def _errors(errors: list[FieldError]) -> list[dict[str, str]]:
    return [{"path": e.path, "message": e.text(_lang())} for e in errors]


def _body() -> tuple[dict[str, Any], Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return {}, None
    return data, data.get("document")


def _sample(data: dict[str, Any]) -> dict[str, Any] | None:
    """The real item the page loaded ("Cargar un ejemplo real"), or None for the example."""
    sample = data.get("sample")
    return sample if isinstance(sample, dict) else None


@bp.post("/builder/check")
@allow("flows")
def check() -> Any:
    """{"document", "sample"?} → {"ok", "errors": [{"path", "message"}], "preview"}."""
    data, document = _body()
    report = check_flow(document, current_runtime().registry, _sample(data))
    return jsonify({"ok": report.ok, "errors": _errors(report.errors), "preview": report.preview})


@bp.post("/builder/dry-run")
@allow("flows")
def trial() -> Any:
    """{"document", "until"?} → what each step would do on the sample data; nothing stays."""
    data, document = _body()
    rt = current_runtime()
    until = data.get("until") if isinstance(data.get("until"), str) else None
    try:
        result = dry_run(
            rt.sessions, rt.registry, document, _sample(data), tools=rt.tools, until=until
        )
    except PuenteError as exc:
        return jsonify({"status": "refused", "errors": _errors(exc.errors)}), 422
    steps = []
    for step in result.steps:
        body = asdict(step)
        if step.error:
            body["error"] = _failure(step.error)
        steps.append(body)
    return jsonify({"status": result.status, "steps": steps})


def _failure(error: dict[str, Any]) -> str:
    """A step's failure in the reader's language: its field errors' words, each with its
    path, when it has them (a mapping's, an input's); its message otherwise."""
    fields = error.get("errors") or []
    if not fields:
        return messages.localized(error, _lang())
    said = []
    for field in fields[:5]:
        text = messages.localized(field, _lang())
        said.append(f"{field['path']}: {text}" if field.get("path") else text)
    return "; ".join(said)


@bp.route("/flows/new", methods=["GET", "POST"])
@allow("flows", to_read=True)
def new_flow() -> Any:
    """The builder on an empty flow; sent, the flow is created (disabled: enabling is a
    separate, checked step) and its page opens."""
    document: Any = None
    problems: list[dict[str, str]] = []
    if request.method == "POST":
        try:
            document = json.loads(request.form.get("document") or "null")
        except ValueError:
            document = None
        if isinstance(document, dict):
            rt = current_runtime()
            try:
                with sessions().begin() as s:
                    saved, secret = admin.create_flow(
                        s, rt.secrets, rt.registry, document, enabled=False
                    )
                    saved.flow.owner_id = _owner()
                    flow_id = saved.flow.id
            except PuenteError as exc:
                problems = _errors(exc.errors) or [{"path": "", "message": exc.message}]
            else:
                if secret:
                    show_once(NEW_FLOW_SECRET, secret)
                return redirect(url_for("flows.flow_edit", flow_id=flow_id, created=1))
        else:
            problems = [{"path": "", "message": translate("builder_not_a_flow")}]
    return render_template("ui/flow_new.html", document=document, problems=problems), (
        422 if problems else 200
    )
