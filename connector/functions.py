"""JMESPath functions for business mappings: dates, amounts, text, defaults, NIFs, lookups.

Amounts come and go as decimal strings ("1234.50") so that no float ever touches money.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jmespath import exceptions, functions

from connector.limits import MAX_DIGITS, MAX_SIZE, LimitError, too_big

MADRID = "Europe/Madrid"
# Room for any rounding of a number within MAX_DIGITS to within MAX_DIGITS places: the
# result's own digits are checked after (_plain).
_ROUNDING = Context(prec=3 * MAX_DIGITS)


class FunctionError(exceptions.JMESPathError):
    """A function got a value it cannot use; the message says which and why."""


def _decimal(value: Any, function: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise FunctionError(f"{function}() needs a number, got {value!r}")
    text = str(value).strip()
    try:
        result = Decimal(text)
    except InvalidOperation:
        raise FunctionError(f"{function}() needs a number, got {value!r}") from None
    if not result.is_finite():
        raise FunctionError(f"{function}() needs a finite number, got {value!r}")
    # Short and with no exponent, it cannot have too many digits: counted only otherwise.
    long = len(text) > MAX_DIGITS or "e" in text or "E" in text
    if long and _digits(result) > MAX_DIGITS:
        raise too_big("digits", MAX_DIGITS)
    return result


def _digits(value: Decimal) -> int:
    """How many digits a finite `value` has written out plainly: 1E+3 → 4, 1E-3 → 4."""
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    if exponent >= 0:
        return len(digits) + exponent
    return max(len(digits) + exponent, 1) - exponent


def _plain(value: Decimal) -> str:
    """`value` written out plainly; as _decimal refuses a number too long to write, so does
    this (a product or a sum of long numbers)."""
    # What arithmetic gives has at most its context's precision in digits, so an exponent
    # within bounds keeps the text short enough to write before counting it.
    if not -MAX_DIGITS <= value.adjusted() < MAX_DIGITS:
        raise too_big("digits", MAX_DIGITS)
    text = format(value, "f")
    if len(text) - text.startswith("-") - ("." in text) > MAX_DIGITS:
        raise too_big("digits", MAX_DIGITS)
    return text


def _whole(value: Any, function: str, argument: str, low: int, high: int) -> int:
    """`value` as a whole number (truncated) when it is a finite number from `low` to `high`:
    `1e11` days or `1e9` decimal places are refused by name, before any arithmetic."""
    if type(value) is int and low <= value <= high:  # the usual `2`
        return value
    finite = not isinstance(value, float) or math.isfinite(value)
    if not (finite and low <= value <= high):
        shown = format(value, ".15g") if isinstance(value, float) else str(value)
        raise LimitError(
            "expression_out_of_range",
            function=function,
            argument=argument,
            low=low,
            high=high,
            got=shown[:40],
        )
    return int(value)


def _datetime(value: Any, function: str) -> datetime:
    if not isinstance(value, str):
        raise FunctionError(f"{function}() needs a date or date-time text, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise FunctionError(
            f"{function}() cannot read {value!r} as a date (use 2026-11-28 or "
            "2026-11-28T10:15:00+01:00)"
        ) from None
    return parsed


def _zone(name: str, function: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise FunctionError(f"{function}() does not know the time zone {name!r}") from None


class BusinessFunctions(functions.Functions):
    """JMESPath's functions plus ours; `lookups` are the flow's lookup tables."""

    def __init__(self, lookups: dict[str, dict[str, Any]] | None = None) -> None:
        super().__init__()
        self.lookups = lookups or {}

    # --- defaults ---------------------------------------------------------------------------

    @functions.signature({"types": [], "variadic": True})
    def _func_coalesce(self, *values: Any) -> Any:
        """The first value that is neither null nor empty text."""
        return next((v for v in values if v is not None and v != ""), None)

    # --- lookups ----------------------------------------------------------------------------

    @functions.signature({"types": ["string"]}, {"types": []})
    def _func_lookup(self, table: str, key: Any) -> Any:
        """lookup('table', key): the value the flow's lookup table gives for key (or an error)."""
        values = self._table(table)
        text = "" if key is None else str(key)
        if text not in values:
            raise FunctionError(
                f"lookup(): {text!r} is not in table {table!r}; add it, or use "
                "lookup_or(table, key, default)"
            )
        return values[text]

    @functions.signature({"types": ["string"]}, {"types": []}, {"types": []})
    def _func_lookup_or(self, table: str, key: Any, default: Any) -> Any:
        """lookup_or('table', key, default): like lookup, with a value for missing keys."""
        return self._table(table).get("" if key is None else str(key), default)

    def _table(self, name: str) -> dict[str, Any]:
        if name not in self.lookups:
            known = ", ".join(sorted(self.lookups)) or "none"
            raise FunctionError(f"there is no lookup table {name!r} (tables: {known})")
        return self.lookups[name]

    # --- text -------------------------------------------------------------------------------

    @functions.signature({"types": ["string", "null"]})
    def _func_upper(self, text: str | None) -> str | None:
        return None if text is None else text.upper()

    @functions.signature({"types": ["string", "null"]})
    def _func_lower(self, text: str | None) -> str | None:
        return None if text is None else text.lower()

    @functions.signature({"types": ["string", "null"]})
    def _func_trim(self, text: str | None) -> str | None:
        return None if text is None else " ".join(text.split())

    @functions.signature({"types": ["string", "null"]}, {"types": ["number"]})
    def _func_left(self, text: str | None, count: int) -> str | None:
        count = _whole(count, "left", "count", -MAX_SIZE, MAX_SIZE)
        return None if text is None else text[:count]

    @functions.signature(
        {"types": ["string", "null"]}, {"types": ["string"]}, {"types": ["string"]}
    )
    def _func_replace(self, text: str | None, old: str, new: str) -> str | None:
        if text is None:
            return None
        # Measured before it is made: nested, replace() can grow its text x16 a level.
        times = len(text) + 1 if old == "" else text.count(old)
        if len(text) + times * (len(new) - len(old)) > MAX_SIZE:
            raise too_big()
        return text.replace(old, new)

    @functions.signature({"types": [], "variadic": True})
    def _func_concat(self, *parts: Any) -> str:
        """Join values as text, skipping nulls: concat('Deal ', trigger.deal_id)."""
        texts, length = [], 0
        for part in parts:
            text = "" if part is None else str(part)
            length += len(text)
            if length > MAX_SIZE:
                raise too_big()
            texts.append(text)
        return "".join(texts)

    @functions.signature({"types": ["string"]}, {"types": ["array-string"]})
    def _func_join(self, separator: str, texts: list[str]) -> str:
        """JMESPath's join, measured first: a long separator between many items is a lot."""
        length = sum(map(len, texts)) + len(separator) * max(len(texts) - 1, 0)
        if length > MAX_SIZE:
            raise too_big()
        return separator.join(texts)

    @functions.signature({"types": ["string", "null"]})
    def _func_nif(self, text: str | None) -> str | None:
        """A Spanish tax id as the AEAT writes it: no spaces, dots or dashes, capitals, no ES."""
        if text is None:
            return None
        compact = "".join(ch for ch in text if ch.isalnum()).upper()
        return compact[2:] if compact.startswith("ES") and len(compact) == 11 else compact

    # --- amounts ----------------------------------------------------------------------------

    @functions.signature({"types": ["string", "number", "null"]})
    def _func_decimal(self, value: Any) -> str | None:
        """A number as exact decimal text: decimal(`19.9`) → "19.9"."""
        return None if value is None else _plain(_decimal(value, "decimal"))

    @functions.signature({"types": ["string", "number"]}, {"types": ["number"]})
    def _func_round(self, value: Any, places: int) -> str:
        """Round half up (as invoices do) to `places` decimals, as text: round('2.675', `2`)."""
        exponent = Decimal(1).scaleb(-_whole(places, "round", "places", -MAX_DIGITS, MAX_DIGITS))
        number = _decimal(value, "round")
        return _plain(number.quantize(exponent, rounding=ROUND_HALF_UP, context=_ROUNDING))

    @functions.signature({"types": ["string", "number"]}, {"types": ["string", "number"]})
    def _func_multiply(self, left: Any, right: Any) -> str:
        return _plain(_decimal(left, "multiply") * _decimal(right, "multiply"))

    @functions.signature({"types": ["array"]})
    def _func_sum_decimal(self, values: list[Any]) -> str:
        """Add amounts written as text or numbers, exactly."""
        total = sum((_decimal(v, "sum_decimal") for v in values if v is not None), Decimal(0))
        return _plain(total)

    # --- dates and time zones ---------------------------------------------------------------

    @functions.signature({"types": ["string"]})
    def _func_to_date(self, value: str) -> str:
        """The calendar date in Madrid of a moment: "2026-11-28"."""
        return self._func_to_date_in(value, MADRID)

    @functions.signature({"types": ["string"]}, {"types": ["string"]})
    def _func_to_date_in(self, value: str, zone: str) -> str:
        """The calendar date of a moment in the given time zone."""
        moment = _datetime(value, "to_date")
        if moment.tzinfo is not None:
            moment = moment.astimezone(_zone(zone, "to_date"))
        return moment.date().isoformat()

    @functions.signature({"types": ["string"]}, {"types": ["string"]})
    def _func_to_timezone(self, value: str, zone: str) -> str:
        """The same moment written in another time zone."""
        moment = _datetime(value, "to_timezone")
        if moment.tzinfo is None:
            raise FunctionError(f"to_timezone(): {value!r} has no time zone to convert from")
        return moment.astimezone(_zone(zone, "to_timezone")).isoformat()

    @functions.signature({"types": ["string"]}, {"types": ["string"]})
    def _func_format_date(self, value: str, pattern: str) -> str:
        """Write a date with strftime codes: format_date(trigger.won_at, '%d/%m/%Y')."""
        return _datetime(value, "format_date").strftime(pattern)

    @functions.signature({"types": ["string"]}, {"types": ["number"]})
    def _func_add_days(self, value: str, days: int) -> str:
        """A date (or date-time) some days later (or earlier, with a negative number)."""
        parsed = _datetime(value, "add_days")
        # As many days as keep the date within the calendar (years 1 to 9999), said so.
        low, high = (date.min - parsed.date()).days, (date.max - parsed.date()).days
        moved = parsed + timedelta(days=_whole(days, "add_days", "days", low, high))
        if len(value.strip()) == 10:  # a plain date stays a plain date
            return date(moved.year, moved.month, moved.day).isoformat()
        return moved.isoformat()


FUNCTION_NAMES = sorted(name[6:] for name in dir(BusinessFunctions) if name.startswith("_func_"))
