"""Invoicing tables: customers, invoices, their lines and IVA breakdown."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import Date, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from connector.db import Base, DecimalType, UTCDateTime, utcnow

Amount = DecimalType(18, 2)
Precise = DecimalType(20, 8)  # quantities and unit prices: Facturae allows up to 8 decimals
Percent = DecimalType(7, 4)


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    ISSUED = "issued"
    PAID = "paid"
    CANCELLED = "cancelled"


class Customer(Base):
    """Fiscal master data: one customer per tax id."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    tax_id: Mapped[str] = mapped_column(String(30), unique=True)
    tax_id_kind: Mapped[str] = mapped_column(String(10))
    country: Mapped[str] = mapped_column(String(2), default="ES")
    name: Mapped[str] = mapped_column(String(120))
    email: Mapped[str | None] = mapped_column(String(254))
    street: Mapped[str | None] = mapped_column(String(200))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    city: Mapped[str | None] = mapped_column(String(100))
    province: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Invoice(Base):
    __tablename__ = "invoices"
    __table_args__ = (
        # One document per CRM deal and kind: the "never billed twice" rule lives here.
        UniqueConstraint("kind", "source", "external_ref"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), default="invoice")
    status: Mapped[str] = mapped_column(String(20), default=InvoiceStatus.DRAFT, index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    source: Mapped[str | None] = mapped_column(String(40))
    external_ref: Mapped[str | None] = mapped_column(String(100))
    number: Mapped[str | None] = mapped_column(String(40))
    issue_date: Mapped[date | None] = mapped_column(Date)
    base_total: Mapped[Decimal] = mapped_column(Amount)
    tax_total: Mapped[Decimal] = mapped_column(Amount)
    total: Mapped[Decimal] = mapped_column(Amount)
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    customer: Mapped[Customer] = relationship()
    lines: Mapped[list[InvoiceLine]] = relationship(
        order_by="InvoiceLine.position", cascade="all, delete-orphan"
    )
    # Written from the highest rate down; id order keeps that on SQLite, where rates are text.
    taxes: Mapped[list[InvoiceTax]] = relationship(
        order_by="InvoiceTax.id", cascade="all, delete-orphan"
    )


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
    gross: Mapped[Decimal] = mapped_column(Amount)
    discount: Mapped[Decimal] = mapped_column(Amount)
    base: Mapped[Decimal] = mapped_column(Amount)


class InvoiceTax(Base):
    """IVA per rate: the base and the tax amount, as the invoice and VERI*FACTU state them."""

    __tablename__ = "invoice_taxes"
    __table_args__ = (UniqueConstraint("invoice_id", "rate"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    rate: Mapped[Decimal] = mapped_column(Percent)
    base: Mapped[Decimal] = mapped_column(Amount)
    amount: Mapped[Decimal] = mapped_column(Amount)
