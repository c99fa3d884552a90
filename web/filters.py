"""Template filters: numbers, money, dates and Madrid times as the page's language writes them
(Babel's CLDR data), and the core's messages in that language."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal
from flask import Flask

from connector import messages
from connector.errors import FieldError
from web.i18n import LOCALES, language, translate

MADRID = ZoneInfo("Europe/Madrid")


def init_app(app: Flask) -> None:
    for name, function in FILTERS.items():
        app.add_template_filter(function, name)


def _locale() -> str:
    return LOCALES[language()]


def local_time(value: datetime | None) -> str:
    """A moment as the page's language writes it, in Madrid's time, where the users are."""
    return format_datetime(value, "medium", tzinfo=MADRID, locale=_locale()) if value else "—"


def day(value: date | None) -> str:
    return format_date(value, "medium", locale=_locale()) if value else "—"


def money(value: Decimal | None, currency: str = "EUR") -> str:
    return "—" if value is None else format_currency(value, currency, locale=_locale())


def number(value: Decimal | None) -> str:
    """A quantity or rate with every digit it has (two decimals stay two: 1,50)."""
    if value is None:
        return ""
    cents = value.as_tuple().exponent == -2
    pattern = "#,##0.00" if cents else "#,##0.###"
    exact = value if cents else value.normalize()
    return format_decimal(exact, pattern, locale=_locale(), decimal_quantization=False)


def price(value: Decimal) -> str:
    """A unit price with at least two decimals, and more only when it has them."""
    return format_decimal(
        value.normalize(), "#,##0.00", locale=_locale(), decimal_quantization=False
    )


def pretty_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


def field_message(error: FieldError | dict[str, Any]) -> str:
    """A field error (or one stored in a run's log) in the page's language."""
    lang = language()
    return error.text(lang) if isinstance(error, FieldError) else messages.localized(error, lang)


def error_message(error: dict[str, Any] | None) -> str:
    """A run's stored error ({class, message, errors}) in the page's language: in Spanish, its
    field errors' Spanish when each has one (as connector.connections.spanish says an error at
    hand), else its message; in English, its message."""
    if not error:
        return ""
    message = str(error.get("message", ""))
    errors = error.get("errors") or []
    if language() == "en" or not errors:
        return message
    shown = []
    for e in errors[:5]:
        text = messages.render(str(e.get("code")), e.get("params") or {}, "es")
        if text is None:  # a text kept in English only (the invoicing core's, say)
            return message
        shown.append(f"{e['path']}: {text}" if e.get("path") else text)
    return "; ".join(shown)


def said(text: object) -> str:
    """A message of the invoicing core in the page's language, when it carries one."""
    if language() == "es" and isinstance(getattr(text, "es", None), str):
        return str(text.es)  # type: ignore[attr-defined]
    return str(text)


def field_label(path: str) -> str | None:
    """A core field path as people read it ("lines.0.quantity" → "Línea 1 · Cantidad"); None
    when a part has no words in the catalogs: the message is then shown on its own, never a
    program's key."""
    parts, segments = [], path.split(".")
    for i, segment in enumerate(segments):
        if segment.isdigit():
            parts.append(translate("field_line").format(n=int(segment) + 1))
        elif not (segment == "lines" and i + 1 < len(segments) and segments[i + 1].isdigit()):
            label = translate(f"field_{segment}")
            if label == f"field_{segment}":
                return None
            parts.append(label)
    return " · ".join(parts) or None


def refusal(exc: Exception) -> str:
    """What the invoicing core refused, in the page's language where it says it (per field)."""
    errors = getattr(exc, "errors", None)
    if not errors:
        return said(exc.args[0]) if exc.args else str(exc)
    shown = []
    for path, message in errors:
        label = field_label(path) if path else None
        shown.append(f"{label}: {said(message)}" if label else said(message))
    return "; ".join(shown)


FILTERS: dict[str, Callable[..., str]] = {
    "said": said,
    "refusal": refusal,
    "local_time": local_time,
    "day": day,
    "money": money,
    "number": number,
    "price": price,
    "pretty_json": pretty_json,
    "field_message": field_message,
    "error_message": error_message,
}
