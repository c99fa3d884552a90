"""Template filters: Spanish (or English) numbers, money and Madrid times."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, g

from connector import messages
from connector.errors import FieldError

MADRID = ZoneInfo("Europe/Madrid")


def init_app(app: Flask) -> None:
    for name, function in FILTERS.items():
        app.add_template_filter(function, name)


def local_time(value: datetime | None) -> str:
    """Show times in Madrid, where the users are."""
    return value.astimezone(MADRID).strftime("%d/%m/%Y %H:%M:%S") if value else "—"


def money(value: Decimal | None, currency: str = "EUR") -> str:
    if value is None:
        return "—"
    text = f"{value:,.2f}"
    if getattr(g, "lang", "es") == "es":
        text = text.replace(",", "_").replace(".", ",").replace("_", ".")
        return f"{text} €" if currency == "EUR" else f"{text} {currency}"
    return f"€{text}" if currency == "EUR" else f"{text} {currency}"


def number(value: Decimal | None) -> str:
    if value is None:
        return ""
    text = format(value if value.as_tuple().exponent == -2 else value.normalize(), "f")
    return text.replace(".", ",") if getattr(g, "lang", "es") == "es" else text


def price(value: Decimal) -> str:
    """A unit price with at least two decimals, and more only when it has them."""
    exact = value.normalize()
    exponent = exact.as_tuple().exponent
    many = isinstance(exponent, int) and exponent < -2
    return number(exact if many else exact.quantize(Decimal("0.01")))


def pretty_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


def field_message(error: FieldError | dict[str, Any]) -> str:
    """A field error (or one stored in a run's log) in the page's language."""
    lang = str(getattr(g, "lang", "es"))
    return error.text(lang) if isinstance(error, FieldError) else messages.localized(error, lang)


def said(text: object) -> str:
    """A message of the invoicing core in the page's language, when it carries one."""
    if getattr(g, "lang", "es") == "es" and isinstance(getattr(text, "es", None), str):
        return str(text.es)  # type: ignore[attr-defined]
    return str(text)


def refusal(exc: Exception) -> str:
    """What the invoicing core refused, in the page's language where it says it (per field)."""
    errors = getattr(exc, "errors", None)
    if errors:
        return "; ".join(
            f"{path}: {said(message)}" if path else said(message) for path, message in errors
        )
    return said(exc.args[0]) if exc.args else str(exc)


FILTERS: dict[str, Callable[..., str]] = {
    "said": said,
    "refusal": refusal,
    "local_time": local_time,
    "money": money,
    "number": number,
    "price": price,
    "pretty_json": pretty_json,
    "field_message": field_message,
}
