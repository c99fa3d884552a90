"""Operations of the invoicing core, each inside the caller's database transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from invoicing import deals, issuing, outbox, payments
from invoicing.errors import InvalidDocumentError
from invoicing.models import Customer, Deal, Invoice, InvoiceLine, InvoiceStatus, InvoiceTax
from invoicing.money import AmountError, document_totals, line_amounts, to_decimal
from invoicing.tax_ids import TaxIdError, parse_tax_id

IVA_RATES = frozenset(Decimal(r) for r in ("0", "4", "10", "21"))
# Decimals each line value may have (Facturae allows 8 on quantities and prices).
DECIMALS = {"quantity": 8, "unit_price": 8, "discount_percent": 4, "tax_rate": 4}


@dataclass(frozen=True)
class CustomerData:
    name: str
    tax_id: str
    email: str | None = None
    street: str | None = None
    postal_code: str | None = None
    city: str | None = None
    province: str | None = None
    country: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CustomerData:
        address = data.get("address") or {}
        return cls(
            name=data["name"].strip(),
            tax_id=data["tax_id"],
            email=data.get("email"),
            street=address.get("street"),
            postal_code=address.get("postal_code"),
            city=address.get("city"),
            province=address.get("province"),
            country=address.get("country"),
        )


@dataclass(frozen=True)
class LineData:
    description: str
    quantity: object
    unit_price: object
    tax_rate: object
    discount_percent: object = 0
    sku: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LineData:
        return cls(
            description=data["description"],
            quantity=data["quantity"],
            unit_price=data["unit_price"],
            tax_rate=data["tax_rate"],
            discount_percent=data.get("discount_percent") or 0,
            sku=data.get("sku"),
        )


@dataclass(frozen=True)
class CustomerResult:
    customer: Customer
    created: bool
    # The stored name wins (fiscal master data); a different incoming name is reported.
    name_differs: bool


@dataclass(frozen=True)
class DraftResult:
    invoice: Invoice
    created: bool
    customer: CustomerResult


class Invoicing:
    """The invoicing core bound to one SQLAlchemy session; the caller commits."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def find_or_create_customer(self, data: CustomerData) -> CustomerResult:
        """Return the customer with this tax id, creating it if there is none."""
        try:
            tax_id = parse_tax_id(data.tax_id, data.country)
        except TaxIdError as exc:
            raise InvalidDocumentError([("customer.tax_id", str(exc))]) from None
        existing = self._customer_by_tax_id(tax_id.value)
        if existing is not None:
            return CustomerResult(existing, False, _differs(existing.name, data.name))
        customer = Customer(
            tax_id=tax_id.value,
            tax_id_kind=tax_id.kind,
            country=tax_id.country,
            name=data.name,
            email=data.email,
            street=data.street,
            postal_code=data.postal_code,
            city=data.city,
            province=data.province,
        )
        try:
            with self.session.begin_nested():
                self.session.add(customer)
        except IntegrityError:
            # Another transaction created it between our read and our insert.
            existing = self._customer_by_tax_id(tax_id.value)
            if existing is None:
                raise
            return CustomerResult(existing, False, _differs(existing.name, data.name))
        outbox.emit(
            self.session,
            "customer.created",
            customer.id,
            {
                "customer_id": customer.id,
                "tax_id": customer.tax_id,
                "name": customer.name,
            },
        )
        return CustomerResult(customer, True, False)

    def create_draft_invoice(
        self,
        *,
        customer: CustomerData,
        lines: Sequence[LineData],
        currency: str = "EUR",
        source: str | None = None,
        external_ref: str | None = None,
        idempotency_key: str | None = None,
        notes: str | None = None,
    ) -> DraftResult:
        """Create a draft invoice, or return the one already made for this key or deal."""
        prepared = _prepare_lines(lines)
        found = self._existing_draft(idempotency_key, source, external_ref)
        if found is not None:
            return self._already_made(found, customer)
        party = self.find_or_create_customer(customer)
        totals = document_totals((line.base, line.tax_rate) for line in prepared)
        if totals.total < 0:
            raise InvalidDocumentError(
                [
                    (
                        "lines",
                        f"the invoice total would be negative ({totals.total}); "
                        "a refund needs a rectifying invoice",
                    )
                ]
            )
        invoice = Invoice(
            kind="invoice",
            status=InvoiceStatus.DRAFT,
            customer=party.customer,
            currency=currency,
            idempotency_key=idempotency_key,
            source=source,
            external_ref=external_ref,
            base_total=totals.base,
            tax_total=totals.tax,
            total=totals.total,
            notes=notes,
            lines=prepared,
            taxes=[InvoiceTax(rate=t.rate, base=t.base, amount=t.amount) for t in totals.taxes],
        )
        try:
            with self.session.begin_nested():
                self.session.add(invoice)
        except IntegrityError:
            found = self._existing_draft(idempotency_key, source, external_ref)
            if found is None:
                raise
            return self._already_made(found, customer)
        outbox.emit(
            self.session,
            "invoice.drafted",
            invoice.id,
            {
                "invoice_id": invoice.id,
                "customer_id": party.customer.id,
                "total": str(totals.total),
                "external_ref": external_ref,
                "source": source,
            },
        )
        return DraftResult(invoice, True, party)

    def _already_made(self, invoice: Invoice, customer: CustomerData) -> DraftResult:
        # The first draft stands; nothing else (not even a customer) is created for a repeat.
        stored = invoice.customer
        return DraftResult(
            invoice, False, CustomerResult(stored, False, _differs(stored.name, customer.name))
        )

    def record_deal(self, data: deals.DealData) -> tuple[Deal, bool]:
        """Keep a won deal for the reports (see invoicing.deals.record_deal)."""
        return deals.record_deal(self.session, data)

    def issue(self, invoice_id: int, series_code: str | None = None) -> issuing.Issued:
        """Number, date and chain a draft (see invoicing.issuing.issue)."""
        return issuing.issue(self.session, invoice_id, series_code=series_code)

    def record_payment(
        self,
        invoice_id: int,
        amount: object,
        paid_on: date,
        *,
        method: str | None = None,
        reference: str | None = None,
        idempotency_key: str | None = None,
    ) -> payments.Recorded:
        """Record money received (see invoicing.payments.record_payment)."""
        return payments.record_payment(
            self.session,
            invoice_id,
            amount,
            paid_on,
            method=method,
            reference=reference,
            idempotency_key=idempotency_key,
        )

    def _customer_by_tax_id(self, tax_id: str) -> Customer | None:
        return self.session.scalar(select(Customer).where(Customer.tax_id == tax_id))

    def _existing_draft(
        self, idempotency_key: str | None, source: str | None, external_ref: str | None
    ) -> Invoice | None:
        if idempotency_key is not None:
            found = self.session.scalar(
                select(Invoice).where(Invoice.idempotency_key == idempotency_key)
            )
            if found is not None:
                return found
        if source is not None and external_ref is not None:
            return self.session.scalar(
                select(Invoice).where(
                    Invoice.kind == "invoice",
                    Invoice.source == source,
                    Invoice.external_ref == external_ref,
                )
            )
        return None


def _differs(stored: str, incoming: str) -> bool:
    return " ".join(stored.casefold().split()) != " ".join(incoming.casefold().split())


def _prepare_lines(lines: Sequence[LineData]) -> list[InvoiceLine]:
    errors: list[tuple[str, str]] = []
    prepared: list[InvoiceLine] = []
    if not lines:
        errors.append(("lines", "an invoice needs at least one line"))
    for i, line in enumerate(lines):
        where = f"lines[{i}]"
        values: dict[str, Decimal] = {}
        for name in ("quantity", "unit_price", "discount_percent", "tax_rate"):
            try:
                values[name] = to_decimal(getattr(line, name), name)
            except AmountError as exc:
                errors.append((f"{where}.{name}", str(exc)))
        if len(values) < 4:
            continue
        quantity, price = values["quantity"], values["unit_price"]
        discount, rate = values["discount_percent"], values["tax_rate"]
        for name, most in DECIMALS.items():
            exponent = values[name].normalize().as_tuple().exponent
            if isinstance(exponent, int) and -exponent > most:
                errors.append((f"{where}.{name}", f"at most {most} decimals are allowed"))
        if quantity == 0:
            errors.append((f"{where}.quantity", "must not be zero"))
        if not Decimal(0) <= discount <= Decimal(100):
            errors.append((f"{where}.discount_percent", "must be between 0 and 100"))
        if rate not in IVA_RATES:
            errors.append(
                (f"{where}.tax_rate", f"{rate} is not a Spanish IVA rate (21, 10, 4 or 0)")
            )
        if not line.description.strip():
            errors.append((f"{where}.description", "must not be empty"))
        if errors:
            continue
        amounts = line_amounts(quantity, price, discount)
        prepared.append(
            InvoiceLine(
                position=i + 1,
                sku=line.sku,
                description=line.description.strip(),
                quantity=quantity,
                unit_price=price,
                discount_percent=discount,
                tax_rate=rate,
                gross=amounts.gross,
                discount=amounts.discount,
                base=amounts.base,
            )
        )
    if errors:
        raise InvalidDocumentError(errors)
    return prepared
