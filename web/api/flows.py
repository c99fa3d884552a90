"""Flows: save (every change a new version), check with a preview, enable, export and import."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import jsonify, request
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from connector import admin
from connector.checks import CheckReport, check_flow
from connector.dryrun import dry_run
from connector.flow_export import leave_out_secrets, placeholders
from connector.models import Flow, FlowVersion
from web import current_runtime
from web.api import ApiError, bp, iso, json_body, listing, not_found, page, sessions

EXPORT_FORMAT = "puente.flow/1"


def report_json(report: CheckReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "errors": [{"field": e.path, "message": e.message, "code": e.code} for e in report.errors],
        "preview": report.preview,
    }


def flow_json(flow: Flow, report: CheckReport | None = None) -> dict[str, Any]:
    version = flow.current_version
    body: dict[str, Any] = {
        "id": flow.id,
        "name": flow.name,
        "trigger": flow.trigger_key,
        "enabled": flow.enabled,
        "version": version.version if version else None,
        "document": version.document if version else None,
        "updated_at": iso(flow.updated_at),
    }
    if flow.subscription is not None:
        public = current_runtime().settings.public_url
        body["webhook_url"] = f"{public}/hooks/{flow.subscription.token}"
    if report is not None:
        body["check"] = report_json(report)
    return body


def _load(s: Any, flow_id: int) -> Flow:
    flow = s.get(Flow, flow_id)
    if flow is None:
        raise not_found("flow", flow_id)
    return flow


def _document(data: dict[str, Any]) -> dict[str, Any]:
    document = data.get("document")
    if not isinstance(document, dict):
        raise ApiError(422, "invalid", 'send the flow as {"document": {...}}', "document")
    return document


@bp.get("/flows")
def list_flows() -> Any:
    limit, offset = page()
    query = select(Flow).options(
        selectinload(Flow.current_version), selectinload(Flow.subscription)
    )
    return listing(query, Flow.id, flow_json, limit, offset)


@bp.get("/flows/<int:flow_id>")
def get_flow(flow_id: int) -> Any:
    """The flow with what its check finds without evaluating anything (no preview): reading
    a flow never runs its expressions; POST /flows/check tries them on the sample."""
    with sessions()() as s:
        flow = _load(s, flow_id)
        report = (
            check_flow(flow.current_version.document, current_runtime().registry, preview=False)
            if flow.current_version
            else None
        )
        return jsonify(flow_json(flow, report))


@bp.post("/flows")
def create_flow() -> Any:
    """A new flow (disabled unless "enabled": true and it has no problems).

    A standalone webhook trigger (the generic signed one) gets its own endpoint; its secret
    is shown in this answer only. A CRM's trigger listens on its connection's address, an
    event or poll trigger on no address at all.
    """
    data = json_body()
    return _create(_document(data), enabled=bool(data.get("enabled", False)))


def _create(document: dict[str, Any], enabled: bool) -> Any:
    rt = current_runtime()
    with sessions().begin() as s:
        saved, secret = admin.create_flow(s, rt.secrets, rt.registry, document, enabled=enabled)
        body = flow_json(saved.flow, saved.report)
        if secret is not None:
            body["webhook_secret"] = secret
        return jsonify(body), 201


@bp.put("/flows/<int:flow_id>")
def update_flow(flow_id: int) -> Any:
    """Save a new version; runs already started keep the version they started with."""
    document = _document(json_body())
    with sessions().begin() as s:
        saved = admin.save_flow(s, current_runtime().registry, document, flow=_load(s, flow_id))
        return jsonify(flow_json(saved.flow, saved.report))


@bp.post("/flows/<int:flow_id>/<any(enable, disable):change>")
def switch_flow(flow_id: int, change: str) -> Any:
    with sessions().begin() as s:
        registry = current_runtime().registry
        flow = admin.set_enabled(s, registry, _load(s, flow_id), change == "enable")
        return jsonify(flow_json(flow))


@bp.post("/flows/check")
def check_document() -> Any:
    """Check a document without saving it; "sample" replaces the trigger's example data."""
    data = json_body()
    sample = data.get("sample")
    if sample is not None and not isinstance(sample, dict):
        raise ApiError(422, "invalid", "sample must be a trigger item (an object)", "sample")
    return jsonify(report_json(check_flow(_document(data), current_runtime().registry, sample)))


@bp.get("/flows/<int:flow_id>/versions")
def list_versions(flow_id: int) -> Any:
    with sessions()() as s:
        _load(s, flow_id)
        versions = s.scalars(
            select(FlowVersion)
            .where(FlowVersion.flow_id == flow_id)
            .order_by(FlowVersion.version.desc())
        ).all()
        return jsonify(
            {
                "items": [
                    {"version": v.version, "created_at": iso(v.created_at), "document": v.document}
                    for v in versions
                ]
            }
        )


@bp.get("/flows/<int:flow_id>/export")
def export_flow(flow_id: int) -> Any:
    """The flow as portable JSON: its document and the names of what it connects to, no
    secrets (webhook secrets and credentials stay in this installation; a literal secret
    typed into a step is left out as a placeholder, listed in "secrets_left_out")."""
    with sessions()() as s:
        flow = _load(s, flow_id)
        if flow.current_version is None:
            raise ApiError(409, "conflict", "the flow has no saved version")
        document, left_out = leave_out_secrets(flow.current_version.document)
        return jsonify(
            {
                "format": EXPORT_FORMAT,
                "name": flow.name,
                "document": document,
                "webhook": flow.subscription.name if flow.subscription else None,
                "secrets_left_out": [f"document.{path}" for path in left_out],
            }
        )


@bp.post("/flows/import")
def import_flow() -> Any:
    """Create a flow from an export; it starts disabled, with a new webhook of its own."""
    data = json_body()
    if data.get("format") != EXPORT_FORMAT:
        raise ApiError(
            422,
            "invalid",
            f'this is not a flow export ("format": "{EXPORT_FORMAT}" expected)',
            "format",
        )
    document = _document(data)
    _refuse_placeholders(document)
    forbidden = _secrets_in({k: v for k, v in data.items() if k != "document"})
    if forbidden:
        raise ApiError(
            422,
            "invalid",
            "an export never carries secrets; remove: " + ", ".join(forbidden),
            forbidden[0],
        )
    # Secrets inside the document are the placeholders an export leaves (refused above until
    # filled in): a value filled in there is the importer's own, as in a flow they save.
    return _create(document, enabled=False)


def _refuse_placeholders(document: dict[str, Any]) -> None:
    """Refuse an export whose left-out secrets are not filled in, naming each one: stored,
    a placeholder would stand where the secret should be."""
    paths = [f"document.{path}" for path in placeholders(document)]
    if not paths:
        return
    n, listed = len(paths), ", ".join(paths)
    what = (f"{n} secrets", f"{n} secretos") if n > 1 else ("a secret", "un secreto")
    raise ApiError(
        422,
        "secret_left_out",
        f"the export left out {what[0]} (a literal credential in a step): replace each "
        '{"$secret": …} with its value, or better keep the credential in a connection and '
        f"name it in the step, then import again: {listed}",
        paths[0],
        [
            {
                "field": path,
                "message": "left out of the export: fill it in",
                "message_es": "se omitió al exportar: rellénalo",
            }
            for path in paths
        ],
        message_es=f"la exportación omitió {what[1]} (una credencial escrita en un paso): "
        'cambia cada {"$secret": …} por su valor o, mejor, guarda la credencial en una '
        f"conexión e indícala en el paso, y vuelve a importar: {listed}",
    )


def _secrets_in(data: Any, path: str = "") -> list[str]:
    found = []
    if isinstance(data, dict):
        for key, value in data.items():
            here = f"{path}.{key}" if path else key
            if key in ("secret", "webhook_secret", "password", "api_key", "token"):
                found.append(here)
            found.extend(_secrets_in(value, here))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found.extend(_secrets_in(value, f"{path}[{i}]"))
    return found


@bp.post("/flows/dry-run")
def dry_run_document() -> Any:
    """Run a flow document on sample data without effects: {"document", "trigger"?, "until"?}."""
    data = json_body()
    return _dry_run(_document(data), data)


@bp.post("/flows/<int:flow_id>/dry-run")
def dry_run_flow(flow_id: int) -> Any:
    """Test the saved flow (or its steps up to "until") on "trigger" or the sample data."""
    data = json_body() if request.get_data() else {}
    with sessions()() as s:
        flow = _load(s, flow_id)
        if flow.current_version is None:
            raise ApiError(409, "conflict", "the flow has no saved version")
        document = flow.current_version.document
    return _dry_run(document, data)


def _dry_run(document: dict[str, Any], data: dict[str, Any]) -> Any:
    rt = current_runtime()
    trigger = data.get("trigger")
    if trigger is not None and not isinstance(trigger, dict):
        raise ApiError(422, "invalid", "trigger must be a trigger item (an object)", "trigger")
    until = data.get("until")
    result = dry_run(
        rt.sessions,
        rt.registry,
        document,
        trigger,
        rt.tools,
        until=until if isinstance(until, str) else None,
    )
    return jsonify({"status": result.status, "steps": [asdict(step) for step in result.steps]})
