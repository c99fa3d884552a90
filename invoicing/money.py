"""Exact amounts: parse, round to cents, and total a document the way Facturae expects."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from invoicing.errors import Said

CENT = Decimal("0.01")
HUNDRED = Decimal(100)
# Digits before the point, as schemas/common/money.json's pattern allows in text and as
# VERI*FACTU's amounts (ImporteSgn12.2Type) hold. Past them a number cannot even be rounded to
# cents in decimal's 28 digits (1e308 would be an InvalidOperation, a crash, not a refusal).
MAX_INTEGER_DIGITS = 12


class AmountError(ValueError):
    """A value that is not a usable amount."""


# The fields amounts are read for, as a sentence in Spanish names them.
NAMES_ES = {
    "amount": "el importe",
    "quantity": "la cantidad",
    "unit_price": "el precio",
    "discount_percent": "el descuento",
    "tax_rate": "el tipo de IVA",
    "withholding_rate": "la retención de IRPF",
}


def to_decimal(value: object, what: str = "amount") -> Decimal:
    """Read an amount from JSON: a string or number, never via float arithmetic.

    A JSON number arrives as a float; `str()` gives its shortest representation, which is the
    literal that was written for any amount with up to 15 significant digits.
    """
    name = NAMES_ES.get(what, what)
    if isinstance(value, bool) or value is None:
        raise AmountError(
            Said(f"{what} must be a number, got {value!r}", f"falta {name}: escribe un número")
        )
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):  # exact, however long (str() refuses over 4,300 digits)
        result = Decimal(value)
    elif isinstance(value, float | str):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            raise AmountError(
                Said(
                    f"{what} must be a number, got {value!r}",
                    f"«{value}» no es un número: escribe {name} en cifras",
                )
            ) from None
    else:
        raise AmountError(
            Said(
                f"{what} must be a number, got {type(value).__name__}",
                f"{name} debe ser un número",
            )
        )
    if not result.is_finite():
        raise AmountError(
            Said(
                f"{what} must be a finite number, got {value!r}",
                f"«{value}» no es un número válido: escribe {name} en cifras",
            )
        )
    if result and result.adjusted() >= MAX_INTEGER_DIGITS:
        raise AmountError(  # without the value: it may be thousands of digits long
            Said(
                f"{what} is too large: at most {MAX_INTEGER_DIGITS} digits before the decimal "
                "point",
                f"{name} es demasiado grande: admite como mucho {MAX_INTEGER_DIGITS} cifras antes "
                "de la coma",
            )
        )
    return result


def too_many_decimals(most: int) -> Said:
    """The refusal of a value written with more than `most` decimals."""
    return Said(f"at most {most} decimals are allowed", f"admite como mucho {most} decimales")


def cents(value: Decimal) -> Decimal:
    """Round half away from zero to cents, the commercial rule Facturae and the AEAT use."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class LineAmounts:
    gross: Decimal  # quantity × unit price, in cents (Facturae TotalCost)
    discount: Decimal  # in cents (Facturae DiscountAmount)
    base: Decimal  # gross - discount (Facturae GrossAmount): the taxable base of the line


# Recargo de equivalencia for each IVA rate (art. 161 Ley 37/1992; the AEAT's VERI*FACTU
# validations accept exactly these pairs for IVA 21, 10 and 4 %). Tobacco's 1,75 % and the
# temporary 2022-2024 rates are not offered. A 0 % line carries 0 % surcharge.
EQUIVALENCE_SURCHARGE: dict[Decimal, Decimal] = {
    Decimal(21): Decimal("5.2"),
    Decimal(10): Decimal("1.4"),
    Decimal(4): Decimal("0.5"),
    Decimal(0): Decimal(0),
}
ZERO = Decimal("0.00")


def surcharge_rate(iva_rate: Decimal) -> Decimal:
    """The recargo de equivalencia that goes with an IVA rate (21 → 5.2, 10 → 1.4, 4 → 0.5)."""
    try:
        return EQUIVALENCE_SURCHARGE[iva_rate]
    except KeyError:
        raise AmountError(
            Said(
                f"there is no recargo de equivalencia for IVA {iva_rate} %",
                f"no hay recargo de equivalencia para el IVA del {iva_rate} %: usa el 21, el 10, "
                "el 4 o el 0 %",
            )
        ) from None


@dataclass(frozen=True)
class TaxAmount:
    rate: Decimal
    base: Decimal  # after the document's general discount
    amount: Decimal
    exemption: str | None = None  # E1–E6: exempt operations (rate 0, no tax)
    surcharge_rate: Decimal | None = None  # recargo de equivalencia, when the customer is in it
    surcharge_amount: Decimal = ZERO


@dataclass(frozen=True)
class WithholdingAmount:
    """IRPF withheld at one rate: on the summed bases of the lines that carry it."""

    rate: Decimal
    base: Decimal
    amount: Decimal


@dataclass(frozen=True)
class TotalsLine:
    """What the totals need of a line: its base (after its own discount) and its taxes."""

    base: Decimal
    rate: Decimal
    exemption: str | None = None
    withholding_rate: Decimal | None = None
    service: bool = False  # no recargo de equivalencia: it is charged on goods only


@dataclass(frozen=True)
class Totals:
    base: Decimal  # taxable base: the lines' bases less the general discount
    tax: Decimal  # IVA
    total: Decimal  # base + IVA + recargo de equivalencia: the invoice total (ImporteTotal)
    taxes: tuple[TaxAmount, ...]
    discount: Decimal = ZERO  # general discount, rounded per IVA group
    surcharge: Decimal = ZERO  # recargo de equivalencia
    withholding: Decimal = ZERO  # IRPF withheld by the customer
    withholdings: tuple[WithholdingAmount, ...] = ()

    @property
    def gross(self) -> Decimal:
        """The lines' bases before the general discount (Facturae TotalGrossAmount)."""
        return self.base + self.discount

    @property
    def due(self) -> Decimal:
        """What the customer pays: the total less the IRPF it withholds."""
        return self.total - self.withholding


def line_amounts(quantity: Decimal, unit_price: Decimal, discount_percent: Decimal) -> LineAmounts:
    """Round each line amount to cents, as Facturae's line totals are written."""
    gross = cents(quantity * unit_price)
    discount = cents(gross * discount_percent / HUNDRED)
    return LineAmounts(gross, discount, gross - discount)


def discounted(base: Decimal, discount_percent: Decimal) -> Decimal:
    """A summed base less the general discount on it, the discount rounded to cents half up."""
    if not discount_percent:
        return base
    return base - cents(base * discount_percent / HUNDRED)


def _totals_line(
    line: TotalsLine | tuple[Decimal, Decimal] | tuple[Decimal, Decimal, str | None],
) -> TotalsLine:
    if isinstance(line, TotalsLine):
        return line
    return TotalsLine(line[0], line[1], line[2] if len(line) > 2 else None)


def document_totals(
    lines: Iterable[TotalsLine | tuple[Decimal, Decimal] | tuple[Decimal, Decimal, str | None]],
    *,
    discount_percent: Decimal = Decimal(0),
    equivalence_surcharge: bool = False,
) -> Totals:
    """Total the lines: IVA once per rate on the summed bases, and so every other amount.

    Lines are ``TotalsLine`` or (line base, IVA rate[, exemption]) tuples. Exempt lines form
    their own group per cause, apart from taxed lines at 0 %. For each group:

    * the general discount (``discount_percent``) is taken off the summed base, rounded to
      cents half up: that is the group's taxable base;
    * IVA and, for a customer in recargo de equivalencia, the surcharge of that IVA rate are
      each rounded to cents half up on that taxable base (exempt groups carry neither).

    IRPF is withheld per withholding rate on the summed bases of the lines carrying that rate,
    less the general discount, rounded the same way.
    """
    groups: dict[tuple[Decimal, str, bool], Decimal] = {}
    withheld: dict[Decimal, Decimal] = {}
    for item in map(_totals_line, lines):
        # Recargo de equivalencia: on goods only (art. 154 LIVA), so services at the same rate
        # form a group of their own.
        surcharged = equivalence_surcharge and not item.exemption and not item.service
        key = (item.rate, item.exemption or "", surcharged)
        groups[key] = groups.get(key, Decimal(0)) + item.base
        if item.withholding_rate:
            rate = item.withholding_rate
            withheld[rate] = withheld.get(rate, Decimal(0)) + item.base
    taxes = []
    discount = ZERO
    ordered = sorted(groups.items(), key=lambda g: (-g[0][0], g[0][1], not g[0][2]))
    for (rate, exemption, surcharged), gross in ordered:
        base = discounted(gross, discount_percent)
        discount += gross - base
        surcharge = surcharge_rate(rate) if surcharged else None
        taxes.append(
            TaxAmount(
                rate,
                base,
                cents(base * rate / HUNDRED),
                exemption or None,
                surcharge,
                cents(base * surcharge / HUNDRED) if surcharge is not None else ZERO,
            )
        )
    withholdings = []
    for rate, gross in sorted(withheld.items(), key=lambda w: -w[0]):
        base = discounted(gross, discount_percent)
        withholdings.append(WithholdingAmount(rate, base, cents(base * rate / HUNDRED)))
    base_total = sum((t.base for t in taxes), ZERO)
    tax_total = sum((t.amount for t in taxes), ZERO)
    surcharge_total = sum((t.surcharge_amount for t in taxes), ZERO)
    return Totals(
        base=base_total,
        tax=tax_total,
        total=base_total + tax_total + surcharge_total,
        taxes=tuple(taxes),
        discount=discount,
        surcharge=surcharge_total,
        withholding=sum((w.amount for w in withholdings), ZERO),
        withholdings=tuple(withholdings),
    )
