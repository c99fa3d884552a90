"""Operations of the invoicing core, each inside the caller's database transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, or_, select
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from invoicing.facturae import SigningCredentials

from database import insert_new, store_new
from invoicing import (
    catalog,
    deals,
    documents,
    fields,
    issuing,
    mailer,
    outbox,
    payments,
    totals,
)
from invoicing.errors import (
    DocumentStateError,
    InvalidDocumentError,
    NotFoundError,
    Said,
    message_of,
)
from invoicing.models import (
    Customer,
    Deal,
    DocumentKind,
    Invoice,
    InvoiceEmail,
    InvoiceLine,
    InvoiceStatus,
    InvoiceType,
)
from invoicing.money import AmountError, line_amounts, to_decimal, too_many_decimals
from invoicing.tax_ids import TaxIdError, parse_tax_id
from invoicing.totals import checked_totals

# Decimals each line value may have (Facturae allows 8 on quantities and prices).
DECIMALS = {"quantity": 8, "unit_price": 8, "discount_percent": 4, "tax_rate": 4}
MAX_PAYMENT_DAYS = 365


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
    # Used when the customer is created; an existing customer keeps its stored terms
    # (fiscal master data: change them with PATCH /customers/<id>).
    equivalence_surcharge: bool = False
    payment_days: int = 0
    # A person's given name and surnames apart (Facturae writes them as such).
    given_name: str | None = None
    first_surname: str | None = None
    second_surname: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CustomerData:
        address = data.get("address") or {}
        individual = data.get("individual") or {}
        return cls(
            given_name=individual.get("given_name"),
            first_surname=individual.get("first_surname"),
            second_surname=individual.get("second_surname"),
            name=data["name"].strip(),
            tax_id=data["tax_id"],
            email=data.get("email"),
            street=address.get("street"),
            postal_code=address.get("postal_code"),
            city=address.get("city"),
            province=address.get("province"),
            country=address.get("country"),
            equivalence_surcharge=data.get("equivalence_surcharge") or False,
            payment_days=data.get("payment_days") or 0,
        )


@dataclass(frozen=True)
class LineData:
    """A line as sent; with a catalog SKU, description, price and IVA may be left out."""

    description: str | None
    quantity: object
    unit_price: object | None
    tax_rate: object | None
    discount_percent: object = 0
    sku: str | None = None
    exemption_cause: str | None = None
    withholding_rate: object | None = None  # IRPF %; a catalog SKU's own rate always wins
    service: bool = False  # a service, not goods (no recargo); a catalog SKU's own says

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LineData:
        return cls(
            description=data.get("description"),
            quantity=data["quantity"],
            unit_price=data.get("unit_price"),
            tax_rate=data.get("tax_rate"),
            discount_percent=data.get("discount_percent") or 0,
            sku=data.get("sku") or None,
            exemption_cause=data.get("exemption_cause"),
            withholding_rate=data.get("withholding_rate"),
            service=bool(data.get("service")),
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
        country = (data.country or "").strip().upper() or None
        if country is not None and (problem := fields.country_problem(country)) is not None:
            raise InvalidDocumentError([("customer.address.country", problem)])
        try:
            tax_id = parse_tax_id(data.tax_id, country)
        except TaxIdError as exc:
            raise InvalidDocumentError([("customer.tax_id", message_of(exc))]) from None
        existing = self._customer_by_tax_id(tax_id.value)
        if existing is not None:
            return CustomerResult(existing, False, _differs(existing.name, data.name))
        errors = check_terms(tax_id.country, data.equivalence_surcharge, data.payment_days)
        errors += fields.customer_problems(tax_id.country, data.email, data.postal_code)
        errors += individual_problems(data.given_name, data.first_surname, data.second_surname)
        if errors:
            raise InvalidDocumentError([(f"customer.{path}", m) for path, m in errors])
        values = {
            "tax_id": tax_id.value,
            "tax_id_kind": tax_id.kind,
            "country": tax_id.country,
            "name": data.name,
            "given_name": (data.given_name or "").strip() or None,
            "first_surname": (data.first_surname or "").strip() or None,
            "second_surname": (data.second_surname or "").strip() or None,
            "email": data.email,
            "street": data.street,
            "postal_code": data.postal_code,
            "city": data.city,
            "province": data.province,
            "equivalence_surcharge": data.equivalence_surcharge,
            "payment_days": data.payment_days,
        }
        customer = insert_new(self.session, Customer, values, unique=["tax_id"])
        if customer is None:  # another transaction created it between our read and our insert
            existing = self._customer_by_tax_id(tax_id.value)
            assert existing is not None  # the conflict was with it
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
        invoice_type: str = InvoiceType.COMPLETE,
        kind: str = DocumentKind.INVOICE,
        discount_percent: object = 0,
        operation_date: object = None,
    ) -> DraftResult:
        """Create a draft (invoice, quote, order or delivery note), or return the one made
        before for this key or deal."""
        if kind not in set(DocumentKind):
            raise InvalidDocumentError(
                [
                    (
                        "kind",
                        Said(
                            f"must be one of {', '.join(DocumentKind)}",
                            f"debe ser uno de estos: {', '.join(DocumentKind)}",
                        ),
                    )
                ]
            )
        if invoice_type not in (InvoiceType.COMPLETE, InvoiceType.SIMPLIFIED):
            raise InvalidDocumentError(
                [
                    (
                        "invoice_type",
                        Said(
                            "must be F1 (complete) or F2 "
                            "(simplified); rectifying invoices come from /rectify",
                            "debe ser F1 (completa) o F2 (simplificada); una rectificativa se "
                            "hace desde la factura que corrige",
                        ),
                    )
                ]
            )
        prepared = prepare_lines(self.session, lines, source)
        discount = totals.discount_percent(discount_percent)
        operated = parse_operation_date(operation_date)
        found = self._existing_draft(idempotency_key, source, external_ref, kind)
        if found is not None:
            return self._already_made(found, customer)
        party = self.find_or_create_customer(customer)
        amounts = checked_totals(
            prepared,
            invoice_type,
            discount=discount,
            equivalence_surcharge=party.customer.equivalence_surcharge,
        )
        invoice = Invoice(
            kind=kind,
            status=InvoiceStatus.DRAFT,
            invoice_type=invoice_type,
            customer=party.customer,
            currency=currency,
            idempotency_key=idempotency_key,
            source=source,
            external_ref=external_ref,
            discount_percent=discount,
            notes=notes,
            operation_date=operated,
            lines=prepared,
        )
        totals.fill(invoice, amounts)
        if not store_new(self.session, invoice, "lines", "taxes", "withholdings"):
            # Made a moment ago by another transaction (the same key, or the same deal).
            found = self._existing_draft(idempotency_key, source, external_ref, kind)
            assert found is not None  # the conflict was with it
            return self._already_made(found, customer)
        if kind != DocumentKind.INVOICE:
            return DraftResult(invoice, True, party)
        outbox.drafted(self.session, invoice, external_ref=external_ref, source=source)
        return DraftResult(invoice, True, party)

    def edit_draft(
        self,
        invoice_id: int,
        *,
        lines: Sequence[LineData] | None = None,
        customer: CustomerData | None = None,
        notes: str | None = None,
        discount_percent: object | None = None,
    ) -> Invoice:
        """Change a draft's lines, customer, general discount or notes; issued documents never
        change. The totals follow: the customer decides the recargo de equivalencia."""
        invoice = self.session.scalar(
            select(Invoice).where(Invoice.id == invoice_id).with_for_update()
        )
        if invoice is None:
            raise NotFoundError(
                Said(
                    f"document {invoice_id} does not exist",
                    f"El documento {invoice_id} no existe: puede que se haya borrado.",
                )
            )
        if invoice.status != InvoiceStatus.DRAFT:
            raise DocumentStateError(
                Said(
                    f"{invoice.kind} {invoice.number or invoice.id} is {invoice.status}: only "
                    "drafts change (correct an issued invoice with a rectifying one)",
                    "Solo se cambian los borradores: corrige una factura emitida con una "
                    "rectificativa.",
                )
            )
        if lines is not None:
            if any(line.source_line_id for line in invoice.lines):
                raise DocumentStateError(
                    Said(
                        "this draft was converted from another document: convert again with "
                        "the quantities you want instead of editing its lines",
                        "Este borrador viene de convertir otro documento: vuelve a convertirlo "
                        "con las cantidades que quieras en vez de cambiar sus líneas.",
                    )
                )
            if documents_made_from(self.session, invoice):
                raise DocumentStateError(
                    Said(
                        "documents were made from this one: edit those, or cancel them first",
                        "Se han hecho otros documentos a partir de este: cambia esos, o "
                        "anúlalos primero.",
                    )
                )
        prepared = prepare_lines(self.session, lines, invoice.source) if lines is not None else None
        if discount_percent is not None:
            invoice.discount_percent = totals.discount_percent(discount_percent)
        if customer is not None:
            invoice.customer = self.find_or_create_customer(customer).customer
        amounts = totals.totals_of(invoice, prepared)  # checked before anything is replaced
        if prepared is not None:
            invoice.lines.clear()
            self.session.flush()  # the old rows go before the new ones take their places
            invoice.lines.extend(prepared)
        totals.replace(self.session, invoice, amounts)
        if notes is not None:
            invoice.notes = notes.strip() or None
        self.session.flush()
        return invoice

    def delete_draft(self, invoice_id: int) -> None:
        """Delete a draft before it is issued (nothing was numbered or registered); its deal
        shows as never billed again. A draft other documents were made from stays."""
        invoice = self.session.scalar(
            select(Invoice).where(Invoice.id == invoice_id).with_for_update()
        )
        if invoice is None:
            raise NotFoundError(
                Said(
                    f"document {invoice_id} does not exist",
                    f"El documento {invoice_id} no existe: puede que se haya borrado.",
                )
            )
        if invoice.status != InvoiceStatus.DRAFT or invoice.number is not None:
            raise DocumentStateError(
                Said(
                    f"{invoice.kind} {invoice.number or invoice.id} is {invoice.status}: only "
                    "drafts are deleted (cancel or rectify an issued invoice)",
                    "Solo se borran los borradores: una factura emitida se anula o se rectifica.",
                )
            )
        if documents_made_from(self.session, invoice):
            raise DocumentStateError(
                Said(
                    "documents were made from this one: delete those first",
                    "Se han hecho otros documentos a partir de este: bórralos primero.",
                )
            )
        self.session.delete(invoice)
        self.session.flush()

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

    def send_invoice(
        self,
        invoice_id: int,
        settings: mailer.MailSettings,
        *,
        to: str | None = None,
        credentials: SigningCredentials | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[InvoiceEmail, bool]:
        """Email an issued invoice (see invoicing.mailer); True when this call sent it."""
        if idempotency_key is not None:
            sent = self.session.scalar(
                select(InvoiceEmail).where(InvoiceEmail.idempotency_key == idempotency_key)
            )
            if sent is not None:
                return sent, False
        email = mailer.send_invoice(
            self.session,
            invoice_id,
            settings,
            to=to,
            credentials=credentials,
            idempotency_key=idempotency_key,
        )
        return email, True

    def convert(
        self,
        document_id: int,
        to: str,
        takes: Sequence[documents.Take] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> tuple[Invoice, bool]:
        """Convert a document (see invoicing.documents.convert); True when this call did."""
        if idempotency_key is not None:
            made = self.session.scalar(
                select(Invoice).where(Invoice.idempotency_key == idempotency_key)
            )
            if made is not None:
                return made, False
        return documents.convert(
            self.session, [document_id], to, takes, idempotency_key=idempotency_key
        ), True

    def cancel(self, invoice_id: int, reason: str) -> tuple[Invoice, bool]:
        """Cancel an issued invoice; True when this call cancelled it."""
        from invoicing import corrections  # corrections builds on this module

        before = self.session.get(Invoice, invoice_id)
        already = before is not None and before.status == InvoiceStatus.CANCELLED
        return corrections.cancel(self.session, invoice_id, reason), not already

    def record_payment(
        self,
        invoice_id: int,
        amount: object,
        paid_on: date | None,
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
        return self.session.scalar(_CUSTOMER_BY_TAX_ID, {"tax_id": tax_id})

    def _existing_draft(
        self,
        idempotency_key: str | None,
        source: str | None,
        external_ref: str | None,
        kind: str = "invoice",
    ) -> Invoice | None:
        """The document made before for this idempotency key, else for this deal (one query;
        a None matches nothing, as `= NULL` is never true)."""
        if idempotency_key is None and (source is None or external_ref is None):
            return None
        made = list(
            self.session.scalars(
                _MADE_BEFORE,
                {"key": idempotency_key, "kind": kind, "source": source, "ref": external_ref},
            )
        )
        keyed = [i for i in made if idempotency_key and i.idempotency_key == idempotency_key]
        return (keyed or made)[0] if made else None


# Built once, as every draft asks them (building one cost about as much as running it).
_CUSTOMER_BY_TAX_ID = select(Customer).where(Customer.tax_id == bindparam("tax_id"))
_MADE_BEFORE = (
    select(Invoice)
    .where(
        or_(
            Invoice.idempotency_key == bindparam("key"),
            and_(
                Invoice.kind == bindparam("kind"),
                Invoice.source == bindparam("source"),
                Invoice.external_ref == bindparam("ref"),
            ),
        )
    )
    .order_by(Invoice.id)
)


def _differs(stored: str, incoming: str) -> bool:
    return " ".join(stored.casefold().split()) != " ".join(incoming.casefold().split())


MAX_DESCRIPTION = 500  # invoice_lines.description


def parse_operation_date(value: object) -> date | None:
    """When the operation took place (YYYY-MM-DD), if not on the issue date; None: the same."""
    if value is None or value == "":
        return None
    try:
        day = value if isinstance(value, date) else date.fromisoformat(str(value))
    except ValueError:
        day = None
    today = issuing.today()
    # The AEAT's validation 3.1.3.7: not over twenty years back, not past the next year.
    if day is not None and today.replace(year=today.year - 20) <= day <= date(
        today.year + 1, 12, 31
    ):
        return day
    raise InvalidDocumentError(
        [
            (
                "operation_date",
                Said(
                    f"{value!r} is not a date like 2026-11-28 within the last twenty years "
                    "or up to the end of next year",
                    f"«{value}» no es una fecha válida: escríbela como 2026-11-28 "
                    "(año-mes-día), de los últimos veinte años o hasta el final del año "
                    "que viene",
                ),
            )
        ]
    )


def individual_problems(
    given_name: str | None, first_surname: str | None, second_surname: str | None
) -> list[tuple[str, str]]:
    """A person's name apart: a given name and a first surname together (the second one is
    optional), or none of them."""
    given, first = (given_name or "").strip(), (first_surname or "").strip()
    if bool(given) == bool(first) and (first or not (second_surname or "").strip()):
        return []
    missing = "first_surname" if given else "given_name"
    return [
        (
            f"individual.{missing}",
            Said(
                "a person's name apart needs the given name and the first surname",
                "para separar el nombre de una persona hacen falta el nombre de pila y el "
                "primer apellido (el segundo es opcional)",
            ),
        )
    ]


def check_terms(
    country: str, equivalence_surcharge: object, payment_days: object
) -> list[tuple[str, str]]:
    """Problems with a customer's recargo de equivalencia flag and payment days."""
    errors: list[tuple[str, str]] = []
    if not isinstance(equivalence_surcharge, bool):
        errors.append(("equivalence_surcharge", Said("must be true or false", "debe ser sí o no")))
    elif equivalence_surcharge and country != "ES":
        errors.append(
            (
                "equivalence_surcharge",
                Said(
                    "recargo de equivalencia is a Spanish regime for retailers: only customers "
                    "with a Spanish NIF can be in it",
                    "el recargo de equivalencia es un régimen español para minoristas: solo "
                    "pueden estar en él clientes con NIF español",
                ),
            )
        )
    if (
        isinstance(payment_days, bool)
        or not isinstance(payment_days, int)
        or not 0 <= payment_days <= MAX_PAYMENT_DAYS
    ):
        errors.append(
            (
                "payment_days",
                Said(
                    f"must be a whole number of days from 0 to {MAX_PAYMENT_DAYS}",
                    f"debe ser un número entero de días, de 0 a {MAX_PAYMENT_DAYS}",
                ),
            )
        )
    return errors


def documents_made_from(session: Session, document: Invoice) -> bool:
    """True when some live document carries lines converted from this one."""
    line_ids = [line.id for line in document.lines]
    if not line_ids:
        return False
    found = session.scalar(
        select(InvoiceLine.id)
        .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
        .where(InvoiceLine.source_line_id.in_(line_ids), Invoice.status != InvoiceStatus.CANCELLED)
        .limit(1)
    )
    return found is not None


def prepare_lines(
    session: Session, lines: Sequence[LineData], source: str | None
) -> list[InvoiceLine]:
    """Exact line amounts; a known SKU (ours, or the source CRM's code) brings name, price, IVA.

    The catalog's IVA and exemption always win: taxes are fiscal master data. The CRM's
    negotiated price and description win over the catalog's when they are given.
    """
    errors: list[tuple[str, str]] = []
    prepared: list[InvoiceLine] = []
    if not lines:
        errors.append(
            ("lines", Said("an invoice needs at least one line", "añade al menos una línea"))
        )
    products = catalog.resolve(session, (line.sku for line in lines if line.sku), source)
    for i, line in enumerate(lines):
        where = f"lines[{i}]"
        product = products.get(line.sku) if line.sku else None
        if product is None and line.sku and None in (line.unit_price, line.tax_rate):
            known = f" nor mapped for {source}" if source else ""
            known_es = f" ni asignado a un código de {source}" if source else ""
            errors.append(
                (
                    f"{where}.sku",
                    Said(
                        f"{line.sku!r} is not in the catalog{known}: add it, "
                        "or send description, unit_price and tax_rate",
                        f"«{line.sku}» no está en el catálogo{known_es}: añádelo, o escribe la "
                        "descripción, el precio y el IVA de la línea",
                    ),
                )
            )
            continue
        raw = {
            "quantity": line.quantity,
            "unit_price": line.unit_price
            if line.unit_price is not None
            else product.unit_price
            if product
            else None,
            "discount_percent": line.discount_percent,
            "tax_rate": product.tax_rate if product else line.tax_rate,
        }
        exemption = product.exemption_cause if product else line.exemption_cause
        withholding: Decimal | None = None
        if product is not None:
            withholding = product.withholding_rate
        elif line.withholding_rate is not None:
            try:
                withholding = to_decimal(line.withholding_rate, "withholding_rate")
            except AmountError as exc:
                errors.append((f"{where}.withholding_rate", message_of(exc)))
                continue
            errors.extend(catalog.check_withholding(withholding, f"{where}."))
        description = (line.description or (product.name if product else "")).strip()
        values: dict[str, Decimal] = {}
        for name, value in raw.items():
            if value is None:
                errors.append(
                    (
                        f"{where}.{name}",
                        Said(
                            "is required (or a catalog SKU that has it)",
                            "falta (escríbelo, o usa una referencia del catálogo que lo tenga)",
                        ),
                    )
                )
                continue
            try:
                values[name] = to_decimal(value, name)
            except AmountError as exc:
                errors.append((f"{where}.{name}", message_of(exc)))
        if len(values) < 4:
            continue
        quantity, price = values["quantity"], values["unit_price"]
        discount, rate = values["discount_percent"], values["tax_rate"]
        for name, most in DECIMALS.items():
            exponent = values[name].normalize().as_tuple().exponent
            if isinstance(exponent, int) and -exponent > most:
                errors.append((f"{where}.{name}", too_many_decimals(most)))
        if quantity == 0:
            errors.append((f"{where}.quantity", Said("must not be zero", "no puede ser cero")))
        if not Decimal(0) <= discount <= Decimal(100):
            errors.append((f"{where}.discount_percent", totals.BETWEEN_0_AND_100))
        errors.extend(catalog.check_tax(rate, exemption, f"{where}."))
        if not description:
            errors.append(
                (f"{where}.description", Said("must not be empty", "no puede quedar vacía"))
            )
        elif len(description) > MAX_DESCRIPTION:
            errors.append(
                (
                    f"{where}.description",
                    Said(
                        f"has {len(description)} characters; at most {MAX_DESCRIPTION}",
                        f"tiene {len(description)} caracteres y caben {MAX_DESCRIPTION}: "
                        "acórtala (el detalle puede ir en las observaciones)",
                    ),
                )
            )
        if errors:
            continue
        amounts = line_amounts(quantity, price, discount)
        prepared.append(
            InvoiceLine(
                position=i + 1,
                sku=product.sku if product else line.sku,
                product_id=product.id if product else None,
                description=description,
                quantity=quantity,
                unit_price=price,
                discount_percent=discount,
                tax_rate=rate,
                exemption_cause=exemption,
                withholding_rate=withholding or None,
                service=product.service if product is not None else bool(line.service),
                gross=amounts.gross,
                discount=amounts.discount,
                base=amounts.base,
            )
        )
    if errors:
        raise InvalidDocumentError(errors)
    return prepared
