"""Mappings: a literal is a literal; {"$expr": "<JMESPath>"} is compiled once, evaluated per run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jmespath
import jmespath.exceptions
from jmespath.parser import ParsedResult

from connector.errors import ConfigurationError, FieldError
from connector.functions import BusinessFunctions
from connector.schemas import format_path

EXPR = "$expr"


@dataclass(frozen=True)
class Expr:
    source: str
    compiled: ParsedResult


# A compiled mapping has the shape of the mapping, with Expr where expressions were.
Compiled = Any


def compile_mapping(mapping: Any, where: str = "") -> Compiled:
    """Compile every expression; raise ConfigurationError listing each bad one with its position."""
    errors: list[FieldError] = []
    compiled = _compile(mapping, [], errors)
    if errors:
        prefix = f"{where}: " if where else ""
        raise ConfigurationError(
            prefix + "; ".join(str(e) for e in errors),
            [FieldError(_join(where, e.path), e.message, e.code, e.params) for e in errors],
        )
    return compiled


def _join(where: str, path: str) -> str:
    if not where or not path:
        return where or path
    return f"{where}{path}" if path.startswith("[") else f"{where}.{path}"


def _compile(node: Any, path: list[Any], errors: list[FieldError]) -> Compiled:
    if isinstance(node, dict):
        if EXPR in node:
            if len(node) != 1 or not isinstance(node[EXPR], str) or not node[EXPR].strip():
                errors.append(FieldError.of(format_path(path), "expression_shape"))
                return None
            return _compile_expr(node[EXPR], path, errors)
        return {k: _compile(v, [*path, k], errors) for k, v in node.items()}
    if isinstance(node, list):
        return [_compile(v, [*path, i], errors) for i, v in enumerate(node)]
    return node


def _compile_expr(source: str, path: list[Any], errors: list[FieldError]) -> Expr | None:
    try:
        return Expr(source, jmespath.compile(source))
    except jmespath.exceptions.ParseError as exc:
        if isinstance(exc, jmespath.exceptions.IncompleteExpressionError):
            reason = "incomplete"
        elif isinstance(exc, jmespath.exceptions.LexerError):
            reason = "lexer"
        else:
            reason = "unexpected"
        errors.append(
            FieldError.of(
                format_path(path),
                "expression_syntax",
                position=exc.lex_position,
                expression=source,
                reason=reason,
                token=exc.token_value,
            )
        )
        return None


def evaluate(
    compiled: Compiled, data: dict[str, Any], lookups: dict[str, dict[str, Any]] | None = None
) -> Any:
    """Evaluate a compiled mapping against `data` ({"trigger": ..., "steps": {...}}).

    Expressions may use our business functions (connector.functions), `lookups` included.
    """
    errors: list[FieldError] = []
    options = jmespath.Options(custom_functions=BusinessFunctions(lookups))
    result = _evaluate(compiled, data, [], errors, options)
    if errors:
        raise ConfigurationError("; ".join(str(e) for e in errors), errors)
    return result


def truthy(value: Any) -> bool:
    """Whether JMESPath counts `value` as true: all but false, null, "", [] and {}.

    Python's own test differs: 0, 0.0 and Decimal(0) are false there (and `0 in (False,)`
    holds, since 0 == False), yet an amount of 0 is a true JMESPath value.
    """
    if value is None or value is False:
        return False
    if isinstance(value, str | list | tuple | dict):
        return len(value) > 0
    return True


def _evaluate(
    node: Compiled,
    data: dict[str, Any],
    path: list[Any],
    errors: list[FieldError],
    options: jmespath.Options,
) -> Any:
    if isinstance(node, Expr):
        try:
            return node.compiled.search(data, options=options)
        except jmespath.exceptions.JMESPathError as exc:
            errors.append(
                FieldError.of(
                    format_path(path), "expression_runtime", expression=node.source, detail=str(exc)
                )
            )
            return None
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            result = _evaluate(value, data, [*path, key], errors, options)
            # A missing source value leaves the field out, so the schema reports it as
            # "required" (or applies its default) instead of seeing an explicit null.
            if not (isinstance(value, Expr) and result is None):
                out[key] = result
        return out
    if isinstance(node, list):
        return [_evaluate(v, data, [*path, i], errors, options) for i, v in enumerate(node)]
    return node
