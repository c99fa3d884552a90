"""Load the JSON Schema files under schemas/ and validate data with plain-word errors."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from functools import cache, partial
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema_rs
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

from connector import messages
from connector.errors import FieldError

SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"
BASE_URI = "https://schemas.puente.app/"
# CR and LF (which could add headers to a mail), NUL and the other C0 and C1 control characters.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _email(value: object) -> bool:
    """jsonschema's "email" (an @ somewhere) without control characters: an address that
    carries a line break is refused wherever data comes in, not trimmed by whoever sends."""
    return not isinstance(value, str) or ("@" in value and not CONTROL_CHARACTERS.search(value))


# Draft 2020-12's format checks, "email" made stricter; both validators below use these.
FORMATS = FormatChecker(formats=())
FORMATS.checkers = {**Draft202012Validator.FORMAT_CHECKER.checkers}
FORMATS.checks("email")(_email)


@cache
def _registry() -> Registry[Any]:
    resources = []
    for path in sorted(SCHEMAS_DIR.rglob("*.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        uri = BASE_URI + path.relative_to(SCHEMAS_DIR).as_posix()
        if contents.get("$id") != uri:
            raise RuntimeError(f"{path}: $id must be {uri!r}, found {contents.get('$id')!r}")
        resources.append((uri, Resource.from_contents(contents)))
    return Registry().with_resources(resources)


def load_schema(name: str) -> dict[str, Any]:
    """Return the schema stored at schemas/<name> (e.g. 'triggers/deal_won.json')."""
    contents: dict[str, Any] = _registry().contents(BASE_URI + name)
    return contents


@cache
def validator(name: str) -> Draft202012Validator:
    """Return a reusable validator for schemas/<name>, with format checks on."""
    return Draft202012Validator(
        load_schema(name),
        registry=_registry(),
        format_checker=FORMATS,
    )


def example(name: str) -> Any:
    """A fresh copy of the first example of schemas/<name> ({} when it has none)."""
    return copy.deepcopy((load_schema(name).get("examples") or [{}])[0])


def resolve_ref(schema: Any, base: str) -> tuple[dict[str, Any], str]:
    """Follow a relative $ref (as used under schemas/) to its file; return it and its name.

    Sibling keywords of the $ref win over the referenced file's (titles, defaults).
    """
    if not isinstance(schema, dict):
        return {}, base
    ref = schema.get("$ref")
    if not ref or ref.startswith("#"):
        return schema, base
    parts = base.split("/")[:-1]
    for piece in ref.split("/"):
        if piece == "..":
            parts = parts[:-1]
        elif piece != ".":
            parts.append(piece)
    name = "/".join(parts)
    merged = {**load_schema(name), **{k: v for k, v in schema.items() if k != "$ref"}}
    return resolve_ref(merged, name) if "$ref" in merged else (merged, name)


DATA_KEYWORDS = frozenset({"examples", "default", "const", "enum"})  # values, not schemas


def inline(name: str) -> dict[str, Any]:
    """schemas/<name> with every relative $ref replaced by what it names: one self-contained
    schema, as a form generator reads it (schemas here are not recursive)."""

    def walk(node: Any, base: str, depth: int) -> Any:
        if depth > 20:
            raise RuntimeError(f"{name}: $refs nested too deep (a recursive schema?)")
        if isinstance(node, list):
            return [walk(item, base, depth) for item in node]
        if not isinstance(node, dict):
            return node
        if isinstance(node.get("$ref"), str) and not node["$ref"].startswith("#"):
            node, base = resolve_ref(node, base)
            depth += 1
        return {
            key: value if key in DATA_KEYWORDS else walk(value, base, depth)
            for key, value in node.items()
            if key not in ("$id", "$schema")
        }

    inlined: dict[str, Any] = walk(load_schema(name), name, 0)
    return inlined


def all_schema_names() -> list[str]:
    return sorted(p.relative_to(SCHEMAS_DIR).as_posix() for p in SCHEMAS_DIR.rglob("*.json"))


@cache
def fast_validator(name: str) -> jsonschema_rs.Validator:
    """A compiled (Rust) validator for schemas/<name>: a yes/no answer in microseconds.

    It checks formats with the very functions `validator()` uses, so the two agree on them;
    `validate()` asks it first and lets `validator()` explain what it refuses.
    """
    return jsonschema_rs.Draft202012Validator(
        load_schema(name),
        registry=_fast_registry(),
        formats=_formats(),
        validate_formats=True,
        offline=True,
    )


@cache
def _fast_registry() -> jsonschema_rs.Registry:
    return jsonschema_rs.Registry([(BASE_URI + n, load_schema(n)) for n in all_schema_names()])


@cache
def _formats() -> dict[str, Callable[[Any], bool]]:
    """Every format our schemas name, checked as jsonschema checks it: with its own function,
    or not at all when it has none (an annotation, like "uri" without rfc3987 installed)."""
    named = {f for n in all_schema_names() for f in _formats_in(load_schema(n))}
    return {
        f: partial(FORMATS.conforms, format=f) if f in FORMATS.checkers else _anything
        for f in named | set(FORMATS.checkers)
    }


def _formats_in(schema: Any) -> set[str]:
    if isinstance(schema, list):
        return {f for item in schema for f in _formats_in(item)}
    if not isinstance(schema, dict):
        return set()
    found = {schema["format"]} if isinstance(schema.get("format"), str) else set()
    return found | {f for key, v in schema.items() if key != "examples" for f in _formats_in(v)}


def _anything(_value: Any) -> bool:
    return True


def validate(name: str, instance: Any) -> list[FieldError]:
    """Validate against schemas/<name>; return every problem, ordered by path.

    The compiled validator decides; jsonschema explains. Where they disagree, the compiled
    one wins with its own words: Python's `re.search` lets "$" match before a final newline,
    so jsonschema finds nothing wrong with "EUR\\n" for "^[A-Z]{3}$" (ECMA-262 does).
    """
    try:
        if fast_validator(name).is_valid(instance):
            return []
        decided = True
    except Exception:  # a value it cannot read (not JSON): jsonschema decides
        decided = False
    errors = [_field_error(e) for e in validator(name).iter_errors(instance)]
    if not errors and decided:
        errors = [_fast_error(e) for e in fast_validator(name).iter_errors(instance)]
    return sorted(errors, key=lambda e: e.path)


def _fast_error(error: Any) -> FieldError:
    """A problem only the compiled validator sees, in our words where we have them."""
    kind = str(error.schema_path[-1]) if error.schema_path else "invalid"
    params = _described(error.instance)
    message = messages.render(kind, params) or error.message
    return FieldError(format_path(error.instance_path), message, kind, params)


def format_path(parts: Any) -> str:
    """Render a path like ('lines', 0, 'quantity') as 'lines[0].quantity'."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _best(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    # For anyOf/oneOf, report the branch that got furthest rather than "not valid under any".
    if error.context:
        return jsonschema.exceptions.best_match(error.context) or error
    return error


def _field_error(error: jsonschema.ValidationError) -> FieldError:
    # A schema may explain its own alternatives better than any one failed branch can.
    if error.validator in ("anyOf", "oneOf") and "x-message" in error.schema:
        explained = {"en": error.schema["x-message"], "es": error.schema.get("x-message-es")}
        return FieldError.of(format_path(error.absolute_path), "choice", explained=explained)
    error = _best(error)
    path = list(error.absolute_path)
    kind = str(error.validator)
    value = error.validator_value
    instance = error.instance
    if kind == "required":
        # One error per missing property; its name is only in the message ("'x' is a ...").
        missing = error.message.partition(" is a required property")[0].strip("'\"")
        return FieldError.of(format_path([*path, missing]), "required")
    if kind == "additionalProperties":
        extra = sorted(set(instance) - set(error.schema.get("properties", {})))
        return FieldError.of(format_path(path), "unknown_fields", fields=extra)
    params = {"expected": _jsonable(value), **_described(instance)}
    message = messages.render(kind, params)
    if message is None:  # a keyword without a text of ours: jsonschema's words
        return FieldError(format_path(path), error.message, kind, {"expected": _jsonable(value)})
    return FieldError(format_path(path), message, kind, params)


def _described(instance: Any) -> dict[str, Any]:
    """What the value was, for the message: its kind, and the value itself when short."""
    if instance is None:
        return {"got_kind": "null"}
    if isinstance(instance, dict):
        return {"got_kind": "object"}
    if isinstance(instance, list):
        return {"got_kind": "array"}
    if isinstance(instance, bool):
        return {"got_kind": "value", "got": str(instance).lower()}
    try:
        text = json.dumps(instance, ensure_ascii=False)
    except (TypeError, ValueError):  # a mapping can hand over what JSON has no type for
        return {"got_kind": "other", "got": type(instance).__name__}
    return {"got_kind": "value", "got": text if len(text) <= 40 else text[:37] + "…"}


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except TypeError:
        return str(value)
    return value
