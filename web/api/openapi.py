"""The OpenAPI 3.1 document of /api/v1, built from the same JSON Schemas the code validates
with (schemas/, bundled under components) and the operations declared in
web.api.openapi_ops; served at /api/v1/openapi.json, browsable at /api/docs.

Every route must be declared (tests/web/test_openapi.py fails otherwise), and the tests
validate real responses against the document.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from flask import jsonify

from connector.public_events import event_types
from connector.schemas import load_schema
from web import current_runtime
from web.api import bp
from web.auth import public

JSON = "application/json"


@dataclass(frozen=True)
class Param:
    name: str
    schema: dict[str, Any]
    description: str = ""
    required: bool = False
    where: str = "query"  # or "header"


@dataclass(frozen=True)
class Op:
    """One operation: its answers by status (a JSON Schema; None for no body; a media type
    string for a file), and its request body's schema when it takes one."""

    method: str
    path: str  # as Flask writes it: /invoices/<int:invoice_id>
    summary: str
    tag: str
    responses: dict[int, Any]
    body: Any = None
    params: tuple[Param, ...] = ()
    description: str = ""
    body_required: bool = True
    errors: tuple[int, ...] = field(default=())  # more than the usual ones


def ref(name: str) -> dict[str, str]:
    """A schema of schemas/ (e.g. "triggers/deal_won.json") or a component by name."""
    return {"$ref": f"#/components/schemas/{component_name(name)}"}


def component_name(name: str) -> str:
    return name.removesuffix(".json").replace("/", ".") if name.endswith(".json") else name


def obj(required: Iterable[str] = (), extra: bool = True, **properties: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if not extra:
        schema["additionalProperties"] = False
    return schema


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
BOOLEAN = {"type": "boolean"}
NUMBER_TEXT = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}
DATE = {"type": "string", "format": "date"}
DATETIME = {"type": "string", "format": "date-time"}
ANY: dict[str, Any] = {}


def items(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": schema}


def page(item: dict[str, Any]) -> dict[str, Any]:
    """A listing answer: {"items", "total", "limit", "offset"}."""
    return obj(
        ["items", "total", "limit", "offset"],
        items=items(item),
        total=INTEGER,
        limit=INTEGER,
        offset=INTEGER,
    )


ERROR = obj(
    ["error", "message"],
    error={"type": "string", "description": "a stable code: invalid, not_found, forbidden…"},
    message={"type": "string", "description": "what is wrong and how to fix it"},
    message_es={"type": "string", "description": "the same, in Spanish"},
    field={"type": "string", "description": "the field or parameter at fault"},
    errors=items(obj(["field", "message"], field=STRING, message=STRING)),
    missing_scope={"type": "string", "description": "403: the scope the API key lacks"},
)
ERROR_TEXT = {
    400: "The request cannot be read (not JSON, a bad parameter).",
    401: "No API key, or an unknown or revoked one.",
    403: "The API key lacks the scope this operation needs (`missing_scope`).",
    404: "What the path names does not exist.",
    409: "The change conflicts with the record's state (e.g. it is issued already).",
    413: "Too much in one request: a body over the size limit, or (pushing items) more items "
    "than one request may carry: send them in smaller batches.",
    422: "The data is not valid: `errors` names every field at fault.",
    429: "The API key made too many requests (or, pushing items, sent too many items) this "
    "minute: wait `Retry-After` seconds.",
    502: "The other side (a mail server) refused or failed; the attempt is recorded.",
    503: "A service this needs is not configured or not reachable now.",
}
LIMIT = Param("limit", {"type": "integer", "minimum": 1}, "page size")
OFFSET = Param("offset", {"type": "integer", "minimum": 0}, "items to skip")
IDEMPOTENCY = Param(
    "Idempotency-Key",
    {"type": "string", "minLength": 1, "maxLength": 200},
    "repeat a request safely: a repeat with the same key changes nothing and gets the first "
    "answer (status and body) again, with the header `Idempotent-Replayed: true`",
    where="header",
)


def openapi_path(rule: str) -> str:
    """/invoices/<int:invoice_id> → /invoices/{invoice_id}; <any(a, b):change> too."""
    return re.sub(r"<(?:[^:<>]+:)?([a-z_]+)>", r"{\1}", re.sub(r"<any\([^)]*\):", "<", rule))


def _path_params(rule: str) -> list[dict[str, Any]]:
    found = []
    for converter, name in re.findall(r"<(?:([a-z]+)(?:\([^)]*\))?:)?([a-z_]+)>", rule):
        schema: dict[str, Any] = {"type": "integer"} if converter == "int" else {"type": "string"}
        if converter == "any":
            options = re.findall(r"any\(([^)]*)\)", rule)[0].split(",")
            schema = {"type": "string", "enum": [o.strip().strip("'\"") for o in options]}
        found.append({"name": name, "in": "path", "required": True, "schema": schema})
    return found


def _operation(op: Op, scope: str | None) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, schema in sorted(op.responses.items()):
        answer: dict[str, Any] = {"description": _describe(status)}
        if isinstance(schema, str):
            answer["content"] = {schema: {"schema": {"type": "string"}}}
        elif schema is not None:
            answer["content"] = {JSON: {"schema": schema}}
        responses[str(status)] = answer
    errors = set(op.errors)
    if scope is not None:
        errors |= {401, 403, 429}
    if op.body is not None or op.method in ("POST", "PUT", "PATCH"):
        errors |= {400, 422}
    if "<" in op.path:
        errors.add(404)
    if any(p.where == "query" for p in op.params):
        errors.add(400)
    for status in sorted(errors - set(op.responses)):
        responses[str(status)] = {
            "description": ERROR_TEXT[status],
            "content": {JSON: {"schema": ref("Error")}},
        }
    operation: dict[str, Any] = {
        "operationId": re.sub(r"[^A-Za-z0-9]+", "_", f"{op.method.lower()}{op.path}").strip("_"),
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": _path_params(op.path)
        + [
            {
                "name": p.name,
                "in": p.where,
                "required": p.required,
                "schema": p.schema,
                "description": p.description,
            }
            for p in op.params
        ],
        "responses": responses,
        "security": [] if scope is None else [{"apiKey": [scope]}],
    }
    if op.description:
        operation["description"] = op.description
    if scope is not None:
        operation["x-scope"] = scope
    if op.body is not None:
        operation["requestBody"] = {
            "required": op.body_required,
            "content": {JSON: {"schema": op.body}},
        }
    return operation


def _describe(status: int) -> str:
    return {
        200: "OK",
        201: "Created",
        202: "Accepted: stored, the runs are queued",
        204: "Done, no content",
    }.get(status, ERROR_TEXT.get(status, "Answer"))


def _bundle(names: Iterable[str]) -> dict[str, Any]:
    """Each schema file and every file it refers to, as components with local $refs."""
    components: dict[str, Any] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        key = component_name(name)
        if key in components:
            continue
        schema = copy.deepcopy(load_schema(name))
        folder = name.rsplit("/", 1)[0]

        def local(node: Any, folder: str = folder) -> Any:
            if isinstance(node, dict):
                if isinstance(node.get("$ref"), str) and node["$ref"].endswith(".json"):
                    target = _resolve(folder, node["$ref"])
                    todo.append(target)
                    node = {**node, "$ref": f"#/components/schemas/{component_name(target)}"}
                return {k: local(v, folder) for k, v in node.items() if k not in ("$schema", "$id")}
            if isinstance(node, list):
                return [local(v, folder) for v in node]
            return node

        components[key] = local(schema)
    return components


def _resolve(folder: str, target: str) -> str:
    parts = folder.split("/") if folder else []
    for piece in target.split("/"):
        if piece == "..":
            parts.pop()
        elif piece != ".":
            parts.append(piece)
    return "/".join(parts)


def _schema_files(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        target = node.get("$ref")
        if isinstance(target, str) and target.startswith("#/components/schemas/"):
            found.add(target.removeprefix("#/components/schemas/"))
        for value in node.values():
            found |= _schema_files(value)
    elif isinstance(node, list):
        for value in node:
            found |= _schema_files(value)
    return found


@cache
def document(public_url: str) -> dict[str, Any]:
    """The whole document (the same for every request of one installation)."""
    from flask import current_app

    from web.api.openapi_ops import COMPONENTS, OPS
    from web.auth import scope_of

    views = {
        (method, rule.rule): current_app.view_functions[rule.endpoint]
        for rule in current_app.url_map.iter_rules()
        for method in rule.methods or ()
    }
    paths: dict[str, dict[str, Any]] = {}
    for op in OPS:
        view = views[(op.method, "/api/v1" + op.path)]
        paths.setdefault(openapi_path(op.path), {})[op.method.lower()] = _operation(
            op, scope_of(view, op.method)
        )
    components = {"Error": ERROR, **COMPONENTS, **_events_component()}
    files = {
        name
        for name in _schema_files({"paths": paths, "components": components})
        if name not in components
    }
    # the folder is the first part: actions.invoicing.x.input → actions/invoicing.x.input.json
    schema_files = {f"{name.replace('.', '/', 1)}.json" for name in files}
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "Puente API",
            "version": "1",
            "description": "Won CRM deals become Spanish invoices. Start flows (push triggers), "
            "subscribe to what happens (REST hooks) or list it (events), and work with "
            "customers, invoices and flows. Authenticate with `Authorization: Bearer <API "
            "key>`; each operation names the scope it needs (read, write, admin).",
        },
        "servers": [{"url": f"{public_url.rstrip('/')}/api/v1"}],
        "paths": paths,
        "components": {
            "schemas": {**_bundle(schema_files), **components},
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (pk_…) made with POST /api-keys or `make run`",
                }
            },
        },
    }


def _events_component() -> dict[str, Any]:
    """The public event as hooks deliver it and GET /events lists it, one variant per type,
    its `data` the type's own schema."""
    types = event_types(current_runtime().registry)
    variants = [
        obj(
            ["id", "type", "created_at", "data"],
            extra=False,
            id={"type": "string", "pattern": "^evt_[0-9]+$"},
            type={"const": name},
            created_at=DATETIME,
            data=ref(schema),
        )
        for name, schema in sorted(types.items())
    ]
    return {
        "PublicEvent": {"oneOf": variants},
        "EventType": {"type": "string", "enum": sorted(types)},
    }


@bp.get("/openapi.json")
@public
def openapi_json() -> Any:
    return jsonify(document(current_runtime().settings.public_url))
