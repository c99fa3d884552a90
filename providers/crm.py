"""What every CRM connection shares: its settings with their defaults, and the rules that
turn a CRM's deal into the normalized deal a flow invoices (schemas/common/crm_deal.json).

Each CRM module (actions/<crm>.py) reads the deal, its lines and its company through the
CRM's API and hands them to `normalized`; everything after that is the same for all CRMs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from connector.connections import ConnectionView
from invoicing.errors import message_of
from invoicing.tax_ids import TaxIdError, parse_tax_id

# The connection settings a CRM connection may set, and their defaults.
DEFAULTS: dict[str, Any] = {
    "tax_id_field": "nif",  # the company / account / organization field holding the NIF
    "won_stages": None,  # None: closed and won, as the CRM's pipeline metadata says
    "default_tax_rate": 21,  # IVA for lines whose product is not in our catalog
    "invoice_number_field": "puente_invoice_number",
    "invoice_url_field": "puente_invoice_url",
    "payment_status_field": "puente_payment_status",  # "Pendiente" / "Cobrado"
}


# Country names as people type them in a CRM's address fields, to ISO 3166 alpha-2.
COUNTRIES = {
    "espana": "ES", "españa": "ES", "spain": "ES", "espagne": "ES", "spanien": "ES",
    "portugal": "PT", "france": "FR", "francia": "FR", "andorra": "AD",
    "italy": "IT", "italia": "IT", "germany": "DE", "alemania": "DE", "deutschland": "DE",
    "united kingdom": "GB", "reino unido": "GB", "uk": "GB", "ireland": "IE", "irlanda": "IE",
    "netherlands": "NL", "países bajos": "NL", "paises bajos": "NL", "holanda": "NL",
    "belgium": "BE", "bélgica": "BE", "belgica": "BE", "mexico": "MX", "méxico": "MX",
    "united states": "US", "estados unidos": "US", "usa": "US",
}  # fmt: skip


def country_code(*values: Any) -> str | None:
    """The first of `values` that is a country: two letters as they are, or a known name."""
    for value in values:
        text = str(value).strip() if value not in (None, "") else ""
        if len(text) == 2 and text.isalpha():
            return text.upper()
        if text.casefold() in COUNTRIES:
            return COUNTRIES[text.casefold()]
    return None


@dataclass(frozen=True)
class CrmSettings:
    tax_id_field: str
    won_stages: tuple[str, ...] | None
    default_tax_rate: int
    invoice_number_field: str
    invoice_url_field: str
    payment_status_field: str

    @classmethod
    def of(cls, view: ConnectionView) -> CrmSettings:
        given = {**DEFAULTS, **{k: v for k, v in view.settings.items() if v is not None}}
        stages = given["won_stages"]
        return cls(
            tax_id_field=str(given["tax_id_field"]),
            won_stages=tuple(str(s) for s in stages) if stages else None,
            default_tax_rate=int(given["default_tax_rate"]),
            invoice_number_field=str(given["invoice_number_field"]),
            invoice_url_field=str(given["invoice_url_field"]),
            payment_status_field=str(given["payment_status_field"]),
        )

    def won(self, stage: str | None, won_by_metadata: Iterable[str]) -> bool:
        """Whether `stage` counts as won: the configured stages, else the pipeline's."""
        if stage is None:
            return False
        return stage in (self.won_stages if self.won_stages else tuple(won_by_metadata))


@dataclass(frozen=True)
class Company:
    name: str | None
    tax_id: str | None
    email: str | None = None
    street: str | None = None
    postal_code: str | None = None
    city: str | None = None
    province: str | None = None
    country: str | None = None


@dataclass(frozen=True)
class Line:
    description: str
    quantity: Any
    unit_price: Any
    sku: str | None = None
    discount_percent: Any = None
    tax_rate: Any = None  # from the CRM when it has one; else the catalog or the default


def normalized(
    *,
    source: str,
    deal_id: str,
    title: str | None,
    stage: str | None,
    won: bool,
    won_at: str,
    currency: str | None,
    amount: Any,
    owner: Mapping[str, Any] | None,
    company: Company | None,
    lines: list[Line],
    settings: CrmSettings,
    deal_url: str | None = None,
) -> dict[str, Any]:
    """The deal as every flow sees it, with `problems`: what keeps it from being invoiced,
    in words its owner understands (empty when it can be)."""
    problems = _problems(company, lines, settings)
    deal: dict[str, Any] = {
        "deal_id": deal_id,
        "source": source,
        "title": title or f"Oportunidad {deal_id}",
        "won_at": won_at,
        "stage": stage,
        "is_won": won,
        "currency": (currency or "EUR").upper(),
        "customer": _customer(company),
        "lines": [_line(line, settings) for line in lines],
        "problems": problems,
        "problem": " ".join(problems) or None,
        "deal_url": deal_url,
    }
    if amount not in (None, ""):
        deal["amount"] = str(amount)
    if owner:
        deal["owner"] = {k: v for k, v in owner.items() if v}
    return deal


def _customer(company: Company | None) -> dict[str, Any]:
    if company is None:
        return {"name": "(sin empresa)", "tax_id": ""}
    return customer_of(company, "(sin nombre)")


def customer_of(company: Company, unnamed: str) -> dict[str, Any]:
    """The company as the customer a flow writes (party_draft.json): its name (`unnamed`
    when it has none), NIF/CIF (perhaps still empty), e-mail and address when complete."""
    customer: dict[str, Any] = {
        "name": company.name or unnamed,
        "tax_id": company.tax_id or "",
    }
    if company.email:
        customer["email"] = company.email
    address = {
        "street": company.street,
        "postal_code": company.postal_code,
        "city": company.city,
        "province": company.province,
        "country": company.country,
    }
    if company.street and company.postal_code and company.city:
        customer["address"] = {k: v for k, v in address.items() if v}
    return customer


def _line(line: Line, settings: CrmSettings) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": line.description[:500] or "(sin descripción)",
        "quantity": str(line.quantity),
        "unit_price": str(line.unit_price if line.unit_price is not None else "0"),
        "tax_rate": _rate(line.tax_rate, settings.default_tax_rate),
    }
    if line.sku:
        out["sku"] = str(line.sku)[:64]
    if line.discount_percent not in (None, "", 0, "0"):
        out["discount_percent"] = str(line.discount_percent)
    return out


def _rate(rate: Any, default: int) -> int:
    try:
        value = int(float(rate))
    except (TypeError, ValueError):
        return default
    return value if value in (0, 4, 10, 21) else default


def _problems(company: Company | None, lines: list[Line], settings: CrmSettings) -> list[str]:
    problems = []
    name = (company.name if company else None) or "(sin empresa asociada)"
    if company is None:
        problems.append(
            "La oportunidad no tiene empresa asociada: asóciale la empresa cliente con su "
            "NIF/CIF y vuelve a marcarla como ganada."
        )
    elif not company.tax_id:
        problems.append(
            f"Falta el NIF/CIF del cliente en la empresa {name} (campo "
            f"'{settings.tax_id_field}'): complétalo y vuelve a marcar la oportunidad como ganada."
        )
    else:
        try:
            parse_tax_id(company.tax_id, company.country or "ES")
        except TaxIdError as exc:
            why = getattr(message_of(exc), "es", str(exc))
            problems.append(
                f"Empresa {name}: {why}. Corrígelo en el CRM y vuelve a marcar la oportunidad "
                "como ganada."
            )
    if not lines:
        problems.append(
            "La oportunidad no tiene líneas de producto: añade los productos vendidos con su "
            "cantidad y precio y vuelve a marcarla como ganada."
        )
    for line in lines:
        if line.unit_price in (None, "") and not line.sku:
            problems.append(
                f"La línea '{line.description}' no tiene precio ni referencia de catálogo: "
                "indica su precio y vuelve a marcar la oportunidad como ganada."
            )
    return problems
