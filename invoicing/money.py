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
    exemption: str | None = None  # E1–E6: exempt operations (rate 0, no tax)


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


def document_totals(
    lines: Iterable[tuple[Decimal, Decimal] | tuple[Decimal, Decimal, str | None]],
) -> Totals:
    """Total (line base, IVA rate[, exemption]) tuples: IVA once per rate on the summed bases.

    Exempt lines form their own group per cause, apart from taxed lines at 0 %.
    """
    groups: dict[tuple[Decimal, str], Decimal] = {}
    for line in lines:
        base, rate = line[0], line[1]
        exemption = line[2] if len(line) > 2 else None
        key = (rate, exemption or "")
        groups[key] = groups.get(key, Decimal(0)) + base
    taxes = tuple(
        TaxAmount(rate, base, cents(base * rate / HUNDRED), exemption or None)
        for (rate, exemption), base in sorted(groups.items(), key=lambda g: (-g[0][0], g[0][1]))
    )
    base_total = sum((t.base for t in taxes), Decimal("0.00"))
    tax_total = sum((t.amount for t in taxes), Decimal("0.00"))
    return Totals(base_total, tax_total, base_total + tax_total, taxes)
