"""Facturae 3.2.2: write an issued invoice as XML, validate it offline, sign it with XAdES-EPES.

Pure: no database, no Flask. The caller maps its invoice onto the frozen dataclasses below, then
`facturae_xml` → `validate` → `sign` (optional) → `verify` (optional, e.g. before sending).

Facts come from the official XSD (`Facturaev3_2_2.xsd`, the truth for names, order and types)
and the Facturae signature policy v3.1. Facturae itself does no arithmetic checks, so
`facturae_xml` checks the totals before writing anything.
"""

from __future__ import annotations

import threading
from base64 import b64decode
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from lxml import etree

from invoicing import xsd
from invoicing.errors import InvoicingError, Said
from invoicing.money import cents

FACTURAE_NS = "http://www.facturae.gob.es/formato/Versiones/Facturaev3_2_2.xml"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
XADES_NS = "http://uri.etsi.org/01903/v1.3.2#"
SCHEMA_VERSION = "3.2.2"
C14N_1_0 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"

IVA = "01"  # TaxTypeCode: Impuesto sobre el Valor Añadido
IRPF = "04"  # TaxTypeCode: Impuesto sobre la Renta de las Personas Físicas (withheld)
UNITS = "01"  # UnitOfMeasure: Unidades
TRANSFER = "04"  # PaymentMeans: Transferencia

# ReasonCode → ReasonDescription, spelled exactly as the XSD enumerates them.
REASONS: dict[str, str] = {
    "01": "Número de la factura",
    "02": "Serie de la factura",
    "03": "Fecha expedición",
    "04": "Nombre y apellidos/Razón Social-Emisor",
    "05": "Nombre y apellidos/Razón Social-Receptor",
    "06": "Identificación fiscal Emisor/obligado",
    "07": "Identificación fiscal Receptor",
    "08": "Domicilio Emisor/Obligado",
    "09": "Domicilio Receptor",
    "10": "Detalle Operación",
    "11": "Porcentaje impositivo a aplicar",
    "12": "Cuota tributaria a aplicar",
    "13": "Fecha/Periodo a aplicar",
    "14": "Clase de factura",
    "15": "Literales legales",
    "16": "Base imponible",
    "80": "Cálculo de cuotas repercutidas",
    "81": "Cálculo de cuotas retenidas",
    "82": "Base imponible modificada por devolución de envases / embalajes",
    "83": "Base imponible modificada por descuentos y bonificaciones",
    "84": "Base imponible modificada por resolución firme, judicial o administrativa",
    "85": (
        "Base imponible modificada cuotas repercutidas no satisfechas. "
        "Auto de declaración de concurso"
    ),
}
# CorrectionMethod → CorrectionMethodDescription, as the XSD enumerates them.
CORRECTION_METHODS: dict[str, str] = {
    "01": "Rectificación íntegra",
    "02": "Rectificación por diferencias",
    "03": "Rectificación por descuento por volumen de operaciones durante un periodo",
    "04": "Autorizadas por la Agencia Tributaria",
}

# ISO 3166 alpha-2 → alpha-3 (Facturae's CountryType): the EU and the usual trading partners.
# "EL" is Greece's prefix in EU VAT numbers.
ALPHA3: dict[str, str] = {
    "AT": "AUT", "BE": "BEL", "BG": "BGR", "CY": "CYP", "CZ": "CZE", "DE": "DEU", "DK": "DNK",
    "EE": "EST", "EL": "GRC", "ES": "ESP", "FI": "FIN", "FR": "FRA", "GR": "GRC", "HR": "HRV",
    "HU": "HUN", "IE": "IRL", "IT": "ITA", "LT": "LTU", "LU": "LUX", "LV": "LVA", "MT": "MLT",
    "NL": "NLD", "PL": "POL", "PT": "PRT", "RO": "ROU", "SE": "SWE", "SI": "SVN", "SK": "SVK",
    "AD": "AND", "CH": "CHE", "GB": "GBR", "GI": "GIB", "IS": "ISL", "LI": "LIE", "MC": "MCO",
    "NO": "NOR", "SM": "SMR", "VA": "VAT", "UA": "UKR", "TR": "TUR", "RS": "SRB", "AL": "ALB",
    "MA": "MAR", "DZ": "DZA", "TN": "TUN", "EG": "EGY", "ZA": "ZAF", "IL": "ISR", "AE": "ARE",
    "SA": "SAU", "QA": "QAT", "US": "USA", "CA": "CAN", "MX": "MEX", "AR": "ARG", "BR": "BRA",
    "CL": "CHL", "CO": "COL", "PE": "PER", "UY": "URY", "EC": "ECU", "VE": "VEN", "CR": "CRI",
    "PA": "PAN", "DO": "DOM", "CU": "CUB", "CN": "CHN", "HK": "HKG", "JP": "JPN", "KR": "KOR",
    "IN": "IND", "SG": "SGP", "AU": "AUS", "NZ": "NZL",
}  # fmt: skip
# fmt: off
EU_MEMBERS = frozenset([
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "EL", "ES", "FI", "FR", "GR", "HR", "HU",
    "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
])
# fmt: on
_EU_ALPHA3 = frozenset(ALPHA3[code] for code in EU_MEMBERS)
# Province is TextMax20; the only Spanish province whose name is longer gets its usual short form.
_SHORT_PROVINCES = {"santa cruz de tenerife": "S.C. de Tenerife"}

_TWO = Decimal("0.01")
_EIGHT = Decimal("1E-8")
_ZERO = Decimal("0.00")
_HUNDRED = Decimal(100)

PersonType = Literal["J", "F"]
ResidenceType = Literal["R", "U", "E"]


class FacturaeError(InvoicingError, ValueError):
    """An invoice that cannot be written as Facturae; the message says what to fix."""


class FacturaeTotalsError(FacturaeError):
    """The invoice's amounts do not add up; `problems` lists every mismatch found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("the invoice totals are inconsistent: " + "; ".join(problems))
        self.problems = problems


class FacturaeSchemaError(FacturaeError):
    """The XML is not valid Facturae 3.2.2; `errors` lists each schema error with its line."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(
            f"the XML is not valid Facturae {SCHEMA_VERSION} "
            f"({len(errors)} error{'s' if len(errors) != 1 else ''}): " + "; ".join(errors)
        )
        self.errors = errors


class FacturaeSignatureError(FacturaeError):
    """Signing failed, or a signature does not verify."""


# --------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Party:
    """A seller or buyer. Codes left as None are derived from the tax id and the country."""

    tax_id: str
    name: str  # corporate name (J); for an individual (F) the full name, unless surnames given
    address: str  # street and number
    postal_code: str
    town: str
    province: str
    country: str = "ES"  # ISO 3166 alpha-2 (alpha-3 accepted)
    person_type: PersonType | None = None  # "J" legal entity / "F" individual
    residence_type: ResidenceType | None = None  # "R" Spain / "U" other EU / "E" elsewhere
    # A person's name apart (Individual): the given name (else `name`) and surnames. Without a
    # first surname the name is written whole (CorporateName): a full name is never guessed
    # into surnames ("Juan Carlos Pérez" is not Juan, surnames Carlos Pérez).
    first_surname: str | None = None
    second_surname: str | None = None
    given_name: str | None = None
    email: str | None = None

    @property
    def country_alpha3(self) -> str:
        return country_alpha3(self.country)

    @property
    def in_spain(self) -> bool:
        return self.country_alpha3 == "ESP"

    @property
    def person_type_code(self) -> PersonType:
        if self.person_type is not None:
            return self.person_type
        return person_type_from_nif(self.tax_id) if self.in_spain else "J"

    @property
    def residence_type_code(self) -> ResidenceType:
        if self.residence_type is not None:
            return self.residence_type
        if self.in_spain:
            return "R"
        return "U" if self.country_alpha3 in _EU_ALPHA3 else "E"

    @property
    def tax_identification_number(self) -> str:
        """The tax id as Facturae wants it: compact; an EU VAT number with its country prefix."""
        compact = "".join(ch for ch in self.tax_id if ch.isalnum()).upper()
        if self.residence_type_code == "R" and len(compact) == 11 and compact.startswith("ES"):
            return compact[2:]
        if self.residence_type_code == "U":
            prefix = _vat_prefix(self.country_alpha3)
            if prefix and not compact.startswith(prefix):
                return prefix + compact
        return compact


@dataclass(frozen=True)
class Line:
    """One invoice line, with amounts already computed (see `invoicing.money.line_amounts`)."""

    description: str
    quantity: Decimal
    unit_price: Decimal  # without tax, up to 8 decimals
    gross_amount: Decimal  # Facturae GrossAmount: the line's taxable base, after its discount
    tax_rate: Decimal  # IVA percent, e.g. 21
    tax_amount: Decimal  # IVA of this line
    discount_percent: Decimal = Decimal(0)
    discount_amount: Decimal = Decimal(0)
    # The line's IVA base: its gross amount less its share of the invoice's general discount
    # (that share rounded to cents half up); defaults to the gross amount.
    tax_base: Decimal | None = None
    sku: str | None = None  # written as ArticleCode
    discount_reason: str = "Descuento"
    surcharge_rate: Decimal | None = None  # recargo de equivalencia %, on the IVA base
    surcharge_amount: Decimal | None = None
    withholding_rate: Decimal | None = None  # IRPF % withheld, on the IVA base
    withholding_amount: Decimal | None = None
    # An exempt line (sujeta y exenta, SpecialTaxableEvent 01): its cause (E1–E6, as in the
    # VERI*FACTU record) and the legal ground written as its SpecialTaxableEventReason.
    exemption: str | None = None
    exemption_reason: str | None = None

    @property
    def total_cost(self) -> Decimal:
        """Facturae TotalCost: quantity × unit price, before the discount."""
        return self.gross_amount + self.discount_amount

    @property
    def taxable_base(self) -> Decimal:
        return self.gross_amount if self.tax_base is None else self.tax_base


@dataclass(frozen=True)
class TaxTotal:
    """IVA of one rate over the whole invoice, with its recargo de equivalencia if any."""

    rate: Decimal
    base: Decimal
    amount: Decimal
    surcharge_rate: Decimal | None = None  # EquivalenceSurcharge
    surcharge_amount: Decimal | None = None  # EquivalenceSurchargeAmount
    # Exempt lines are a group of their own per cause, apart from taxed lines at the same rate.
    exemption: str | None = None

    @property
    def group(self) -> tuple[Decimal, str | None, bool]:
        """Rate, exemption and whether it carries recargo (goods and services may share a
        rate for a customer in recargo: only the goods carry it)."""
        return (self.rate, self.exemption, self.surcharge_rate is not None)

    @property
    def outputs(self) -> Decimal:
        """What this entry adds to TotalTaxOutputs: its IVA and its surcharge."""
        return self.amount + (self.surcharge_amount or _ZERO)


@dataclass(frozen=True)
class Withholding:
    """IRPF withheld at one rate over the whole invoice (TaxesWithheld)."""

    rate: Decimal
    base: Decimal
    amount: Decimal


@dataclass(frozen=True)
class GeneralDiscount:
    """A discount of `rate` percent on every line (GeneralDiscounts), rounded per IVA rate."""

    rate: Decimal
    amount: Decimal
    reason: str = "Descuento general"


@dataclass(frozen=True)
class Corrective:
    """What a rectifying invoice (class "OR") corrects, and how."""

    tax_period_start: date  # the period in which the rectified invoice was taxed
    tax_period_end: date
    number: str | None = None  # of the rectified invoice; required by methods "01" and "02"
    series_code: str | None = None
    issue_date: date | None = None  # of the rectified invoice
    reason_code: str = "01"  # see REASONS
    correction_method: str = "01"  # see CORRECTION_METHODS: 01 full, 02 by differences
    additional_reason: str | None = None  # free text

    @property
    def reason_description(self) -> str:
        return REASONS[self.reason_code]

    @property
    def correction_method_description(self) -> str:
        return CORRECTION_METHODS[self.correction_method]


@dataclass(frozen=True)
class Invoice:
    """An issued invoice, ready to be written as Facturae."""

    number: str
    issue_date: date
    seller: Party
    buyer: Party
    lines: Sequence[Line]
    taxes: Sequence[TaxTotal]
    gross_amount_before_taxes: Decimal  # the line gross amounts less the general discount
    total_tax_outputs: Decimal  # IVA plus recargo de equivalencia
    invoice_total: Decimal  # before taxes + tax outputs - taxes withheld: what is paid
    series_code: str | None = None
    currency: str = "EUR"
    invoice_class: Literal["OO", "OR"] = "OO"  # original / original rectificativa
    document_type: Literal["FC", "FA"] = "FC"  # complete / simplified (abreviada)
    corrective: Corrective | None = None  # required when invoice_class is "OR"
    total_outstanding: Decimal | None = None  # defaults to the invoice total
    total_executable: Decimal | None = None  # defaults to the outstanding amount
    payment_due_date: date | None = None
    iban: str | None = None  # account to be credited
    payment_means: str = TRANSFER
    operation_date: date | None = None  # only when it differs from the issue date
    language: str = "es"
    general_discount: GeneralDiscount | None = None
    withholdings: Sequence[Withholding] = ()
    total_taxes_withheld: Decimal = _ZERO
    # LegalLiterals: the legal ground of each exemption (art. 6.1 j RD 1619/2012), up to 250
    # characters each.
    legal_literals: Sequence[str] = ()

    def __post_init__(self) -> None:
        # Keep the instance immutable even when lists were passed in.
        object.__setattr__(self, "legal_literals", tuple(self.legal_literals))
        object.__setattr__(self, "lines", tuple(self.lines))
        object.__setattr__(self, "taxes", tuple(self.taxes))
        object.__setattr__(self, "withholdings", tuple(self.withholdings))

    @property
    def total_gross_amount(self) -> Decimal:
        """TotalGrossAmount: the sum of the lines' gross amounts."""
        return _total(line.gross_amount for line in self.lines)

    @property
    def discount_rate(self) -> Decimal:
        return self.general_discount.rate if self.general_discount is not None else Decimal(0)

    @property
    def outstanding(self) -> Decimal:
        return self.invoice_total if self.total_outstanding is None else self.total_outstanding

    @property
    def executable(self) -> Decimal:
        return self.outstanding if self.total_executable is None else self.total_executable


# --------------------------------------------------------------------------------------------
# Codes derived from the data
# --------------------------------------------------------------------------------------------


def country_alpha3(country: str) -> str:
    """Map an ISO 3166 alpha-2 code (or an alpha-3 one, kept) to Facturae's alpha-3."""
    code = country.strip().upper()
    if len(code) == 3 and code.isalpha():
        return code
    try:
        return ALPHA3[code]
    except KeyError:
        raise FacturaeError(
            Said(
                f"country {country!r} has no Facturae (ISO 3166 alpha-3) code here; "
                "pass the alpha-3 code (e.g. 'FRA') or add it to facturae.ALPHA3",
                f"El país «{country}» no tiene código Facturae (ISO 3166 de tres letras) aquí: "
                "revisa el país en la ficha, o escribe su código de tres letras (p. ej. FRA).",
            )
        ) from None


def person_type_from_nif(tax_id: str) -> PersonType:
    """Tell a Spanish individual ("F": DNI, NIE, K/L/M NIFs) from a legal entity ("J": CIF)."""
    compact = "".join(ch for ch in tax_id if ch.isalnum()).upper()
    if len(compact) == 11 and compact.startswith("ES"):
        compact = compact[2:]
    first = compact[:1]
    return "F" if first.isdigit() or first in {"X", "Y", "Z", "K", "L", "M"} else "J"


def _vat_prefix(alpha3: str) -> str | None:
    for alpha2, code in ALPHA3.items():
        if code == alpha3 and alpha2 in EU_MEMBERS:
            return "EL" if alpha3 == "GRC" else alpha2
    return None


# --------------------------------------------------------------------------------------------
# Amounts
# --------------------------------------------------------------------------------------------


def _two(value: Decimal, what: str) -> str:
    """Format an amount with exactly two decimals, refusing fractions of a cent."""
    if not value.is_finite() or value != value.quantize(_TWO):
        raise FacturaeError(f"{what} = {value} must be an amount in cents (two decimals)")
    return f"{value.quantize(_TWO):f}"


def _up_to_eight(value: Decimal, what: str) -> str:
    """Format a price or rate: two decimals when enough, else up to eight (DoubleUpToEight)."""
    if not value.is_finite() or value != value.quantize(_EIGHT):
        raise FacturaeError(f"{what} = {value} has more than the 8 decimals Facturae allows")
    if value == value.quantize(_TWO):
        return f"{value.quantize(_TWO):f}"
    return f"{value.normalize():f}"


def _quantity(value: Decimal, what: str) -> str:
    if not value.is_finite():
        raise FacturaeError(f"{what} = {value} is not a number")
    return f"{value.normalize():f}"


def _total(values: Iterable[Decimal]) -> Decimal:
    return sum(values, _ZERO)


def _pct(rate: Decimal | None) -> str:
    """A rate as people write it in a message: 21.0000 → '21', 5.2000 → '5.2'."""
    return "?" if rate is None else f"{rate.normalize():f}"


def _less_discount(base: Decimal, rate: Decimal) -> Decimal:
    """A base less `rate` percent of it, the discount rounded to cents half up."""
    return base - cents(base * rate / _HUNDRED) if rate else base


def check_totals(invoice: Invoice) -> None:
    """Raise FacturaeTotalsError listing every amount that does not add up.

    The rules are the XSD's own definitions: TotalGrossAmount is the sum of the lines' gross
    amounts, TotalGrossAmountBeforeTaxes is that less TotalGeneralDiscounts, TotalTaxOutputs
    sums the IVA and recargo de equivalencia amounts, InvoiceTotal is TotalGrossAmountBeforeTaxes
    + TotalTaxOutputs - TotalTaxesWithheld, and without subsidies, payments on account or
    amounts withheld in guarantee the amounts outstanding and to execute are the InvoiceTotal.
    A general discount is rounded per IVA rate, as the tax bases are.
    """
    problems: list[str] = []
    if not invoice.lines:
        problems.append("the invoice has no lines")
    if not invoice.taxes:
        problems.append("the invoice has no IVA breakdown (taxes)")
    discount = invoice.general_discount
    rate = invoice.discount_rate
    if discount is not None and not Decimal(0) < discount.rate <= _HUNDRED:
        problems.append(f"the general discount rate {discount.rate} is not between 0 and 100")
    for position, line in enumerate(invoice.lines, start=1):
        problems.extend(_line_problems(position, line, rate))
    problems.extend(_tax_problems(invoice))
    problems.extend(_withholding_problems(invoice))

    gross = invoice.total_gross_amount
    if discount is not None:
        by_rate: dict[Decimal, Decimal] = {}
        for line in invoice.lines:
            by_rate[line.tax_rate] = by_rate.get(line.tax_rate, _ZERO) + line.gross_amount
        expected = _total(base - _less_discount(base, rate) for base in by_rate.values())
        if discount.amount != expected:
            problems.append(
                f"a {_pct(rate)}% general discount on the lines at each IVA rate adds up to "
                f"{expected}, not {discount.amount}"
            )
    if discount is None and gross != invoice.gross_amount_before_taxes:
        problems.append(
            f"the line gross amounts add up to {gross}, "
            f"not to the total gross amount {invoice.gross_amount_before_taxes}"
        )
    elif discount is not None and gross - discount.amount != invoice.gross_amount_before_taxes:
        problems.append(
            f"the line gross amounts add up to {gross}, less the general discount "
            f"{discount.amount} to {gross - discount.amount}, "
            f"not to the total before taxes {invoice.gross_amount_before_taxes}"
        )
    taxes_base = _total(tax.base for tax in invoice.taxes)
    if taxes_base != invoice.gross_amount_before_taxes:
        problems.append(
            f"the IVA bases add up to {taxes_base}, "
            f"not to the total before taxes {invoice.gross_amount_before_taxes}"
        )
    outputs = _total(tax.outputs for tax in invoice.taxes)
    if outputs != invoice.total_tax_outputs:
        problems.append(
            f"the IVA and recargo de equivalencia amounts add up to {outputs}, "
            f"not to the total tax outputs {invoice.total_tax_outputs}"
        )
    withheld = _total(w.amount for w in invoice.withholdings)
    if withheld != invoice.total_taxes_withheld:
        problems.append(
            f"the taxes withheld add up to {withheld}, "
            f"not to the total taxes withheld {invoice.total_taxes_withheld}"
        )
    expected_total = (
        invoice.gross_amount_before_taxes + invoice.total_tax_outputs - invoice.total_taxes_withheld
    )
    if expected_total != invoice.invoice_total:
        outputs_name = (
            "IVA"
            if all(t.surcharge_amount is None for t in invoice.taxes)
            else ("IVA and surcharge")
        )
        withheld_text = (
            f" - withheld {invoice.total_taxes_withheld}" if invoice.total_taxes_withheld else ""
        )
        problems.append(
            f"base {invoice.gross_amount_before_taxes} + {outputs_name} "
            f"{invoice.total_tax_outputs}{withheld_text} = {expected_total}, "
            f"not the invoice total {invoice.invoice_total}"
        )
    # Without subsidies, payments on account or amounts withheld in guarantee (not written
    # here) the amounts to pay and to execute are the invoice total.
    if invoice.outstanding != invoice.invoice_total:
        problems.append(
            f"the outstanding amount {invoice.outstanding} differs from the invoice total "
            f"{invoice.invoice_total} (payments on account are not supported)"
        )
    if invoice.executable != invoice.outstanding:
        problems.append(
            f"the executable amount {invoice.executable} differs from the outstanding amount "
            f"{invoice.outstanding} (amounts withheld in guarantee are not supported)"
        )
    if problems:
        raise FacturaeTotalsError(problems)


def _line_problems(position: int, line: Line, discount_rate: Decimal) -> list[str]:
    where = f"line {position}"
    problems: list[str] = []
    cost = cents(line.quantity * line.unit_price)
    if line.total_cost != cost:
        problems.append(
            f"{where}: gross amount {line.gross_amount} + discount {line.discount_amount} = "
            f"{line.total_cost}, but quantity × unit price = {cost}"
        )
    if line.discount_percent:
        discount = cents(cost * line.discount_percent / _HUNDRED)
        if discount != line.discount_amount:
            problems.append(
                f"{where}: a {line.discount_percent}% discount on {cost} is {discount}, "
                f"not {line.discount_amount}"
            )
    base = _less_discount(line.gross_amount, discount_rate)
    if line.taxable_base != base:
        problems.append(
            f"{where}: the IVA base {line.taxable_base} differs from the gross amount "
            f"{line.gross_amount}"
            + (
                f" less its {_pct(discount_rate)}% general discount ({base})"
                if discount_rate
                else ""
            )
        )
    tax = cents(line.taxable_base * line.tax_rate / _HUNDRED)
    if tax != line.tax_amount:
        problems.append(
            f"{where}: {_pct(line.tax_rate)}% IVA on {line.taxable_base} is {tax}, "
            f"not {line.tax_amount}"
        )
    for what, rate, amount in (
        ("recargo de equivalencia", line.surcharge_rate, line.surcharge_amount),
        ("IRPF withheld", line.withholding_rate, line.withholding_amount),
    ):
        if (rate is None) != (amount is None):
            problems.append(f"{where}: the {what} needs both its rate and its amount")
        elif rate is not None and amount is not None:
            expected = cents(line.taxable_base * rate / _HUNDRED)
            if amount != expected:
                problems.append(
                    f"{where}: {_pct(rate)}% {what} on {line.taxable_base} is {expected}, "
                    f"not {amount}"
                )
    return problems


def _group_name(group: tuple[Decimal, str | None, bool]) -> str:
    rate, exemption, surcharged = group
    return (
        f"IVA {_pct(rate)}%"
        + (f" exempt ({exemption})" if exemption else "")
        + (" with recargo" if surcharged else "")
    )


def _line_group(line: Line) -> tuple[Decimal, str | None, bool]:
    return (line.tax_rate, line.exemption, line.surcharge_rate is not None)


def _tax_problems(invoice: Invoice) -> list[str]:
    """The IVA breakdown against the lines, one entry per rate and exemption cause."""
    problems: list[str] = []
    groups = [tax.group for tax in invoice.taxes]
    for group in sorted({g for g in groups if groups.count(g) > 1}, key=str):
        problems.append(f"{_group_name(group)} appears more than once in the breakdown")
    line_groups = {_line_group(line) for line in invoice.lines}
    for group in sorted(line_groups - set(groups), key=str):
        problems.append(f"lines at {_group_name(group)} have no entry in the IVA breakdown")
    for tax in invoice.taxes:
        lines = [line for line in invoice.lines if _line_group(line) == tax.group]
        if not lines:
            problems.append(f"{_group_name(tax.group)} is in the breakdown but no line uses it")
            continue
        gross = _total(line.gross_amount for line in lines)
        base = _less_discount(gross, invoice.discount_rate)
        if base != tax.base:
            less = f" less the general discount, {base}" if invoice.general_discount else ""
            problems.append(
                f"the lines at IVA {_pct(tax.rate)}% add up to {gross}{less}, not {tax.base}"
            )
        # Either rounding is lawful: IVA on the summed base, or the sum of each line's IVA.
        on_base = cents(tax.base * tax.rate / _HUNDRED)
        by_line = _total(line.tax_amount for line in lines)
        if tax.amount not in (on_base, by_line):
            problems.append(
                f"IVA {_pct(tax.rate)}% on {tax.base} is {on_base} (or {by_line} line by line), "
                f"not {tax.amount}"
            )
        problems.extend(_surcharge_problems(tax, lines))
    return problems


def _surcharge_problems(tax: TaxTotal, lines: list[Line]) -> list[str]:
    where = f"IVA {_pct(tax.rate)}%"
    if (tax.surcharge_rate is None) != (tax.surcharge_amount is None):
        return [f"the recargo de equivalencia of {where} needs both its rate and its amount"]
    if any(line.surcharge_rate != tax.surcharge_rate for line in lines):
        return [f"the lines at {where} do not all carry its recargo de equivalencia"]
    if tax.surcharge_rate is None or tax.surcharge_amount is None:
        return []
    on_base = cents(tax.base * tax.surcharge_rate / _HUNDRED)
    by_line = _total(line.surcharge_amount or _ZERO for line in lines)
    if tax.surcharge_amount not in (on_base, by_line):
        return [
            f"a {_pct(tax.surcharge_rate)}% recargo de equivalencia on {tax.base} is {on_base} "
            f"(or {by_line} line by line), not {tax.surcharge_amount}"
        ]
    return []


def _withholding_problems(invoice: Invoice) -> list[str]:
    problems: list[str] = []
    rates = [w.rate for w in invoice.withholdings]
    for rate in sorted({r for r in rates if rates.count(r) > 1}):
        problems.append(f"IRPF {_pct(rate)}% appears more than once in the taxes withheld")
    line_rates = {line.withholding_rate for line in invoice.lines} - {None}
    for rate in sorted(r for r in line_rates - set(rates) if r is not None):
        problems.append(f"lines withholding IRPF {_pct(rate)}% have no entry in the taxes withheld")
    for withheld in invoice.withholdings:
        lines = [line for line in invoice.lines if line.withholding_rate == withheld.rate]
        if not lines:
            problems.append(f"IRPF {_pct(withheld.rate)}% is withheld but no line carries it")
            continue
        gross = _total(line.gross_amount for line in lines)
        base = _less_discount(gross, invoice.discount_rate)
        if base != withheld.base:
            problems.append(
                f"the lines withholding IRPF {_pct(withheld.rate)}% add up to {base}, "
                f"not {withheld.base}"
            )
        on_base = cents(withheld.base * withheld.rate / _HUNDRED)
        by_line = _total(line.withholding_amount or _ZERO for line in lines)
        if withheld.amount not in (on_base, by_line):
            problems.append(
                f"IRPF {_pct(withheld.rate)}% on {withheld.base} is {on_base} "
                f"(or {by_line} line by line), not {withheld.amount}"
            )
    return problems


def _check_header(invoice: Invoice) -> None:
    if invoice.currency != "EUR":
        raise FacturaeError(
            Said(
                f"currency {invoice.currency!r} is not supported: only EUR invoices are written "
                "(other currencies need EquivalentInEuros and exchange-rate details)",
                f"La moneda «{invoice.currency}» no se admite: solo se hace la Facturae de "
                "facturas en euros (EUR).",
            )
        )
    if invoice.invoice_class not in ("OO", "OR"):
        raise FacturaeError(f"invoice class {invoice.invoice_class!r} must be 'OO' or 'OR'")
    if invoice.document_type not in ("FC", "FA"):
        raise FacturaeError(f"document type {invoice.document_type!r} must be 'FC' or 'FA'")
    corrective = invoice.corrective
    if invoice.invoice_class == "OR" and corrective is None:
        raise FacturaeError("a rectifying invoice (class 'OR') needs its corrective details")
    if invoice.invoice_class == "OO" and corrective is not None:
        raise FacturaeError("corrective details are only allowed on a rectifying invoice ('OR')")
    if corrective is not None:
        if corrective.reason_code not in REASONS:
            raise FacturaeError(f"unknown rectification reason code {corrective.reason_code!r}")
        if corrective.correction_method not in CORRECTION_METHODS:
            raise FacturaeError(f"unknown correction method {corrective.correction_method!r}")
        if corrective.correction_method in ("01", "02") and not corrective.number:
            raise FacturaeError(
                Said(
                    "the number of the rectified invoice is required with correction method "
                    f"{corrective.correction_method!r}",
                    "Falta el número de la factura rectificada: una rectificativa tiene que "
                    "decir qué factura corrige.",
                )
            )
        if corrective.tax_period_end < corrective.tax_period_start:
            raise FacturaeError("the rectified tax period ends before it starts")


# --------------------------------------------------------------------------------------------
# XML
# --------------------------------------------------------------------------------------------


def _el(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    # Facturae's local elements are unqualified: only the root is in the fe namespace.
    child = etree.SubElement(parent, tag)
    if text is not None:
        child.text = text
    return child


def _amount_el(parent: etree._Element, tag: str, value: Decimal, what: str) -> None:
    _el(_el(parent, tag), "TotalAmount", _two(value, what))


def facturae_xml(invoice: Invoice) -> bytes:
    """Write the invoice as a Facturae 3.2.2 document (UTF-8), after checking its arithmetic."""
    _check_header(invoice)
    check_totals(invoice)
    root = etree.Element(f"{{{FACTURAE_NS}}}Facturae", nsmap={"fe": FACTURAE_NS})
    _file_header(root, invoice)
    parties = _el(root, "Parties")
    _party(_el(parties, "SellerParty"), invoice.seller)
    _party(_el(parties, "BuyerParty"), invoice.buyer)
    _invoice(_el(_el(root, "Invoices"), "Invoice"), invoice)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _file_header(root: etree._Element, invoice: Invoice) -> None:
    header = _el(root, "FileHeader")
    _el(header, "SchemaVersion", SCHEMA_VERSION)
    _el(header, "Modality", "I")  # one invoice per file
    _el(header, "InvoiceIssuerType", "EM")  # issued by the seller
    batch = _el(header, "Batch")
    # Issuer's tax id + first invoice number + series, as the schema documents it.
    identifier = invoice.seller.tax_identification_number + invoice.number
    _el(batch, "BatchIdentifier", identifier + (invoice.series_code or ""))
    _el(batch, "InvoicesCount", "1")
    _amount_el(batch, "TotalInvoicesAmount", invoice.invoice_total, "invoice total")
    _amount_el(batch, "TotalOutstandingAmount", invoice.outstanding, "outstanding amount")
    _amount_el(batch, "TotalExecutableAmount", invoice.executable, "executable amount")
    _el(batch, "InvoiceCurrencyCode", invoice.currency)


def _party(element: etree._Element, party: Party) -> None:
    tax = _el(element, "TaxIdentification")
    _el(tax, "PersonTypeCode", party.person_type_code)
    _el(tax, "ResidenceTypeCode", party.residence_type_code)
    _el(tax, "TaxIdentificationNumber", party.tax_identification_number)
    names = _individual_names(party)
    if names is None:
        entity = _el(element, "LegalEntity")
        _el(entity, "CorporateName", party.name.strip())
    else:
        entity = _el(element, "Individual")
        name, first_surname, second_surname = names
        _el(entity, "Name", name)
        _el(entity, "FirstSurname", first_surname)
        if second_surname:
            _el(entity, "SecondSurname", second_surname)
    _address(entity, party)
    if party.email:
        _el(_el(entity, "ContactDetails"), "ElectronicMail", party.email.strip())


def _individual_names(party: Party) -> tuple[str, str, str | None] | None:
    """(name, first surname, second surname) of a person whose name was given apart."""
    if party.person_type_code != "F" or not (party.first_surname or "").strip():
        return None
    assert party.first_surname is not None
    name = (party.given_name or party.name).strip()
    return name, party.first_surname.strip(), (party.second_surname or "").strip() or None


def _address(entity: etree._Element, party: Party) -> None:
    province = party.province.strip()
    province = _SHORT_PROVINCES.get(province.lower(), province)
    if party.in_spain:
        address = _el(entity, "AddressInSpain")
        _el(address, "Address", party.address.strip())
        _el(address, "PostCode", party.postal_code.strip())
        _el(address, "Town", party.town.strip())
        _el(address, "Province", province)
    else:
        address = _el(entity, "OverseasAddress")
        _el(address, "Address", party.address.strip())
        post_code_and_town = f"{party.postal_code.strip()} {party.town.strip()}".strip()
        _el(address, "PostCodeAndTown", post_code_and_town)
        _el(address, "Province", province or party.town.strip())  # required abroad too
    _el(address, "CountryCode", party.country_alpha3)


def _invoice(element: etree._Element, invoice: Invoice) -> None:
    header = _el(element, "InvoiceHeader")
    _el(header, "InvoiceNumber", invoice.number)
    if invoice.series_code:
        _el(header, "InvoiceSeriesCode", invoice.series_code)
    _el(header, "InvoiceDocumentType", invoice.document_type)
    _el(header, "InvoiceClass", invoice.invoice_class)
    if invoice.corrective is not None:
        _corrective(_el(header, "Corrective"), invoice.corrective)

    issue = _el(element, "InvoiceIssueData")
    _el(issue, "IssueDate", invoice.issue_date.isoformat())
    if invoice.operation_date is not None and invoice.operation_date != invoice.issue_date:
        _el(issue, "OperationDate", invoice.operation_date.isoformat())
    _el(issue, "InvoiceCurrencyCode", invoice.currency)
    _el(issue, "TaxCurrencyCode", invoice.currency)
    _el(issue, "LanguageName", invoice.language)

    outputs = _el(element, "TaxesOutputs")
    for tax in invoice.taxes:
        _tax(
            _el(outputs, "Tax"),
            tax.rate,
            tax.base,
            tax.amount,
            f"IVA {tax.rate}%",
            tax.surcharge_rate,
            tax.surcharge_amount,
        )
    if invoice.withholdings:
        withheld = _el(element, "TaxesWithheld")
        for item in invoice.withholdings:
            what = f"IRPF {item.rate}%"
            _withheld(_el(withheld, "Tax"), item.rate, item.base, item.amount, what)

    _totals(_el(element, "InvoiceTotals"), invoice)
    items = _el(element, "Items")
    for position, line in enumerate(invoice.lines, start=1):
        _line(_el(items, "InvoiceLine"), line, f"line {position}")
    if invoice.payment_due_date is not None or invoice.iban:
        _payment(_el(element, "PaymentDetails"), invoice)
    if invoice.legal_literals:
        literals = _el(element, "LegalLiterals")
        for text in invoice.legal_literals:
            _el(literals, "LegalReference", text[:250])


def _corrective(element: etree._Element, corrective: Corrective) -> None:
    if corrective.number:
        _el(element, "InvoiceNumber", corrective.number)
    if corrective.series_code:
        _el(element, "InvoiceSeriesCode", corrective.series_code)
    _el(element, "ReasonCode", corrective.reason_code)
    _el(element, "ReasonDescription", corrective.reason_description)
    period = _el(element, "TaxPeriod")
    _el(period, "StartDate", corrective.tax_period_start.isoformat())
    _el(period, "EndDate", corrective.tax_period_end.isoformat())
    _el(element, "CorrectionMethod", corrective.correction_method)
    _el(element, "CorrectionMethodDescription", corrective.correction_method_description)
    if corrective.additional_reason:
        _el(element, "AdditionalReasonDescription", corrective.additional_reason)
    if corrective.issue_date is not None:
        _el(element, "InvoiceIssueDate", corrective.issue_date.isoformat())


def _tax(
    element: etree._Element,
    rate: Decimal,
    base: Decimal,
    amount: Decimal,
    what: str,
    surcharge_rate: Decimal | None = None,
    surcharge_amount: Decimal | None = None,
) -> None:
    """A TaxOutputType: IVA, and its EquivalenceSurcharge (always two decimals) if any."""
    _el(element, "TaxTypeCode", IVA)
    _el(element, "TaxRate", _up_to_eight(rate, f"{what} rate"))
    _amount_el(element, "TaxableBase", base, f"{what} base")
    _amount_el(element, "TaxAmount", amount, f"{what} amount")
    if surcharge_rate is not None and surcharge_amount is not None:
        _el(element, "EquivalenceSurcharge", _two(surcharge_rate, f"{what} surcharge rate"))
        _amount_el(element, "EquivalenceSurchargeAmount", surcharge_amount, f"{what} surcharge")


def _withheld(
    element: etree._Element, rate: Decimal, base: Decimal, amount: Decimal, what: str
) -> None:
    """A TaxType in TaxesWithheld: IRPF."""
    _el(element, "TaxTypeCode", IRPF)
    _el(element, "TaxRate", _up_to_eight(rate, f"{what} rate"))
    _amount_el(element, "TaxableBase", base, f"{what} base")
    _amount_el(element, "TaxAmount", amount, f"{what} amount")


def _totals(element: etree._Element, invoice: Invoice) -> None:
    _el(element, "TotalGrossAmount", _two(invoice.total_gross_amount, "total gross amount"))
    discount = invoice.general_discount
    if discount is not None:
        item = _el(_el(element, "GeneralDiscounts"), "Discount")
        _el(item, "DiscountReason", discount.reason)
        _el(item, "DiscountRate", _up_to_eight(discount.rate, "general discount rate"))
        _el(item, "DiscountAmount", _two(discount.amount, "general discount"))
        _el(element, "TotalGeneralDiscounts", _two(discount.amount, "general discounts"))
    before_taxes = _two(invoice.gross_amount_before_taxes, "total before taxes")
    _el(element, "TotalGrossAmountBeforeTaxes", before_taxes)
    _el(element, "TotalTaxOutputs", _two(invoice.total_tax_outputs, "total tax outputs"))
    withheld = _two(invoice.total_taxes_withheld, "total taxes withheld")
    _el(element, "TotalTaxesWithheld", withheld)
    _el(element, "InvoiceTotal", _two(invoice.invoice_total, "invoice total"))
    _el(element, "TotalOutstandingAmount", _two(invoice.outstanding, "outstanding amount"))
    _el(element, "TotalExecutableAmount", _two(invoice.executable, "executable amount"))


def _line(element: etree._Element, line: Line, where: str) -> None:
    _el(element, "ItemDescription", line.description)
    _el(element, "Quantity", _quantity(line.quantity, f"{where} quantity"))
    _el(element, "UnitOfMeasure", UNITS)
    _el(element, "UnitPriceWithoutTax", _up_to_eight(line.unit_price, f"{where} unit price"))
    _el(element, "TotalCost", _two(line.total_cost, f"{where} total cost"))
    if line.discount_amount:
        discount = _el(_el(element, "DiscountsAndRebates"), "Discount")
        _el(discount, "DiscountReason", line.discount_reason)
        if line.discount_percent:
            rate = _up_to_eight(line.discount_percent, f"{where} discount percent")
            _el(discount, "DiscountRate", rate)
        _el(discount, "DiscountAmount", _two(line.discount_amount, f"{where} discount"))
    _el(element, "GrossAmount", _two(line.gross_amount, f"{where} gross amount"))
    if line.withholding_rate is not None and line.withholding_amount is not None:
        withheld = _el(_el(element, "TaxesWithheld"), "Tax")
        _withheld(
            withheld,
            line.withholding_rate,
            line.taxable_base,
            line.withholding_amount,
            f"{where} IRPF",
        )
    outputs = _el(element, "TaxesOutputs")
    _tax(
        _el(outputs, "Tax"),
        line.tax_rate,
        line.taxable_base,
        line.tax_amount,
        f"{where} IVA",
        line.surcharge_rate,
        line.surcharge_amount,
    )
    if line.exemption is not None and line.exemption[:1] in ("E", "N"):
        event = _el(element, "SpecialTaxableEvent")
        # 01 sujeta y exenta (E1–E6), 02 no sujeta (N1, N2); a reverse charge (S2) is subject
        # and stated in LegalLiterals.
        _el(event, "SpecialTaxableEventCode", "02" if line.exemption[0] == "N" else "01")
        _el(event, "SpecialTaxableEventReason", line.exemption_reason or "Operación exenta")
    if line.sku:
        _el(element, "ArticleCode", line.sku)


def _payment(element: etree._Element, invoice: Invoice) -> None:
    installment = _el(element, "Installment")
    due = invoice.payment_due_date or invoice.issue_date
    _el(installment, "InstallmentDueDate", due.isoformat())
    _el(installment, "InstallmentAmount", _two(invoice.executable, "installment amount"))
    _el(installment, "PaymentMeans", invoice.payment_means)
    if invoice.iban:
        iban = "".join(invoice.iban.split()).upper()
        _el(_el(installment, "AccountToBeCredited"), "IBAN", iban)


# --------------------------------------------------------------------------------------------
# Offline validation
# --------------------------------------------------------------------------------------------

_validation_lock = threading.Lock()


def schema_dir() -> Path:
    """The folder holding Facturaev3_2_2.xsd; PUENTE_STANDARDS_DIR names the `standards` one."""
    return xsd.standards_dir("facturae")


def _safe_parser() -> etree.XMLParser:
    # No network, no external DTD, no entity expansion: schemas and invoices are data only.
    return etree.XMLParser(no_network=True, load_dtd=False, resolve_entities=False)


@lru_cache(maxsize=4)
def _schema(folder: Path) -> etree.XMLSchema:
    path = folder / "Facturaev3_2_2.xsd"
    if not path.is_file() or not (folder / "xmldsig-core-schema.xsd").is_file():
        raise FacturaeError(
            f"the Facturae schemas are not in {folder}; set PUENTE_STANDARDS_DIR to the folder "
            "that holds facturae/Facturaev3_2_2.xsd and facturae/xmldsig-core-schema.xsd"
        )
    parser = _safe_parser()
    parser.resolvers.add(xsd.OfflineResolver(folder, FacturaeError))
    # The file starts with a UTF-8 BOM and uses CRLF line ends: both fine for libxml2.
    try:
        return etree.XMLSchema(etree.parse(str(path), parser))
    except (etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
        raise FacturaeError(f"cannot load the Facturae schema from {folder}: {exc}") from exc


def _parse(xml_bytes: bytes) -> etree._ElementTree:
    try:
        tree = etree.ElementTree(etree.fromstring(xml_bytes, _safe_parser()))
    except etree.XMLSyntaxError as exc:
        raise FacturaeSchemaError([f"not well-formed XML: {exc}"]) from None
    if tree.docinfo.doctype:
        raise FacturaeSchemaError(["a Facturae document must not carry a DOCTYPE"])
    return tree


def validate(xml_bytes: bytes) -> None:
    """Validate against the Facturae 3.2.2 XSD, offline; raise FacturaeSchemaError if invalid."""
    schema = _schema(schema_dir())
    tree = _parse(xml_bytes)
    with _validation_lock:  # one XMLSchema object, shared: validate one document at a time
        valid = schema.validate(tree)
        log = schema.error_log
    if not valid:
        raise FacturaeSchemaError([f"line {error.line}: {error.message}" for error in log])


# --------------------------------------------------------------------------------------------
# XAdES-EPES signature
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningCredentials:
    """A private key with its certificate and the chain up to the root; load once, reuse."""

    key: rsa.RSAPrivateKey = field(repr=False)
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = field(default=())  # intermediates (and root), if any

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()


def load_pkcs12(data: bytes, password: bytes | str | None) -> SigningCredentials:
    """Read a .p12/.pfx file (the way FNMT and other CAs deliver certificates)."""
    secret = password.encode() if isinstance(password, str) else password
    try:
        key, certificate, chain = pkcs12.load_key_and_certificates(data, secret)
    except ValueError as exc:
        raise FacturaeSignatureError(
            Said(
                f"cannot open the PKCS#12 file (wrong password or damaged file): {exc}",
                "No se puede abrir el certificado (.p12/.pfx): la contraseña no es la suya o "
                "el archivo está dañado. Revisa la contraseña.",
            )
        ) from None
    if key is None or certificate is None:
        raise FacturaeSignatureError(
            Said(
                "the PKCS#12 file holds no private key and certificate",
                "El archivo .p12/.pfx no tiene la clave privada y el certificado: expórtalo "
                "de nuevo con la clave privada incluida.",
            )
        )
    if not isinstance(key, rsa.RSAPrivateKey):
        raise FacturaeSignatureError(
            Said(
                f"the certificate's key is {type(key).__name__}; Facturae signatures need RSA",
                f"La clave del certificado es {type(key).__name__}, y la firma Facturae "
                "necesita una clave RSA: usa un certificado con clave RSA (como los de la FNMT).",
            )
        )
    if _spki(key.public_key()) != _spki(certificate.public_key()):
        raise FacturaeSignatureError(
            Said(
                "the private key does not belong to the certificate",
                "La clave privada del archivo no es la del certificado: exporta de nuevo el "
                "certificado con su clave.",
            )
        )
    return SigningCredentials(key, certificate, tuple(chain))


def _spki(public_key: Any) -> bytes:
    return bytes(
        public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def sign(xml_bytes: bytes, credentials: SigningCredentials) -> bytes:
    """Add an enveloped XAdES-EPES signature (Facturae policy v3.1) at the end of the document.

    The result must not be reformatted: any change, even whitespace, breaks the signature.
    """
    now = datetime.now(UTC)
    certificate = credentials.certificate
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise FacturaeSignatureError(
            Said(
                f"the certificate of {credentials.subject} is valid from "
                f"{certificate.not_valid_before_utc:%Y-%m-%d} to "
                f"{certificate.not_valid_after_utc:%Y-%m-%d}, not now",
                f"El certificado de {credentials.subject} solo vale del "
                f"{certificate.not_valid_before_utc:%d/%m/%Y} al "
                f"{certificate.not_valid_after_utc:%d/%m/%Y}: "
                + (
                    "ha caducado; renuévalo y configura el nuevo."
                    if now > certificate.not_valid_after_utc
                    else "aún no es válido; espera a esa fecha o usa otro certificado."
                ),
            )
        )
    root = _parse(xml_bytes).getroot()
    if root.tag != f"{{{FACTURAE_NS}}}Facturae":
        raise FacturaeSignatureError(f"not a Facturae {SCHEMA_VERSION} document: {root.tag}")
    signed = sign_enveloped(
        root, credentials, facturae_policy=True, description="Factura electrónica"
    )
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def sign_enveloped(
    root: etree._Element,
    credentials: SigningCredentials,
    *,
    facturae_policy: bool = False,
    description: str,
) -> etree._Element:
    """An enveloped XAdES signature (EPES under Facturae's policy, else BES) as the element's
    last child: Facturae files, and VERI*FACTU records kept without VERI*FACTU."""
    from invoicing import xades  # signxml (~11 MB) only in processes that sign

    if root.find(f"{{{DS_NS}}}Signature") is not None:
        raise FacturaeSignatureError("the document is already signed")
    try:
        return xades.sign(root, credentials, facturae_policy, description)
    except xades.SigningError as exc:
        raise FacturaeSignatureError(
            Said(f"signing failed: {exc}", f"No se ha podido firmar el documento: {exc}")
        ) from exc


def verify(
    xml_bytes: bytes,
    *,
    trusted_certificate: x509.Certificate | None = None,
    ca_pem_file: str | Path | None = None,
) -> str:
    """Check the XAdES-EPES signature and return the signer certificate's subject.

    Trust comes from `trusted_certificate` (the expected signer, pinned), else from the CAs in
    `ca_pem_file`, else from the system's CA bundle. Raise FacturaeSignatureError if the
    document was changed after signing, the policy is not Facturae's, or the signer is not
    trusted.
    """
    root = _parse(xml_bytes).getroot()
    signatures = root.findall(f".//{{{DS_NS}}}Signature")
    if len(signatures) != 1 or root[-1] is not signatures[0]:
        raise FacturaeSignatureError("expected exactly one ds:Signature, as the root's last child")
    references = signatures[0].findall(f"{{{DS_NS}}}SignedInfo/{{{DS_NS}}}Reference")
    if not any(reference.get("URI") == "" for reference in references):
        raise FacturaeSignatureError("the signature does not cover the whole document (URI='')")
    from invoicing import xades

    try:
        results = xades.verify(xml_bytes, trusted_certificate, ca_pem_file)
    except xades.SigningError as exc:
        raise FacturaeSignatureError(f"the signature does not verify: {exc}") from exc
    if trusted_certificate is not None:
        return trusted_certificate.subject.rfc4514_string()
    return _signer_subject(results[0].signature_xml, results[0].signature_key)


def _signer_subject(signature: etree._Element, signature_key: bytes) -> str:
    for element in signature.iterfind(f".//{{{DS_NS}}}X509Certificate"):
        der = b64decode("".join((element.text or "").split()))
        certificate = x509.load_der_x509_certificate(der)
        public = certificate.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if public == signature_key:
            return certificate.subject.rfc4514_string()
    raise FacturaeSignatureError("the signing certificate is not in the signature")
