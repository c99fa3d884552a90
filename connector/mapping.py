"""Mappings: a literal is a literal; {"$expr": "<JMESPath>"} is compiled once, evaluated per run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jmespath
import jmespath.exceptions
from jmespath.parser import ParsedResult

from connector import limits
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
    # Length and nesting are bounded here, once, so that evaluating stays cheap on every run
    # (connector.limits); the brackets are counted before parsing, which recurses into them.
    where = format_path(path)
    if len(source) > limits.MAX_LENGTH:
        errors.append(
            FieldError.of(
                where,
                "expression_too_long",
                expression=limits.clip(source, 80),
                length=len(source),
                limit=limits.MAX_LENGTH,
            )
        )
        return None
    if limits.written_depth(source) > limits.MAX_DEPTH:
        errors.append(_too_deep(where, source))
        return None
    try:
        compiled = jmespath.compile(source)
    except RecursionError:  # !!!!…, which nests with no bracket
        errors.append(_too_deep(where, source))
        return None
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
    if limits.depth(source) > limits.MAX_DEPTH:
        errors.append(_too_deep(where, source))
        return None
    return Expr(source, compiled)


def _too_deep(where: str, source: str) -> FieldError:
    return FieldError.of(where, "expression_too_deep", expression=source, limit=limits.MAX_DEPTH)


def evaluate(
    compiled: Compiled,
    data: dict[str, Any],
    lookups: dict[str, dict[str, Any]] | None = None,
    *,
    deadline: limits.Deadline | None = None,
) -> Any:
    """Evaluate a compiled mapping against `data` ({"trigger": ..., "steps": {...}}).

    Expressions may use our business functions (connector.functions), `lookups` included.
    Each is held to connector.limits (size, nesting) and all of them to `deadline` (by
    default limits.SECONDS from now); one that passes a bound is an error of its field.
    """
    errors: list[FieldError] = []
    options = jmespath.Options(custom_functions=BusinessFunctions(lookups))
    interpreter = limits.BoundedInterpreter(
        options, deadline or limits.Deadline.after(limits.SECONDS)
    )
    result = _evaluate(compiled, data, [], errors, interpreter)
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
    interpreter: limits.BoundedInterpreter,
) -> Any:
    if isinstance(node, Expr):
        if interpreter.exhausted:  # out of time, or of room: one error says so, not each field
            return None
        try:
            result = interpreter.visit(node.compiled.parsed, data)
            interpreter.result(result)
            return result
        except limits.LimitError as exc:
            error = FieldError.of(format_path(path), exc.code, expression=node.source, **exc.params)
        except RecursionError:
            error = _too_deep(format_path(path), node.source)
        except jmespath.exceptions.JMESPathError as exc:
            error = FieldError.of(
                format_path(path),
                "expression_runtime",
                expression=node.source,
                detail=limits.clip(str(exc)),
            )
        errors.append(error)
        return None
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            result = _evaluate(value, data, [*path, key], errors, interpreter)
            # A missing source value leaves the field out, so the schema reports it as
            # "required" (or applies its default) instead of seeing an explicit null.
            if not (isinstance(value, Expr) and result is None):
                out[key] = result
        return out
    if isinstance(node, list):
        return [_evaluate(v, data, [*path, i], errors, interpreter) for i, v in enumerate(node)]
    return node
