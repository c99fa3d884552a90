"""Exact amounts: parse, round to cents, and total a document the way Facturae expects."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
HUNDRED = Decimal(100)


class AmountError(ValueError):
    """A value that is not a usable amount."""


def to_decimal(value: object, what: str = "amount") -> Decimal:
    """Read an amount from JSON: a string or number, never via float arithmetic.

    A JSON number arrives as a float; `str()` gives its shortest representation, which is the
    literal that was written for any amount with up to 15 significant digits.
    """
    if isinstance(value, bool) or value is None:
        raise AmountError(f"{what} must be a number, got {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | float | str):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            raise AmountError(f"{what} must be a number, got {value!r}") from None
    else:
        raise AmountError(f"{what} must be a number, got {type(value).__name__}")
    if not result.is_finite():
        raise AmountError(f"{what} must be a finite number, got {value!r}")
    return result


def cents(value: Decimal) -> Decimal:
    """Round half away from zero to cents, the commercial rule Facturae and the AEAT use."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class LineAmounts:
    gross: Decimal  # quantity × unit price, in cents (Facturae TotalCost)
    discount: Decimal  # in cents (Facturae DiscountAmount)
    base: Decimal  # gross - discount (Facturae GrossAmount): the taxable base of the line


@dataclass(frozen=True)
class TaxAmount:
    rate: Decimal
    base: Decimal
    amount: Decimal


@dataclass(frozen=True)
class Totals:
    base: Decimal
    tax: Decimal
    total: Decimal
    taxes: tuple[TaxAmount, ...]


def line_amounts(quantity: Decimal, unit_price: Decimal, discount_percent: Decimal) -> LineAmounts:
    """Round each line amount to cents, as Facturae's line totals are written."""
    gross = cents(quantity * unit_price)
    discount = cents(gross * discount_percent / HUNDRED)
    return LineAmounts(gross, discount, gross - discount)


def document_totals(lines: Iterable[tuple[Decimal, Decimal]]) -> Totals:
    """Total (line base, IVA rate) pairs: IVA is computed once per rate on the summed bases."""
    by_rate: dict[Decimal, Decimal] = {}
    for base, rate in lines:
        by_rate[rate] = by_rate.get(rate, Decimal(0)) + base
    taxes = tuple(
        TaxAmount(rate, base, cents(base * rate / HUNDRED))
        for rate, base in sorted(by_rate.items(), reverse=True)
    )
    base_total = sum((t.base for t in taxes), Decimal("0.00"))
    tax_total = sum((t.amount for t in taxes), Decimal("0.00"))
    return Totals(base_total, tax_total, base_total + tax_total, taxes)
