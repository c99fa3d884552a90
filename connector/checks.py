"""Design-time checks of a flow: what would go wrong, found when it is saved, not when it runs.

Every expression must compile and call known functions; every path it reads must exist in
the trigger's output schema or in an earlier step's; each action's required inputs must be
mapped; and the mapping, evaluated on the trigger's sample data, must satisfy the action's
input schema. The same evaluation gives the preview people see while building the flow. A
literal text that spells such a path ("trigger.deal_id") is an expression written without
{"$expr": ...}, and is refused: as it stands it would be sent as that very text.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

import jmespath
import jmespath.exceptions

from connector import limits, mapping, messages, schemas
from connector.errors import ConfigurationError, FieldError
from connector.flow_export import placeholders
from connector.flows import trigger_errors
from connector.functions import FUNCTION_NAMES
from connector.redaction import redact
from connector.registry import Registry
from connector.spec import ActionSpec

Schema = tuple[dict[str, Any], str]  # a (sub)schema and the file its relative $refs start from


@dataclass
class CheckReport:
    errors: list[FieldError] = field(default_factory=list)
    preview: dict[str, Any] = field(default_factory=dict)  # step id → mapped input on the sample
    tried: bool = True  # whether the mappings were tried on the sample (preview=True)

    @property
    def ok(self) -> bool:
        return not self.errors


def check_flow(
    document: Any, registry: Registry, sample: dict[str, Any] | None = None, *, preview: bool = True
) -> CheckReport:
    """Everything wrong with a flow document, each with the path of the field at fault.

    preview=False leaves out trying the mappings on the sample, and so what only that finds:
    for showing a saved flow, which must not evaluate its expressions on every read (they
    run within connector.limits, but a page or a GET is no place to spend that).
    """
    report = CheckReport(schemas.validate("flow.json", document), tried=preview)
    if report.errors:
        return report
    # A secret an export left out (connector.flow_export) is never sent as it stands.
    report.errors.extend(FieldError.of(path, "secret_left_out") for path in placeholders(document))
    # One deadline for every step's mapping: the check runs in the web process.
    deadline = limits.Deadline.after(limits.CHECK_SECONDS)
    trigger = registry.triggers.get(document["trigger"]["key"])
    if trigger is None:
        report.errors.append(
            FieldError.of("trigger.key", "unknown_trigger", trigger=document["trigger"]["key"])
        )
        return report
    report.errors.extend(trigger_errors(trigger, document["trigger"]))
    lookups = document.get("lookups") or {}
    scope: dict[str, Schema | None] = {}  # earlier steps' outputs, by step id
    data: dict[str, Any] = {
        "trigger": copy.deepcopy(sample)
        if sample is not None
        else schemas.example(trigger.output_schema),
        "steps": {},
    }
    seen: set[str] = set()
    for i, step in enumerate(document["steps"]):
        where = f"steps[{i}]"
        if step["id"] in seen:
            report.errors.append(FieldError.of(f"{where}.id", "duplicate_step", step=step["id"]))
        seen.add(step["id"])
        body, what = (step["filter"], "filter") if "filter" in step else (step["input"], "input")
        try:
            compiled = mapping.compile_mapping(body, f"{where}.{what}")
        except ConfigurationError as exc:
            report.errors.extend(exc.errors)
            continue
        report.errors.extend(_read_paths(body, f"{where}.{what}", trigger.output_schema, scope))
        if "filter" in step:
            scope[step["id"]] = (
                {"type": "object", "properties": {"passed": {"type": "boolean"}}},
                "flow.json",
            )
            data["steps"][step["id"]] = {"passed": True}
            continue
        action = registry.actions.get(step["action"])
        if action is None:
            report.errors.append(
                FieldError.of(f"{where}.action", "unknown_action", action=step["action"])
            )
            continue
        report.errors.extend(_unmapped(body, action, f"{where}.input"))
        if preview:
            report.errors.extend(
                _preview(report, compiled, data, lookups, action, step["id"], where, deadline)
            )
        scope[step["id"]] = (schemas.load_schema(action.output_schema), action.output_schema)
        data["steps"][step["id"]] = schemas.example(action.output_schema)
    return report


def enableable(document: Any, registry: Registry) -> None:
    """Raise ConfigurationError listing every problem unless the flow may be enabled."""
    report = check_flow(document, registry)
    if report.errors:
        raise ConfigurationError(
            "the flow has problems and stays disabled until they are fixed: "
            + "; ".join(map(str, report.errors[:5])),
            report.errors,
        )


def _unmapped(body: Any, action: ActionSpec, where: str) -> list[FieldError]:
    """Required inputs with no mapping at all (a whole-object expression may supply them)."""
    if not isinstance(body, dict) or mapping.EXPR in body:
        return []
    schema, _ = schemas.resolve_ref(schemas.load_schema(action.input_schema), action.input_schema)
    return [
        FieldError.of(f"{where}.{name}", "unmapped", action=action.key, field=name)
        for name in schema.get("required", [])
        if name not in body
    ]


def _preview(
    report: CheckReport,
    compiled: Any,
    data: dict[str, Any],
    lookups: dict[str, Any],
    action: ActionSpec,
    step_id: str,
    where: str,
    deadline: limits.Deadline,
) -> list[FieldError]:
    """Evaluate the mapping on the sample data; its result must satisfy the input schema."""
    try:
        inputs = mapping.evaluate(compiled, data, lookups, deadline=deadline)
    except ConfigurationError as exc:
        return [_on_sample(e, f"{where}.input", "expression") for e in exc.errors]
    report.preview[step_id] = redact(inputs, action.input_schema)
    return [
        _on_sample(e, f"{where}.input", "value")
        for e in schemas.validate(action.input_schema, inputs)
    ]


def _on_sample(error: FieldError, where: str, what: str) -> FieldError:
    """A problem found by trying the mapping on the sample data, saying so."""
    params = {**error.params, "on_sample": what}
    prefix = messages.ON_SAMPLE[what][0]
    return FieldError(
        f"{where}.{error.path}" if error.path else where,
        messages.render(error.code, params) or prefix + error.message,
        error.code,
        params,
    )


# --- paths ---------------------------------------------------------------------------------


def _read_paths(
    body: Any, where: str, trigger_schema: str, scope: dict[str, Schema | None]
) -> list[FieldError]:
    errors: list[FieldError] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict) and mapping.EXPR in node:
            _check_expression(node[mapping.EXPR], path, trigger_schema, scope, errors)
        elif isinstance(node, str):
            _check_literal(node, path, trigger_schema, scope, errors)
        elif isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")

    walk(body, where)
    return errors


ROOT = ({"x-root": True}, "")

# A path as people write one by mistake in a literal: trigger.customer.tax_id, steps.x.lines[0].
_PATH = re.compile(r"(?:trigger|steps)(?:\.[A-Za-z_][A-Za-z0-9_]*|\[(?:[0-9]+|\*)?\])+")
_TEMPLATE = re.compile(r"\{\{(.*)\}\}", re.DOTALL)  # {{trigger.deal_id}}, as Zapier writes it


def _check_literal(
    text: str,
    where: str,
    trigger_schema: str,
    scope: dict[str, Schema | None],
    errors: list[FieldError],
) -> None:
    """Refuse a literal text that is exactly a readable path: an expression missing its $expr.

    Whoever truly wants that text sent as it is can write it as a JMESPath string,
    {"$expr": "'trigger.deal_id'"}, which is not refused.
    """
    path = _path_in(text)
    if path is not None and _readable(path, trigger_schema, scope):
        errors.append(FieldError.of(where, "literal_looks_like_path", text=text, expression=path))


def _path_in(text: str) -> str | None:
    """The path `text` spells once spaces, {{ }} and a leading $. or @. are taken off."""
    inner = text.strip()
    template = _TEMPLATE.fullmatch(inner)
    if template:
        inner = template.group(1).strip()
    if inner.startswith(("$.", "@.")):
        inner = inner[2:]
    return inner if _PATH.fullmatch(inner) else None


def _readable(path: str, trigger_schema: str, scope: dict[str, Schema | None]) -> bool:
    """Whether every part of `path` (matching _PATH) exists in the schema it reads."""
    root, *parts = re.findall(r"[A-Za-z_][A-Za-z0-9_]*|\[", path)
    current: Schema | None
    if root == "steps":
        if parts[0] not in scope:
            return False
        current, parts = scope[parts[0]] or ({}, ""), parts[1:]
    else:
        current = (schemas.load_schema(trigger_schema), trigger_schema)
    for part in parts:
        schema, base = schemas.resolve_ref(*current)
        current = _items_of(schema, base) if part == "[" else _member_of(schema, base, part)
        if current is None:
            return False
    return True


def _member_of(schema: dict[str, Any], base: str, name: str) -> Schema | None:
    """The schema of field `name` of a value of `schema`; ({}, base) when any value may be
    there (an open object), None when it cannot be there."""
    properties = schema.get("properties", {})
    if name in properties:
        return schemas.resolve_ref(properties[name], base)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        return schemas.resolve_ref(extra, base)
    if "properties" in schema or extra is False or not _may_be(schema, "object"):
        return None
    return {}, base


def _items_of(schema: dict[str, Any], base: str) -> Schema | None:
    if not _may_be(schema, "array"):
        return None
    items = schema.get("items")
    return schemas.resolve_ref(items, base) if isinstance(items, dict) else ({}, base)


def _may_be(schema: dict[str, Any], kind: str) -> bool:
    declared = schema.get("type")
    return declared is None or declared == kind or (isinstance(declared, list) and kind in declared)


def _check_expression(
    source: str,
    where: str,
    trigger_schema: str,
    scope: dict[str, Schema | None],
    errors: list[FieldError],
) -> None:
    try:
        tree: dict[str, Any] = dict(jmespath.compile(source).parsed)
    except jmespath.exceptions.ParseError:
        return  # reported by compile_mapping
    _Walker(source, where, trigger_schema, scope, errors).visit(tree, ROOT)


@dataclass
class _Walker:
    """Follows an expression's AST with the schema of the value at each point."""

    source: str
    where: str
    trigger_schema: str
    scope: dict[str, Schema | None]
    errors: list[FieldError]

    def visit(self, node: dict[str, Any], current: Schema | None) -> Schema | None:
        kind = node["type"]
        children = node.get("children", [])
        if kind == "field":
            return self.field(current, node["value"])
        if kind == "subexpression":  # a.b.c may come as one node with three children
            for child in children:
                current = self.visit(child, current)
            return current
        if kind == "pipe":
            self.visit(children[1], None)  # after a pipe the shape is the left side's result
            self.visit(children[0], current)
            return None
        if kind == "index_expression":
            left = self.visit(children[0], current)
            return self.items(left)
        if kind in ("projection", "value_projection"):
            left = self.visit(children[0], current)
            self.visit(children[1], self.items(left) if kind == "projection" else None)
            return None
        if kind == "filter_projection":
            item = self.items(self.visit(children[0], current))
            self.visit(children[2], item)
            self.visit(children[1], item)
            return None
        if kind == "flatten":
            return self.items(self.visit(children[0], current))
        if kind == "function_expression":
            if node["value"] not in FUNCTION_NAMES:
                self.error(
                    "unknown_function", function=node["value"], known=", ".join(FUNCTION_NAMES)
                )
            for child in children:
                self.visit(child, current)
            return None
        if kind == "identity" or kind == "current":
            return current
        for child in children:  # comparators, and/or/not, multi-selects, key/value pairs
            self.visit(child, current)
        return None

    def field(self, current: Schema | None, name: str) -> Schema | None:
        if current is None:
            return None
        if current is ROOT:
            if name == "trigger":
                return schemas.load_schema(self.trigger_schema), self.trigger_schema
            if name == "steps":
                return ({"x-steps": True}, "")
            self.error("unknown_root", name=name)
            return None
        schema, base = schemas.resolve_ref(*current)
        if schema.get("x-steps"):
            if name not in self.scope:
                self.error("unknown_step", step=name, earlier=", ".join(self.scope))
                return None
            return self.scope[name]
        properties = schema.get("properties", {})
        if name in properties:
            return schemas.resolve_ref(properties[name], base)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            return schemas.resolve_ref(extra, base)
        if (properties and extra is False) or (
            "properties" in schema and extra is None and schema.get("type") == "object"
        ):
            self.error("unknown_field", field=name, known=", ".join(properties))
        return None

    def items(self, current: Schema | None) -> Schema | None:
        if current is None or current is ROOT:
            return None
        schema, base = schemas.resolve_ref(*current)
        items = schema.get("items")
        return schemas.resolve_ref(items, base) if isinstance(items, dict) else None

    def error(self, code: str, **params: str) -> None:
        self.errors.append(FieldError.of(self.where, code, expression=self.source, **params))
