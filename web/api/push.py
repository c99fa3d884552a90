"""Start flows from outside: push triggers (what Zapier and Make call) and a flow by hand.

Same answers and guarantees as the signed webhook: the items are stored with their runs in
one transaction, then queued; 202 with the run and event ids; an `Idempotency-Key` repeated
is a no-op answering the first ids (200, "duplicate": true); 422 names every schema error and
keeps the refused delivery in the run log. And the same fairness (connector.pace), per API key:
at most PUENTE_MAX_ITEMS_PER_DELIVERY items in one request (413), a budget of items a minute
(429 with Retry-After, nothing stored), the bulk queue past PUENTE_BULK_AFTER_ITEMS.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import g, jsonify, request

from connector import intake, pace
from connector.models import Flow
from connector.spec import ParsedItem, TriggerKind, TriggerSpec
from web import current_runtime, json_input
from web.api import ApiError, bp, not_found, sessions
from web.api.idempotency import request_key


def delivery_key() -> str:
    """The caller's Idempotency-Key (namespaced by API key); a fresh key without one."""
    return request_key() or f"request:{uuid.uuid4().hex}"


def _payload() -> Any:
    if not request.is_json:
        raise ApiError(
            400,
            "invalid_json",
            "send the items as JSON with the header 'Content-Type: application/json'",
        )
    try:
        return json_input.parse(request.get_data(cache=True))
    except json_input.BadJson as exc:
        raise ApiError(400, "invalid_json", str(exc)) from None


def _items(trigger: TriggerSpec, payload: Any, key: str) -> list[ParsedItem]:
    """A push trigger reads its body; a flow started by hand gets its trigger's item (or a
    list of them) as the trigger's output schema describes it, whatever the trigger's kind."""
    if trigger.kind is TriggerKind.PUSH and trigger.parse is not None:
        try:
            return trigger.parse(payload, key, {})
        except ValueError as exc:
            raise ApiError(400, "invalid_payload", str(exc)) from None
    if isinstance(payload, dict):
        return [ParsedItem(key, payload)]
    if isinstance(payload, list) and payload and all(isinstance(p, dict) for p in payload):
        return [ParsedItem(f"{key}#{i}", p) for i, p in enumerate(payload)]
    raise ApiError(
        400, "invalid_payload", "the body must be a JSON object or a non-empty list of objects"
    )


def pace_scope() -> str:
    """What the API key's items are paced by: the key (every flow it starts, pushed or by
    hand), whatever scope its events are stored with."""
    api_key = getattr(g, "api_key", None)  # set by web.auth before any /api/v1 route runs
    return "api" if api_key is None else f"api-key:{api_key.id}"


def accept(route: intake.Route, trigger: TriggerSpec, payload: Any) -> Any:
    """Store the items (or keep the refused delivery), queue the runs, answer as hooks do."""
    rt = current_runtime()
    key = delivery_key()
    items = _items(trigger, payload, key)
    admitted = pace.admit(rt, pace_scope(), len(items), pace.API)
    if not isinstance(admitted, bool):  # refused: nothing is stored
        refusal = ApiError(
            admitted.status, admitted.error, admitted.said.en, message_es=admitted.said.es
        )
        response, status = refusal.response()
        if admitted.retry_after is not None:
            response.headers["Retry-After"] = str(admitted.retry_after)
        return response, status
    errors = intake.invalid(trigger, items)
    if errors:
        result = intake.reject(rt, route, trigger.key, key, payload, errors)
    else:
        result = intake.accept(rt, route, trigger, items, admitted)
    if result.errors is not None:
        first = result.errors[0]["path"] if result.errors else None
        raise ApiError(
            422,
            "invalid",
            "the data does not match the trigger's format; fix the fields listed and send "
            "it again with a new Idempotency-Key",
            first,
            [{"field": e["path"], "message": e["message"]} for e in result.errors],
        )
    body = {"run_ids": result.run_ids, "event_ids": result.event_ids, "duplicate": result.duplicate}
    return jsonify(body), 200 if result.duplicate else 202


def push_trigger(name: str) -> TriggerSpec:
    rt = current_runtime()
    trigger = rt.registry.triggers.get(f"api.{name}")
    if trigger is None or trigger.kind is not TriggerKind.PUSH:
        known = sorted(
            t.key.split(".", 1)[1]
            for t in rt.registry.triggers.values()
            if t.kind is TriggerKind.PUSH
        )
        raise ApiError(
            404,
            "not_found",
            f"there is no push trigger {name!r}; the push triggers are {', '.join(known)}",
        )
    return trigger


@bp.post("/triggers/<name>/events")
def push_events(name: str) -> Any:
    """One item (or a list) for every enabled flow on trigger `api.<name>`."""
    trigger = push_trigger(name)
    return accept(intake.Route.push(), trigger, _payload())


@bp.post("/flows/<int:flow_id>/trigger")
def trigger_flow(flow_id: int) -> Any:
    """Start one flow with the trigger item given (valid against its trigger's schema)."""
    rt = current_runtime()
    with sessions()() as s:
        flow = s.get(Flow, flow_id)
        if flow is None:
            raise not_found("flow", flow_id)
        if not flow.enabled or flow.current_version_id is None:
            raise ApiError(
                409,
                "conflict",
                f"flow {flow_id} is disabled: enable it first (or try it with a dry run, "
                f"POST /api/v1/flows/{flow_id}/dry-run)",
            )
        trigger = rt.registry.trigger(flow.trigger_key)
    return accept(intake.Route.manual(flow_id), trigger, _payload())
