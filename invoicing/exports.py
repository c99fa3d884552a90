"""Issued invoices as documents: Facturae 3.2.2 XML (optionally signed) from the stored invoice."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from invoicing import catalog
from invoicing import facturae as fe
from invoicing.errors import DocumentStateError, InvalidDocumentError, Said
from invoicing.fields import ADDRESS_PARTS, address_missing, province_of
from invoicing.models import Customer, Invoice, InvoiceLine, InvoiceType, Issuer
from invoicing.money import HUNDRED, cents, discounted


def facturae_invoice(invoice: Invoice) -> fe.Invoice:
    """The Facturae view of an issued invoice, with the amounts exactly as stored.

    Facturae's InvoiceTotal is what is paid: the invoice total (taxable base, IVA and recargo
    de equivalencia) less the IRPF withheld. Line-level taxes are informative: each line's
    share of the general discount, and its IVA, surcharge and IRPF, are rounded on the line.
    """
    if invoice.number is None or invoice.issue_date is None or invoice.billed_issuer is None:
        raise DocumentStateError(
            Said(
                f"invoice {invoice.id} is a draft: issue it first",
                f"La factura {invoice.id} es un borrador: emítela primero.",
            )
        )
    surcharges = {
        (t.rate, t.exemption_cause): t.surcharge_rate
        for t in invoice.taxes
        if t.surcharge_rate  # a 0 % surcharge (on 0 % IVA) is not written
    }
    discount = invoice.discount_percent
    return fe.Invoice(
        number=invoice.number,
        issue_date=invoice.issue_date,
        seller=_seller(invoice.billed_issuer),
        buyer=_buyer(invoice.billed_customer),
        lines=[
            _line(
                line,
                discount,
                None if line.service else surcharges.get((line.tax_rate, line.exemption_cause)),
            )
            for line in invoice.lines
        ],
        taxes=[
            fe.TaxTotal(
                rate=t.rate,
                base=t.base,
                amount=t.amount,
                surcharge_rate=t.surcharge_rate if t.surcharge_rate else None,
                surcharge_amount=t.surcharge_amount if t.surcharge_rate else None,
                exemption=t.exemption_cause,
            )
            for t in invoice.taxes
        ],
        # The legal ground of each exemption, as the PDF states it (art. 6.1 j RD 1619/2012).
        legal_literals=[
            catalog.exemption_mention(t.exemption_cause) for t in invoice.taxes if t.exemption_cause
        ],
        general_discount=fe.GeneralDiscount(
            rate=discount,
            amount=invoice.discount_total,
            reason=f"Descuento general {discount.normalize():f} %",
        )
        if discount
        else None,
        withholdings=[
            fe.Withholding(rate=w.rate, base=w.base, amount=w.amount) for w in invoice.withholdings
        ],
        gross_amount_before_taxes=invoice.base_total,
        total_tax_outputs=invoice.tax_total + invoice.surcharge_total,
        total_taxes_withheld=invoice.withholding_total,
        invoice_total=invoice.amount_due,
        currency=invoice.currency,
        document_type="FA"
        if invoice.invoice_type in (InvoiceType.SIMPLIFIED, InvoiceType.R5)
        else "FC",
        invoice_class="OR" if invoice.rectifies is not None else "OO",
        corrective=_corrective(invoice),
        # The document as issued: payments received later do not change it.
        payment_due_date=invoice.due_date,
        operation_date=invoice.operation_date,
        iban=invoice.billed_issuer.iban,
    )


def _line(line: InvoiceLine, discount: Decimal, surcharge: Decimal | None) -> fe.Line:
    base = discounted(line.base, discount)
    return fe.Line(
        description=line.description,
        quantity=line.quantity,
        unit_price=line.unit_price,
        gross_amount=line.base,
        tax_base=base,
        tax_rate=line.tax_rate,
        tax_amount=cents(base * line.tax_rate / HUNDRED),
        discount_percent=line.discount_percent,
        discount_amount=line.discount,
        sku=line.sku,
        surcharge_rate=surcharge,
        surcharge_amount=cents(base * surcharge / HUNDRED) if surcharge is not None else None,
        withholding_rate=line.withholding_rate,
        withholding_amount=cents(base * line.withholding_rate / HUNDRED)
        if line.withholding_rate is not None
        else None,
        exemption=line.exemption_cause,
        exemption_reason=catalog.exemption_mention(line.exemption_cause)
        if line.exemption_cause
        else None,
    )


# Facturae ReasonCode for each kind of rectification (the closest of the XSD's list).
REASON_CODES = {"R1": "16", "R2": "85", "R3": "85", "R4": "16", "R5": "16"}


def _corrective(invoice: Invoice) -> fe.Corrective | None:
    original = invoice.rectifies
    if original is None:
        return None
    assert original.issue_date is not None
    start = original.issue_date.replace(day=1)
    end = (start + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    return fe.Corrective(
        tax_period_start=start,
        tax_period_end=end,
        number=original.number,
        issue_date=original.issue_date,
        reason_code=REASON_CODES[invoice.invoice_type],
        correction_method="01" if invoice.rectification_method == "S" else "02",
        additional_reason=invoice.rectification_reason,
    )


def facturae_xml(invoice: Invoice, credentials: fe.SigningCredentials | None = None) -> bytes:
    """The invoice's Facturae XML, checked against the XSD, signed when credentials are given."""
    xml = fe.facturae_xml(facturae_invoice(invoice))
    fe.validate(xml)
    return fe.sign(xml, credentials) if credentials is not None else xml


def _seller(issuer: Issuer) -> fe.Party:
    return fe.Party(
        tax_id=issuer.tax_id,
        name=issuer.name,
        address=issuer.street,
        postal_code=issuer.postal_code,
        town=issuer.city,
        province=issuer.province,
        country=issuer.country,
        email=issuer.email,
    )


def _buyer(customer: Customer) -> fe.Party:
    """The buyer as Facturae states it: the address issuing checked (a Spanish postal code
    names its province when none was given; abroad Facturae takes the town)."""
    missing = address_missing(
        customer.street, customer.postal_code, customer.city, customer.country
    )
    if missing:
        raise InvalidDocumentError(
            [
                (
                    "customer.address",
                    Said(
                        f"customer {customer.tax_id} has no "
                        f"{', '.join(ADDRESS_PARTS[m][0] for m in missing)}: Facturae needs the "
                        f"buyer's address (PATCH /api/v1/customers/{customer.id})",
                        f"al cliente {customer.tax_id} le falta "
                        f"{', '.join(ADDRESS_PARTS[m][1] for m in missing)}: Facturae necesita "
                        "la dirección del comprador; complétala en su ficha",
                    ),
                )
            ]
        )
    assert customer.street and customer.city
    province = customer.province or province_of(customer.postal_code, customer.country) or ""
    return fe.Party(
        tax_id=customer.tax_id,
        name=customer.name,
        address=customer.street,
        postal_code=customer.postal_code or "",
        town=customer.city,
        province=province,
        country=customer.country,
        # A person's name apart, when given (snapshots of older invoices carry none).
        first_surname=getattr(customer, "first_surname", None),
        second_surname=getattr(customer, "second_surname", None),
        given_name=getattr(customer, "given_name", None),
        email=customer.email,
    )
