"""Mask secrets before anything is written to the run log."""

from __future__ import annotations

import re
from typing import Any

from connector.schemas import load_schema, resolve_ref

MASK = "••••••"
# Whole words of a field name ("client_secret", "access-token"), not "passport_number".
SENSITIVE_NAME = re.compile(
    r"(?:^|[_-])(?:pass(?:word)?|passwd|secrets?|tokens?|api[_-]?keys?|apikeys?|authorization"
    r"|credentials?|cookies?)(?:$|[_-])",
    re.I,
)


def redact(value: Any, schema_name: str | None = None) -> Any:
    """Copy `value`, masking fields the schema marks writeOnly and fields named like secrets."""
    schema = load_schema(schema_name) if schema_name else {}
    return _redact(value, schema, schema_name or "")


def _redact(value: Any, schema: dict[str, Any], base: str) -> Any:
    schema, base = resolve_ref(schema, base)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        out = {}
        for key, item in value.items():
            sub, sub_base = resolve_ref(props.get(key, {}), base)
            if sub.get("writeOnly") or SENSITIVE_NAME.search(str(key)):
                out[key] = MASK if item not in (None, "") else item
            else:
                out[key] = _redact(item, sub, sub_base)
        return out
    if isinstance(value, list):
        return [_redact(v, schema.get("items", {}), base) for v in value]
    return value
