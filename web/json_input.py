"""JSON from outside (webhook bodies, API requests), read strictly: what passes can be stored.

Python's json module reads NaN, Infinity and 1e400 (a float overflowing to infinity), unpaired
surrogate escapes and NUL characters, and nesting as deep as its recursion allows. None of it
is a deal, and the databases refuse to store some of it: a delivery carrying it would get a
500 on every retry. It is refused here with the reason and where it is.
"""

from __future__ import annotations

import json
import sys
from typing import Any

MAX_DEPTH = 32  # a deal is a few levels deep
# Python's own limit: over it int() fails with advice about sys.set_int_max_str_digits, which
# tells the sender nothing. Shorter integers are read; the schemas judge them (money: 12 digits).
MAX_INTEGER_DIGITS = sys.int_info.default_max_str_digits


class BadJson(ValueError):
    """The body is not JSON that can be kept; the message says what and where."""


def parse(body: bytes | str) -> Any:
    try:
        value = json.loads(
            body, parse_constant=_reject_constant, parse_float=_finite, parse_int=_integer
        )
    except RecursionError:
        raise BadJson(f"the body is nested more than {MAX_DEPTH} levels deep") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadJson(f"the body is not valid JSON: {exc}") from None
    problem = _unstorable(value)
    if problem:
        raise BadJson(f"the body cannot be kept: {problem}")
    return value


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a valid JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text[:40]} is too large")
    return value


def _integer(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INTEGER_DIGITS:
        raise ValueError(
            f"the number {text[:20]}… has {digits} digits; at most {MAX_INTEGER_DIGITS} are read"
        )
    return int(text)


def _unstorable(value: Any) -> str | None:
    """What no database column can keep (the reason, with its path); None when all is well."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"it is nested more than {MAX_DEPTH} levels deep (at {path})"
        if isinstance(item, dict):
            for key, inner in item.items():
                problem = _bad_text(key)
                if problem:
                    return f"a field name at {path or 'the top'} {problem}"
                stack.append((inner, f"{path}.{key}" if path else key, depth + 1))
        elif isinstance(item, list):
            stack.extend((inner, f"{path}[{i}]", depth + 1) for i, inner in enumerate(item))
        elif isinstance(item, str):
            problem = _bad_text(item)
            if problem:
                return f"the text at {path or 'the top'} {problem}"
    return None


def _bad_text(text: str) -> str | None:
    if "\x00" in text:
        return "has a NUL character (\\u0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "has an unpaired surrogate (a lone \\ud800-\\udfff escape): send UTF-8 text"
    return None
