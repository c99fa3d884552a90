"""Flow exports carry no secret: a literal value a step sets under a secret's name is left out.

An export travels (a file, a ticket, another installation), so an "Authorization: Bearer abc"
header or an "?api_key=…" typed into a step must not travel with it. Each such value, in a
step's input or the trigger's config, becomes a placeholder {"$secret": "<what it looked
like>"}: "Bearer …", the URL with the key's value elided. A secret is what connector.redaction
calls one: a key, header or query parameter named like a secret. Expressions that read the
data stay; a constant one ("'abc'") is a literal written as an expression, and is left out too.

A placeholder is never sent as if it were the secret: an import refuses a document that still
holds one, naming each (web.api.flows), and a flow saved with one has a problem at that field
(connector.checks), so it stays disabled. Credentials belong in a connection, which never
leaves the installation.
"""

from __future__ import annotations

import copy
from typing import Any

import jmespath
import jmespath.exceptions

from connector.mapping import EXPR
from connector.redaction import mask_query, sensitive
from connector.schemas import format_path

SECRET = "$secret"
ELIDED = "…"
_READS_DATA = frozenset({"field", "current", "identity"})  # AST nodes that read the data


def leave_out_secrets(document: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A copy of the flow document without literal secrets, and the paths of the placeholders
    it holds (those it already had included): "steps[2].input.headers.Authorization"."""
    out = copy.deepcopy(document)
    trigger = out.get("trigger")
    if isinstance(trigger, dict) and "config" in trigger:
        trigger["config"] = _leave_out(trigger["config"], ["trigger", "config"], False)
    steps = out.get("steps")
    for i, step in enumerate(steps if isinstance(steps, list) else []):
        if isinstance(step, dict) and "input" in step:
            step["input"] = _leave_out(step["input"], ["steps", i, "input"], False)
    return out, placeholders(out)


def placeholders(document: Any, path: list[Any] | None = None) -> list[str]:
    """The paths of the {"$secret": …} placeholders in a document, in order."""
    path = path or []
    if isinstance(document, dict):
        if SECRET in document:
            return [format_path(path)]
        return [p for key, value in document.items() for p in placeholders(value, [*path, key])]
    if isinstance(document, list):
        return [p for i, value in enumerate(document) for p in placeholders(value, [*path, i])]
    return []


def _leave_out(node: Any, path: list[Any], named_secret: bool) -> Any:
    if isinstance(node, dict):
        if SECRET in node:
            return node
        if EXPR in node:
            constant = named_secret and _constant(node[EXPR])
            return {SECRET: ELIDED} if constant else node
        # Under a secret's name, every literal is part of it ("auth": {"user", "password"}).
        return {
            key: _leave_out(value, [*path, key], named_secret or sensitive(str(key)))
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_leave_out(value, [*path, i], named_secret) for i, value in enumerate(node)]
    if isinstance(node, str):
        if named_secret and node:
            return {SECRET: _hint(node)}
        elided = mask_query(node, ELIDED)
        return {SECRET: elided} if elided != node else node
    if named_secret and isinstance(node, int | float) and not isinstance(node, bool):
        return {SECRET: ELIDED}
    return node


def _hint(value: str) -> str:
    """What the value looked like, without the secret: "Bearer …" for "Bearer abc"."""
    scheme, _, rest = value.partition(" ")
    return f"{scheme} {ELIDED}" if rest.strip() and scheme.isalpha() else ELIDED


def _constant(source: Any) -> bool:
    """Whether an expression reads nothing of the data: a literal written as an expression."""
    if not isinstance(source, str):
        return False
    try:
        tree = jmespath.compile(source).parsed
    except jmespath.exceptions.JMESPathError:
        return False  # not an expression at all: the flow's check says so
    return not _reads_data(tree)


def _reads_data(node: Any) -> bool:
    if isinstance(node, dict):
        return node.get("type") in _READS_DATA or any(
            _reads_data(child) for child in node.get("children", [])
        )
    if isinstance(node, list):
        return any(_reads_data(child) for child in node)
    return False
