"""Invoicing tables: customers, invoices, their lines and IVA breakdown."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from database import Base, DecimalType, JSONType, UTCDateTime, utcnow

Amount = DecimalType(18, 2)
Precise = DecimalType(20, 8)  # quantities and unit prices: Facturae allows up to 8 decimals
Percent = DecimalType(7, 4)


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    ISSUED = "issued"
    PAID = "paid"
    CANCELLED = "cancelled"


class DocumentKind(StrEnum):
    """The commercial documents, all kept in `invoices`: only invoices are fiscal."""

    QUOTE = "quote"  # presupuesto
    ORDER = "order"  # pedido
    DELIVERY_NOTE = "delivery_note"  # albarán
    INVOICE = "invoice"  # factura


class InvoiceType(StrEnum):
    """VERI*FACTU TipoFactura."""

    COMPLETE = "F1"  # factura completa
    SIMPLIFIED = "F2"  # factura simplificada (ticket)
    R1 = "R1"  # rectificativa: error fundado en derecho y art. 80 Uno, Dos y Seis LIVA
    R2 = "R2"  # rectificativa: art. 80.3 (concurso)
    R3 = "R3"  # rectificativa: art. 80.4 (créditos incobrables)
    R4 = "R4"  # rectificativa: resto de causas
    R5 = "R5"  # rectificativa de facturas simplificadas


class Issuer(Base):
    """Our company: who issues the invoices, and owner of one VERI*FACTU chain."""

    __tablename__ = "issuers"

    id: Mapped[int] = mapped_column(primary_key=True)
    tax_id: Mapped[str] = mapped_column(String(30), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    street: Mapped[str] = mapped_column(String(200))
    postal_code: Mapped[str] = mapped_column(String(20))
    city: Mapped[str] = mapped_column(String(100))
    province: Mapped[str] = mapped_column(String(100))
    country: Mapped[str] = mapped_column(String(2), default="ES")
    email: Mapped[str | None] = mapped_column(String(254))
    iban: Mapped[str | None] = mapped_column(String(34))
    # Who produced the invoicing system (SistemaInformatico in VERI*FACTU records): the issuer
    # itself unless set, as for a system it develops or commissions for its own use.
    sif_producer_tax_id: Mapped[str | None] = mapped_column(String(30))
    sif_producer_name: Mapped[str | None] = mapped_column(String(120))
    sif_installation: Mapped[str] = mapped_column(String(100), default="1")
    # Art. 4.2 RD 1619/2012: the business is of a kind (retail, hospitality, transport...) that
    # may issue simplified invoices up to 3,000 €; otherwise they stop at 400 €.
    simplified_art_4_2: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    series: Mapped[list[Series]] = relationship(order_by="Series.id", back_populates="issuer")


class Series(Base):
    """A numbering series: ordinary, rectifying and simplified invoices number apart."""

    __tablename__ = "series"
    __table_args__ = (UniqueConstraint("issuer_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issuer_id: Mapped[int] = mapped_column(ForeignKey("issuers.id"))
    code: Mapped[str] = mapped_column(String(10))
    purpose: Mapped[str] = mapped_column(String(20))  # "ordinary", "rectifying", "simplified"
    description: Mapped[str | None] = mapped_column(String(200))

    issuer: Mapped[Issuer] = relationship(back_populates="series")


class SeriesCounter(Base):
    """The last number used in a series and year; incremented in the issuing transaction."""

    __tablename__ = "series_counters"
    __table_args__ = (UniqueConstraint("series_id", "year"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"))
    year: Mapped[int]
    last_number: Mapped[int] = mapped_column(default=0)


class Customer(Base):
    """Fiscal master data: one customer per tax id."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    tax_id: Mapped[str] = mapped_column(String(30), unique=True)
    tax_id_kind: Mapped[str] = mapped_column(String(10))
    country: Mapped[str] = mapped_column(String(2), default="ES")
    name: Mapped[str] = mapped_column(String(120))
    # A person (not a company) may give their name and surnames apart: Facturae writes them as
    # such. Without them the name is written whole, never guessed into surnames.
    given_name: Mapped[str | None] = mapped_column(String(120))
    first_surname: Mapped[str | None] = mapped_column(String(120))
    second_surname: Mapped[str | None] = mapped_column(String(120))
    email: Mapped[str | None] = mapped_column(String(254))
    street: Mapped[str | None] = mapped_column(String(200))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    city: Mapped[str | None] = mapped_column(String(100))
    province: Mapped[str | None] = mapped_column(String(100))
    # A retailer in recargo de equivalencia (arts. 154–163 Ley 37/1992): its invoices carry the
    # surcharge of each IVA rate on top of the IVA.
    equivalence_surcharge: Mapped[bool] = mapped_column(default=False)
    # Days from the issue date to the due date (0: due on issue).
    payment_days: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Product(Base):
    """A catalog item: what a SKU costs and how it is taxed."""

    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    unit_price: Mapped[Decimal] = mapped_column(Precise)
    tax_rate: Mapped[Decimal] = mapped_column(Percent)
    # Exempt operations carry 0 % and their cause (E1–E6, art. 20–25 LIVA...).
    exemption_cause: Mapped[str | None] = mapped_column(String(2))
    # IRPF the customer withholds on it (15 professional services, 7 new professionals, 19...).
    withholding_rate: Mapped[Decimal | None] = mapped_column(Percent)
    # A service, not goods: no recargo de equivalencia on it (art. 154 LIVA).
    service: Mapped[bool] = mapped_column(default=False)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SkuMapping(Base):
    """A CRM's own product code for one of our products ("hubspot", "PRD-77" → SKU-001)."""

    __tablename__ = "sku_mappings"
    __table_args__ = (UniqueConstraint("source", "external_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(40))
    external_code: Mapped[str] = mapped_column(String(100))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))

    product: Mapped[Product] = relationship()


class Deal(Base):
    """A won deal as the CRM reported it: what reports measure (won → invoiced → paid)."""

    __tablename__ = "deals"
    __table_args__ = (UniqueConstraint("source", "external_ref"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(140))
    external_ref: Mapped[str] = mapped_column(String(100))
    title: Mapped[str | None] = mapped_column(String(200))
    owner_name: Mapped[str | None] = mapped_column(String(120))
    owner_email: Mapped[str | None] = mapped_column(String(254))
    campaign: Mapped[str | None] = mapped_column(String(120), index=True)
    amount: Mapped[Decimal | None] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    customer_name: Mapped[str | None] = mapped_column(String(120))
    customer_tax_id: Mapped[str | None] = mapped_column(String(30))
    won_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CrmCompany(Base):
    """A company in the built-in CRM: who the opportunities are with, and who is billed."""

    __tablename__ = "crm_companies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    tax_id: Mapped[str | None] = mapped_column(String(30))
    email: Mapped[str | None] = mapped_column(String(254))
    street: Mapped[str | None] = mapped_column(String(200))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    city: Mapped[str | None] = mapped_column(String(100))
    province: Mapped[str | None] = mapped_column(String(100))
    country: Mapped[str] = mapped_column(String(2), default="ES")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CrmContact(Base):
    __tablename__ = "crm_contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("crm_companies.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Opportunity(Base):
    """An opportunity on the built-in pipeline; marked won, it starts the deal-won flows."""

    __tablename__ = "opportunities"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    company_id: Mapped[int] = mapped_column(ForeignKey("crm_companies.id"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("crm_contacts.id"))
    stage: Mapped[str] = mapped_column(String(20), index=True)
    owner_name: Mapped[str | None] = mapped_column(String(120))
    owner_email: Mapped[str | None] = mapped_column(String(254))
    campaign: Mapped[str | None] = mapped_column(String(120))
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    expected_close: Mapped[date | None] = mapped_column(Date)
    won_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    company: Mapped[CrmCompany] = relationship()
    contact: Mapped[CrmContact | None] = relationship()
    lines: Mapped[list[OpportunityLine]] = relationship(
        order_by="OpportunityLine.position", cascade="all, delete-orphan"
    )


class OpportunityLine(Base):
    __tablename__ = "opportunity_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    opportunity_id: Mapped[int] = mapped_column(ForeignKey("opportunities.id"), index=True)
    position: Mapped[int]
    sku: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(500))
    quantity: Mapped[Decimal] = mapped_column(Precise)
    unit_price: Mapped[Decimal] = mapped_column(Precise)
    discount_percent: Mapped[Decimal] = mapped_column(Percent, default=Decimal("0"))
    tax_rate: Mapped[Decimal] = mapped_column(Percent, default=Decimal("21"))


class Invoice(Base):
    __tablename__ = "invoices"
    __table_args__ = (
        # One document per CRM deal and kind: the "never billed twice" rule lives here.
        UniqueConstraint("kind", "source", "external_ref"),
        # A number is used once per series, whatever happens.
        UniqueConstraint("series_id", "number"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), default="invoice")
    status: Mapped[str] = mapped_column(String(20), default=InvoiceStatus.DRAFT, index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    source: Mapped[str | None] = mapped_column(String(140))
    external_ref: Mapped[str | None] = mapped_column(String(100))
    invoice_type: Mapped[str] = mapped_column(String(2), default=InvoiceType.COMPLETE)
    issuer_id: Mapped[int | None] = mapped_column(ForeignKey("issuers.id"))
    series_id: Mapped[int | None] = mapped_column(ForeignKey("series.id"))
    number: Mapped[str | None] = mapped_column(String(40))  # full, e.g. "F2026-00042"
    serial: Mapped[int | None]  # 42: its place in the series and year
    issue_date: Mapped[date | None] = mapped_column(Date)
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paid_total: Mapped[Decimal] = mapped_column(Amount, default=Decimal("0.00"))
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Quote → order → delivery note → invoice: each document remembers where it came from.
    converted_from_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"))
    # When the operation took place, if not on the issue date (art. 6.1 g RD 1619/2012: e.g.
    # goods delivered with delivery notes before the invoice): FechaOperacion, OperationDate.
    operation_date: Mapped[date | None] = mapped_column(Date)
    # A rectifying invoice points at the one it corrects.
    rectifies_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"))
    rectification_method: Mapped[str | None] = mapped_column(String(1))  # S (substitution) / I
    rectification_reason: Mapped[str | None] = mapped_column(String(500))
    # General discount on every line's base, before taxes (Facturae GeneralDiscounts).
    discount_percent: Mapped[Decimal] = mapped_column(Percent, default=Decimal(0))
    discount_total: Mapped[Decimal] = mapped_column(Amount, default=Decimal("0.00"))
    base_total: Mapped[Decimal] = mapped_column(Amount)  # taxable base, after that discount
    tax_total: Mapped[Decimal] = mapped_column(Amount)  # IVA
    surcharge_total: Mapped[Decimal] = mapped_column(Amount, default=Decimal("0.00"))
    total: Mapped[Decimal] = mapped_column(Amount)  # base + IVA + recargo de equivalencia
    withholding_total: Mapped[Decimal] = mapped_column(Amount, default=Decimal("0.00"))  # IRPF
    due_date: Mapped[date | None] = mapped_column(Date)  # issue date + the customer's days
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    # The issuer's and customer's data as they were when the invoice was issued: an issued
    # invoice never changes, whatever is edited in their records later.
    parties: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)

    customer: Mapped[Customer] = relationship()
    issuer: Mapped[Issuer | None] = relationship()
    series: Mapped[Series | None] = relationship()
    rectifies: Mapped[Invoice | None] = relationship(
        remote_side="Invoice.id", foreign_keys=[rectifies_id]
    )
    converted_from: Mapped[Invoice | None] = relationship(
        remote_side="Invoice.id", foreign_keys=[converted_from_id]
    )
    payments: Mapped[list[Payment]] = relationship(order_by="Payment.id")
    emails: Mapped[list[InvoiceEmail]] = relationship(order_by="InvoiceEmail.id")
    lines: Mapped[list[InvoiceLine]] = relationship(
        order_by="InvoiceLine.position", cascade="all, delete-orphan"
    )
    # Written from the highest rate down; id order keeps that on SQLite, where rates are text.
    taxes: Mapped[list[InvoiceTax]] = relationship(
        order_by="InvoiceTax.id", cascade="all, delete-orphan"
    )

    @property
    def billed_customer(self) -> Any:
        """The customer as billed: frozen when issued, the live record before."""
        if self.parties and "customer" in self.parties:
            return SimpleNamespace(**self.parties["customer"])
        return self.customer

    @property
    def billed_issuer(self) -> Any:
        """The issuer as billed: frozen when issued, the live record before."""
        if self.parties and "issuer" in self.parties:
            return SimpleNamespace(**self.parties["issuer"])
        return self.issuer

    withholdings: Mapped[list[InvoiceWithholding]] = relationship(
        order_by="InvoiceWithholding.id", cascade="all, delete-orphan"
    )

    @property
    def amount_due(self) -> Decimal:
        """What the customer pays: the total less the IRPF it withholds (Facturae's total)."""
        return self.total - self.withholding_total

    @property
    def outstanding(self) -> Decimal:
        return self.amount_due - self.paid_total


class InvoiceLine(Base):
    __tablename__ = "invoice_lines"
    __table_args__ = (UniqueConstraint("invoice_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    position: Mapped[int]
    sku: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(500))
    quantity: Mapped[Decimal] = mapped_column(Precise)
    unit_price: Mapped[Decimal] = mapped_column(Precise)
    discount_percent: Mapped[Decimal] = mapped_column(Percent)
    tax_rate: Mapped[Decimal] = mapped_column(Percent)
    exemption_cause: Mapped[str | None] = mapped_column(String(2))
    withholding_rate: Mapped[Decimal | None] = mapped_column(Percent)  # IRPF, when withheld
    # A service, not goods: the recargo de equivalencia is only charged on goods.
    service: Mapped[bool] = mapped_column(default=False)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id"))
    # The line of the document this one was converted from (partial deliveries add up).
    source_line_id: Mapped[int | None] = mapped_column(ForeignKey("invoice_lines.id"))
    gross: Mapped[Decimal] = mapped_column(Amount)
    discount: Mapped[Decimal] = mapped_column(Amount)
    base: Mapped[Decimal] = mapped_column(Amount)


class InvoiceTax(Base):
    """IVA per rate: the base and the tax amount, as the invoice and VERI*FACTU state them."""

    __tablename__ = "invoice_taxes"
    __table_args__ = (UniqueConstraint("invoice_id", "rate", "exemption_cause"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    rate: Mapped[Decimal] = mapped_column(Percent)
    exemption_cause: Mapped[str | None] = mapped_column(String(2))
    base: Mapped[Decimal] = mapped_column(Amount)
    amount: Mapped[Decimal] = mapped_column(Amount)
    # Recargo de equivalencia on the same base; None when the customer is not in it (or exempt).
    surcharge_rate: Mapped[Decimal | None] = mapped_column(Percent)
    surcharge_amount: Mapped[Decimal] = mapped_column(Amount, default=Decimal("0.00"))


class InvoiceWithholding(Base):
    """IRPF withheld per rate: the base and the amount, as the invoice and Facturae state them."""

    __tablename__ = "invoice_withholdings"
    __table_args__ = (UniqueConstraint("invoice_id", "rate"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    rate: Mapped[Decimal] = mapped_column(Percent)
    base: Mapped[Decimal] = mapped_column(Amount)
    amount: Mapped[Decimal] = mapped_column(Amount)


class Payment(Base):
    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Amount)
    paid_on: Mapped[date] = mapped_column(Date)
    method: Mapped[str | None] = mapped_column(String(40))
    reference: Mapped[str | None] = mapped_column(String(100))
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VerifactuRecord(Base):
    """One link of an issuer's VERI*FACTU chain: an alta on issue, an anulación on cancel."""

    __tablename__ = "verifactu_records"
    __table_args__ = (
        UniqueConstraint("issuer_id", "sequence"),  # the chain never forks
        # An invoice's records of a kind: the first, then any that correct it (newest counts).
        Index("ix_verifactu_records_invoice_id_kind", "invoice_id", "kind"),
        Index("ix_verifactu_records_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    issuer_id: Mapped[int] = mapped_column(ForeignKey("issuers.id"))
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    sequence: Mapped[int]
    kind: Mapped[str] = mapped_column(String(10))  # "alta" / "anulacion"
    num_serie: Mapped[str] = mapped_column(String(60))
    fecha_expedicion: Mapped[date] = mapped_column(Date)
    tipo_factura: Mapped[str | None] = mapped_column(String(2))
    cuota_total: Mapped[Decimal | None] = mapped_column(Amount)
    importe_total: Mapped[Decimal | None] = mapped_column(Amount)
    previous_huella: Mapped[str | None] = mapped_column(String(64))
    huella: Mapped[str] = mapped_column(String(64))
    generated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    xml: Mapped[str] = mapped_column(Text)
    # "verifactu" (sent to the AEAT: its test environment when aeat_tests) or "no_verifactu"
    # (kept, never sent): the mode the record was made in decides its QR for good.
    mode: Mapped[str] = mapped_column(String(12), default="verifactu")
    aeat_tests: Mapped[bool] = mapped_column(default=False)
    # A record that corrects an earlier one of the same invoice the AEAT refused: a subsanación
    # (Subsanacion = S, RechazoPrevio S when the first was rejected outright) or an anulación
    # sent again. SinRegistroPrevio: an anulación of an alta the AEAT never received.
    corrects_id: Mapped[int | None] = mapped_column(ForeignKey("verifactu_records.id"))
    subsanacion: Mapped[bool] = mapped_column(default=False)
    rechazo_previo: Mapped[str | None] = mapped_column(String(1))
    sin_registro_previo: Mapped[bool] = mapped_column(default=False)
    # Submission queue: pending → sent → accepted / rejected (sending is behind an interface);
    # "kept" in no VERI*FACTU mode (never sent), "corrected" once a newer record replaced it.
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    # A technical incident (no answer reached us, or the AEAT's own failure) delayed it: it is
    # resent with Incidencia = S. A refusal of our document (a SOAP Client fault) is not one.
    incident: Mapped[bool] = mapped_column(default=False)
    last_error: Mapped[str | None] = mapped_column(Text)
    # The AEAT's own CodigoErrorRegistro and DescripcionErrorRegistro, as it gave them.
    error_code: Mapped[int | None]
    error_description: Mapped[str | None] = mapped_column(Text)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SifEvent(Base):
    """One entry of the invoicing system's event log (registro de eventos), each hashing the
    one before it, as the regulation asks of a system that keeps its records (no VERI*FACTU)."""

    __tablename__ = "sif_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    sequence: Mapped[int] = mapped_column(unique=True)  # the log never forks
    kind: Mapped[str] = mapped_column(String(30))  # see invoicing.sif_log.KINDS
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    previous_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class OutboxEvent(Base):
    """Domain events written in the same transaction as the change; they feed triggers."""

    __tablename__ = "outbox_events"
    __table_args__ = (Index("ix_outbox_events_unpublished", "published_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    topic: Mapped[str] = mapped_column(String(60))  # e.g. "invoice.issued"
    subject_id: Mapped[int]
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class InvoiceEmail(Base):
    """One attempt to send an issued invoice to its customer."""

    __tablename__ = "invoice_emails"

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    to: Mapped[str] = mapped_column(String(254))
    status: Mapped[str] = mapped_column(String(20))  # "sent" / "failed"
    error: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(200))
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def snapshot(row: Base) -> dict[str, Any]:
    """A row's columns as JSON-friendly values (for the parties of an issued invoice)."""
    values: dict[str, Any] = {}
    for column in row.__table__.columns:
        value = getattr(row, column.key)
        values[column.key] = str(value) if isinstance(value, Decimal | datetime | date) else value
    return values
