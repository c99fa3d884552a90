"""The built-in CRM: companies, contacts and opportunities on one pipeline.

Marking an opportunity won records the `opportunity.won` outbox event, carrying the deal
exactly as every CRM trigger gives it (schemas/triggers/deal_won.json), in the same
transaction: the flows on the deal-won trigger start from it as from any CRM. An
opportunity converts to a quote, order or invoice, and shows its invoice and payment status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from database import utcnow
from invoicing import outbox
from invoicing.errors import InvalidDocumentError, NotFoundError, Said, message_of
from invoicing.fields import customer_problems
from invoicing.models import CrmCompany, CrmContact, Invoice, Opportunity, OpportunityLine
from invoicing.money import to_decimal
from invoicing.tax_ids import TaxIdError, parse_tax_id

SOURCE = "puente"  # the source of the deals and invoices the built-in CRM makes
STAGES = ("nueva", "cualificada", "propuesta", "negociacion", "ganada", "perdida")
STAGE_NAMES = {
    "nueva": "Nueva",
    "cualificada": "Cualificada",
    "propuesta": "Propuesta enviada",
    "negociacion": "Negociación",
    "ganada": "Ganada",
    "perdida": "Perdida",
}
WON, LOST = "ganada", "perdida"
WHAT_ES = {"company": "La empresa", "contact": "El contacto", "opportunity": "La oportunidad"}


@dataclass(frozen=True)
class LineInput:
    description: str
    quantity: Decimal
    unit_price: Decimal
    sku: str | None = None
    discount_percent: Decimal = Decimal("0")
    tax_rate: Decimal = Decimal("21")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LineInput:
        return cls(
            description=str(data["description"]),
            quantity=to_decimal(data["quantity"]),
            unit_price=to_decimal(data["unit_price"]),
            sku=data.get("sku") or None,
            discount_percent=to_decimal(data.get("discount_percent") or 0),
            tax_rate=to_decimal(data.get("tax_rate", 21)),
        )


def _texts(model: type[Any], fields: dict[str, Any]) -> dict[str, Any]:
    """`fields` as the columns of `model` take them: text no longer than the column, or
    left out (None); anything else is refused, every field at fault named."""
    errors: list[tuple[str, str]] = []
    for name, value in fields.items():
        if value is None:
            continue
        size = getattr(model, name).type.length
        if not isinstance(value, str):
            errors.append((name, Said("must be text", "debe ser un texto")))
        elif len(value) > size:
            errors.append(
                (
                    name,
                    Said(
                        f"is {len(value)} characters long; at most {size}",
                        f"tiene {len(value)} caracteres y caben como mucho {size}: acórtalo",
                    ),
                )
            )
    if errors:
        raise InvalidDocumentError(errors)
    return {k: v.strip() for k, v in fields.items() if v is not None}


def _contact_problems(texts: dict[str, Any]) -> list[tuple[str, str]]:
    """What the invoicing core would refuse in these contact fields once the deal is won
    (fields.customer_problems, and a tax id of the company's country), said now, when it is
    typed: the address problems first, then the tax id's, then the e-mail's."""
    country = texts.get("country", "ES")
    email = "owner_email" if "owner_email" in texts else "email"
    found = customer_problems(country, texts.get(email), texts.get("postal_code"))
    address = [(path.removeprefix("address."), said) for path, said in found if path != "email"]
    mail = [(email, said) for path, said in found if path == "email"]
    tax: list[tuple[str, str]] = []
    if texts.get("tax_id") and "country" not in dict(address):
        try:
            parse_tax_id(texts["tax_id"], country)
        except TaxIdError as exc:
            tax.append(("tax_id", message_of(exc)))
    return address + tax + mail


def _checked(model: type[Any], values: dict[str, Any]) -> dict[str, Any]:
    """`values` as texts the columns take, refused with every problem of contact data."""
    texts = _texts(model, values)
    if "country" in texts:
        texts["country"] = texts["country"].upper()
    problems = _contact_problems(texts)
    if problems:
        raise InvalidDocumentError(problems)
    return texts


def add_company(session: Session, **fields: Any) -> CrmCompany:
    if not str(fields.get("name") or "").strip():
        raise InvalidDocumentError(
            [("name", Said("the company needs a name", "la empresa necesita un nombre"))]
        )
    company = CrmCompany(**_checked(CrmCompany, fields))
    session.add(company)
    session.flush()
    return company


def add_contact(session: Session, company_id: int, **fields: Any) -> CrmContact:
    _get(session, CrmCompany, company_id, "company")
    contact = CrmContact(company_id=company_id, **_checked(CrmContact, fields))
    session.add(contact)
    session.flush()
    return contact


def add_opportunity(
    session: Session,
    *,
    title: str,
    company_id: int,
    lines: list[LineInput],
    stage: str = "nueva",
    owner_name: str | None = None,
    owner_email: str | None = None,
    campaign: str | None = None,
    currency: str = "EUR",
    expected_close: date | None = None,
    contact_id: int | None = None,
) -> Opportunity:
    _get(session, CrmCompany, company_id, "company")
    _check_stage(stage)
    if stage == WON:
        raise InvalidDocumentError(
            [
                (
                    "stage",
                    Said(
                        "create it in an open stage, then mark it won",
                        "créala en una etapa abierta y márcala luego como ganada",
                    ),
                )
            ]
        )
    if contact_id is not None:
        contact = session.get(CrmContact, contact_id)
        if contact is None or contact.company_id != company_id:
            raise InvalidDocumentError(
                [
                    (
                        "contact_id",
                        Said(
                            f"company {company_id} has no contact {contact_id}",
                            f"la empresa {company_id} no tiene el contacto {contact_id}: elige "
                            "uno de sus contactos",
                        ),
                    )
                ]
            )
    texts = _checked(
        Opportunity,
        {
            "title": title,
            "owner_name": owner_name,
            "owner_email": owner_email,
            "campaign": campaign,
            "currency": currency,
        },
    )
    opportunity = Opportunity(
        company_id=company_id,
        contact_id=contact_id,
        stage=stage,
        **texts,
        expected_close=expected_close,
        lines=[_line(i, line) for i, line in enumerate(lines, 1)],
    )
    session.add(opportunity)
    session.flush()
    return opportunity


def move(session: Session, opportunity_id: int, stage: str) -> Opportunity:
    """Move an opportunity to `stage`; to the won stage it is `mark_won`."""
    _check_stage(stage)
    if stage == WON:
        return mark_won(session, opportunity_id)
    opportunity = _locked(session, opportunity_id)
    opportunity.stage = stage
    session.flush()
    return opportunity


def mark_won(session: Session, opportunity_id: int) -> Opportunity:
    """Mark it won: the deal-won event is recorded with it. Already won: nothing new (a
    repeat never bills twice; the invoice is unique per opportunity in any case)."""
    opportunity = _locked(session, opportunity_id)
    if opportunity.stage == WON:
        return opportunity
    if not opportunity.lines:
        raise InvalidDocumentError(
            [
                (
                    "lines",
                    Said(
                        "the opportunity has no lines: add what was sold before marking it won",
                        "la oportunidad no tiene líneas: añade lo vendido antes de marcarla "
                        "como ganada",
                    ),
                )
            ]
        )
    opportunity.stage = WON
    opportunity.won_at = utcnow()
    session.flush()
    outbox.emit(session, "opportunity.won", opportunity.id, deal_of(opportunity))
    return opportunity


def deal_of(opportunity: Opportunity) -> dict[str, Any]:
    """The opportunity as the normalized deal every deal-won trigger gives."""
    company = opportunity.company
    customer: dict[str, Any] = {"name": company.name, "tax_id": company.tax_id or ""}
    if company.email:
        customer["email"] = company.email
    if company.street and company.postal_code and company.city:
        customer["address"] = {
            k: v
            for k, v in {
                "street": company.street,
                "postal_code": company.postal_code,
                "city": company.city,
                "province": company.province,
                "country": company.country,
            }.items()
            if v
        }
    deal: dict[str, Any] = {
        "deal_id": str(opportunity.id),
        "source": SOURCE,
        "title": opportunity.title,
        "won_at": (opportunity.won_at or utcnow()).astimezone(UTC).isoformat(),
        "currency": opportunity.currency,
        "amount": str(amount_of(opportunity)),
        "customer": customer,
        "lines": [
            {
                "description": line.description,
                "quantity": plain(line.quantity),
                "unit_price": plain(line.unit_price),
                "discount_percent": plain(line.discount_percent),
                "tax_rate": int(line.tax_rate),
                **({"sku": line.sku} if line.sku else {}),
            }
            for line in opportunity.lines
        ],
    }
    if opportunity.owner_name or opportunity.owner_email:
        owner = {"name": opportunity.owner_name, "email": opportunity.owner_email}
        deal["owner"] = {k: v for k, v in owner.items() if v}
    if opportunity.campaign:
        deal["campaign"] = opportunity.campaign
    return deal


def plain(value: Decimal) -> str:
    """A decimal as people write it: no exponent, no trailing zeros (20, 95.5)."""
    return format(value.normalize(), "f")


def amount_of(opportunity: Opportunity) -> Decimal:
    """The lines' total before IVA, after their discounts, to the cent."""
    total = sum(
        (
            line.quantity * line.unit_price * (1 - line.discount_percent / 100)
            for line in opportunity.lines
        ),
        Decimal("0"),
    )
    return total.quantize(Decimal("0.01"))


def documents_of(session: Session, opportunity_id: int) -> list[Invoice]:
    """The quotes, orders and invoices made for the opportunity, oldest first."""
    return list(
        session.scalars(
            select(Invoice)
            .where(Invoice.source == SOURCE, Invoice.external_ref == str(opportunity_id))
            .order_by(Invoice.id)
        )
    )


def _line(position: int, line: LineInput) -> OpportunityLine:
    if line.quantity <= 0:
        raise InvalidDocumentError(
            [
                (
                    f"lines[{position - 1}].quantity",
                    Said("must be more than 0", "debe ser más de 0"),
                )
            ]
        )
    return OpportunityLine(
        position=position,
        sku=line.sku,
        description=line.description,
        quantity=line.quantity,
        unit_price=line.unit_price,
        discount_percent=line.discount_percent,
        tax_rate=line.tax_rate,
    )


def _check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise InvalidDocumentError(
            [
                (
                    "stage",
                    Said(
                        f"must be one of: {', '.join(STAGES)}",
                        f"debe ser una de estas: {', '.join(STAGE_NAMES.values())}",
                    ),
                )
            ]
        )


def _locked(session: Session, opportunity_id: int) -> Opportunity:
    opportunity = session.scalar(
        select(Opportunity).where(Opportunity.id == opportunity_id).with_for_update()
    )
    if opportunity is None:
        raise NotFoundError(
            Said(
                f"opportunity {opportunity_id} does not exist",
                f"La oportunidad {opportunity_id} no existe: puede que se haya borrado.",
            )
        )
    return opportunity


def _get(session: Session, model: Any, id_: int, what: str) -> Any:
    row = session.get(model, id_)
    if row is None:
        raise NotFoundError(
            Said(
                f"{what} {id_} does not exist",
                f"{WHAT_ES.get(what, what)} {id_} no existe: puede que se haya borrado.",
            )
        )
    return row
