"""What each field error says, by its code, in English and in Spanish.

English is the engine's language (API answers, run logs, server logs); the web UI shows the
Spanish text when it speaks Spanish. An error keeps its code and the parameters its text is
made from, so either text can be made again from the stored error. One place per message,
both languages side by side: a message changed in one language is seen next to the other.
"""

from __future__ import annotations

import json
from typing import Any

LANGUAGES = ("en", "es")

# code → (English, Spanish); str.format fields come from the error's params and from _words.
TEXTS: dict[str, tuple[str, str]] = {
    # The flow document (connector.checks, connector.flows)
    "unknown_trigger": ("unknown trigger {trigger!r}", "disparador desconocido {trigger!r}"),
    "duplicate_step": ("step id {step!r} is used twice", "el id de paso {step!r} está repetido"),
    "unknown_action": ("unknown action {action!r}", "acción desconocida {action!r}"),
    "unmapped": (
        "{action} needs {field!r} but the step does not map it",
        "{action} necesita {field!r}, pero el paso no lo asigna",
    ),
    # What an expression reads (connector.checks)
    "unknown_function": (
        "expression {expression!r} calls an unknown function {function}(); known: {known}",
        "la expresión {expression!r} llama a una función desconocida, {function}(); "
        "las que hay: {known}",
    ),
    "unknown_root": (
        "expression {expression!r} reads {name!r}, which is neither 'trigger' nor 'steps'",
        "la expresión {expression!r} lee {name!r}, que no es ni 'trigger' ni 'steps'",
    ),
    "unknown_step": (
        "expression {expression!r} reads steps.{step}, which is not an earlier step "
        "(earlier: {earlier_words})",
        "la expresión {expression!r} lee steps.{step}, que no es un paso anterior "
        "(anteriores: {earlier_words})",
    ),
    "unknown_field": (
        "expression {expression!r} reads {field!r}, which does not exist there (fields: {known})",
        "la expresión {expression!r} lee {field!r}, que no existe ahí (campos: {known})",
    ),
    # A literal that should have been an expression (connector.checks)
    "literal_looks_like_path": (
        "the text {text!r} looks like a field reference, but it is plain text, so it would be "
        "sent as it is instead of the field's value; to use the field's value, pick it with "
        '"Take from a field" (in JSON, write it as an expression: {{"$expr": "{expression}"}})',
        "el texto {text!r} parece una referencia a un campo, pero está escrito como texto "
        "normal y se enviaría tal cual, no el valor del campo; para usar el valor del campo, "
        "elígelo con «Tomar de un campo» (en JSON, escríbelo como expresión: "
        '{{"$expr": "{expression}"}})',
    ),
    # A secret a flow export left out (connector.flow_export)
    "secret_left_out": (
        "this value was left out when the flow was exported (it is a secret): fill it in, or "
        "better keep the credential in a connection and name it in the step",
        "este valor se omitió al exportar el flujo (es un secreto): rellénalo o, mejor, "
        "guarda la credencial en una conexión e indícala en el paso",
    ),
    # Writing and evaluating expressions (connector.mapping)
    "expression_shape": (
        'write an expression as {{"$expr": "<JMESPath>"}} with nothing else',
        'escribe la expresión como {{"$expr": "<JMESPath>"}}, sin nada más',
    ),
    "expression_syntax": (
        "expression {expression!r} has a syntax error at position {position}: {reason_words}",
        "la expresión {expression!r} tiene un error de sintaxis en la posición {position}: "
        "{reason_words}",
    ),
    "expression_runtime": (
        "expression {expression!r} failed: {detail}",
        "la expresión {expression!r} ha fallado: {detail}",
    ),
    # What an expression may cost (connector.limits)
    "expression_too_long": (
        "expression {expression!r} is {length} characters long, more than the {limit} "
        "characters allowed",
        "la expresión {expression!r} tiene {length} caracteres, y como mucho se admiten "
        "{limit} caracteres",
    ),
    "expression_too_deep": (
        "expression {expression!r} nests more than {limit} levels deep; split it into simpler "
        "fields or steps",
        "la expresión {expression!r} anida más de {limit} niveles; divídela en campos o pasos "
        "más sencillos",
    ),
    "expression_too_big": (
        "expression {expression!r} makes a value too big: more than {limit} {unit_words}",
        "la expresión {expression!r} genera un valor demasiado grande: más de {limit} {unit_words}",
    ),
    "expression_too_slow": (
        "expression {expression!r} takes too long: it was stopped after {seconds} s",
        "la expresión {expression!r} tarda demasiado: se ha parado a los {seconds} s",
    ),
    "expression_out_of_range": (
        "expression {expression!r}: {function}() needs {argument_words} from {low} to {high}, "
        "not {got}",
        "la expresión {expression!r}: {function}() necesita {argument_words} de {low} a {high}, "
        "no {got}",
    ),
    # Data against a JSON Schema (connector.schemas): the codes are the schema keywords.
    "required": ("is required but missing", "es obligatorio y falta"),
    "unknown_fields": (
        "has fields that are not allowed: {names} (check their spelling)",
        "tiene campos que no se admiten: {names} (revisa cómo están escritos)",
    ),
    "type": (
        "must be {expected_words}, got {got_words}",
        "debe ser {expected_words}, y es {got_words}",
    ),
    "enum": ("must be one of: {choices}", "debe ser uno de estos: {choices}"),
    "const": ("must be {shown}", "debe ser {shown}"),
    "not_empty": ("must not be empty", "no puede estar vacío"),
    "minLength": (
        "must have at least {expected} characters",
        "debe tener al menos {expected} caracteres",
    ),
    "maxLength": (
        "must have at most {expected} characters",
        "debe tener como mucho {expected} caracteres",
    ),
    "minimum": ("must be at least {expected}", "debe ser como mínimo {expected}"),
    "maximum": ("must be at most {expected}", "debe ser como máximo {expected}"),
    "minItems": ("must have at least {expected} items", "debe tener al menos {expected} elementos"),
    "maxItems": (
        "must have at most {expected} items",
        "debe tener como mucho {expected} elementos",
    ),
    "pattern": ("has an invalid format ({got_words})", "tiene un formato no válido ({got_words})"),
    "format": (
        "is not a valid {expected} ({got_words})",
        "no es {format_words} ({got_words})",
    ),
}

# A check of the mapping on the trigger's sample data says so first.
ON_SAMPLE = {
    "value": ("on the sample data this ", "con los datos de ejemplo, el valor "),
    "expression": ("on the sample data: ", "con los datos de ejemplo: "),
}

_WORDS: dict[str, tuple[str, str]] = {
    "string": ("text", "texto"),
    "number": ("a number", "un número"),
    "integer": ("a whole number", "un número entero"),
    "object": ("an object", "un objeto"),
    "array": ("a list", "una lista"),
    "boolean": ("true or false", "true o false"),
    "null": ("empty (null)", "vacío (null)"),
    "or": (" or ", " o "),
    "got_null": ("nothing (null)", "nada (null)"),
    "got_object": ("an object", "un objeto"),
    "got_array": ("a list", "una lista"),
    "got_other": ("a {got}, which is not a JSON value", "un {got}, que no es un valor JSON"),
    "none": ("none", "ninguno"),
    "incomplete": (
        "it ends too early (is a bracket or quote left open?)",
        "termina antes de tiempo (¿queda abierto un corchete o unas comillas?)",
    ),
    "lexer": ("{token!r} is not allowed there", "{token!r} no se admite ahí"),
    "unexpected": ("unexpected {token!r}", "{token!r} no se esperaba ahí"),
    "unit_characters": ("characters as JSON", "caracteres en JSON"),
    "unit_total": (
        "characters as JSON, all the step's fields together",
        "caracteres en JSON, sumando todos los campos del paso",
    ),
    "unit_digits": ("digits", "cifras"),
    "argument_days": ("a number of days", "un número de días"),
    "argument_places": ("a number of decimal places", "un número de decimales"),
    "argument_count": ("a number of characters", "un número de caracteres"),
}


# What a value of each format is called in Spanish (the English text names the format).
_FORMATS_ES = {
    "email": "un correo electrónico válido",
    "date": "una fecha válida (AAAA-MM-DD)",
    "date-time": "una fecha y hora válidas (ISO 8601)",
    "uri": "una URL válida",
}


def render(code: str, params: dict[str, Any], lang: str = "en") -> str | None:
    """The error's text in `lang`; None when the code has no text here (or lacks a param)."""
    i = LANGUAGES.index(lang) if lang in LANGUAGES else 0
    prefix = ""
    if params.get("on_sample") in ON_SAMPLE:
        prefix = ON_SAMPLE[params["on_sample"]][i]
    if code == "choice":  # a schema's own explanation of its alternatives (x-message)
        text = params.get("explained", {}).get(lang) or params.get("explained", {}).get("en")
        return prefix + text if isinstance(text, str) else None
    key = "not_empty" if code in ("minLength", "minItems") and params.get("expected") == 1 else code
    template = TEXTS.get(key)
    if template is None:
        return None
    try:
        return prefix + template[i].format(**params, **_words(code, params, i))
    except (KeyError, IndexError, ValueError, TypeError):
        return None


def _words(code: str, params: dict[str, Any], i: int) -> dict[str, str]:
    """The language's words for what a parameter says (types, a value's kind, a reason)."""
    if code == "type":
        expected = params.get("expected")
        types = expected if isinstance(expected, list) else [expected]
        names = [_WORDS[str(t)][i] if str(t) in _WORDS else str(t) for t in types]
        return {"expected_words": _WORDS["or"][i].join(names), "got_words": _got(params, i)}
    if code == "unknown_fields":
        return {"names": ", ".join(params["fields"])}
    if code == "enum":  # [21, "21"] reads as "21"
        return {"choices": ", ".join(dict.fromkeys(map(_show, params["expected"])))}
    if code == "const":
        return {"shown": _show(params["expected"])}
    if code == "format":
        name = params.get("expected")
        words = _FORMATS_ES.get(str(name), f"un valor válido con formato {name}")
        return {"got_words": _got(params, i), "format_words": words}
    if code == "pattern":
        return {"got_words": _got(params, i)}
    if code == "unknown_step":
        return {"earlier_words": params.get("earlier") or _WORDS["none"][i]}
    if code == "expression_too_big":
        return {"unit_words": _WORDS[f"unit_{params['unit']}"][i]}
    if code == "expression_out_of_range":
        return {"argument_words": _WORDS[f"argument_{params['argument']}"][i]}
    if code == "expression_syntax":
        reason = _WORDS[params["reason"]][i].format(token=params.get("token"))
        return {"reason_words": reason}
    return {}


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _got(params: dict[str, Any], i: int) -> str:
    kind = params.get("got_kind")
    if kind in ("null", "object", "array", "other"):
        return _WORDS[f"got_{kind}"][i].format(got=params.get("got"))
    return str(params.get("got"))


def localized(error: dict[str, Any], lang: str) -> str:
    """A stored error ({path, message, code, params}) in `lang`; its message when the code has
    no text here (errors of the invoicing core, stored before codes had params)."""
    return render(str(error.get("code")), error.get("params") or {}, lang) or str(
        error.get("message", "")
    )
