"""Recargo de equivalencia, IRPF withholding, payment terms and the general discount, end to end.

Every amount below is worked out by hand in the comments, from these rules:

* IVA, recargo de equivalencia and the general discount are computed once per IVA group on the
  summed line bases, each rounded to cents half up (away from zero); IRPF once per withholding
  rate on the summed bases of the lines that carry it, less their general discount.
* Recargo de equivalencia (art. 161 Ley 37/1992; the AEAT's VERI*FACTU validations): 5,2 % on
  21 % IVA, 1,4 % on 10 %, 0,5 % on 4 %, 0 on 0 %; none on exempt operations.
* VERI*FACTU (AEAT validations): CuotaTotal = Σ (CuotaRepercutida + CuotaRecargoEquivalencia);
  ImporteTotal = Σ (BaseImponibleOimporteNoSujeto + CuotaRepercutida + CuotaRecargoEquivalencia):
  IRPF withheld is not subtracted (the AEAT's answer: withholdings do not alter the "Importe
  Total Factura", which is base + cuota; "Total a pagar" is another figure of the invoice).
* Facturae 3.2.2 (XSD): TotalTaxOutputs = Σ TaxAmount + Σ EquivalenceSurchargeAmount;
  InvoiceTotal = TotalGrossAmountBeforeTaxes + TotalTaxOutputs - TotalTaxesWithheld;
  TotalGrossAmountBeforeTaxes = TotalGrossAmount - TotalGeneralDiscounts.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from lxml import etree
from sqlalchemy import select

from invoicing import chain, corrections, documents, exports, facturae, issuing, pdf, verifactu
from invoicing.errors import DocumentStateError, InvalidDocumentError
from invoicing.issuing import IssuerData, configure_issuer
from invoicing.models import Customer, Invoice, InvoiceStatus
from invoicing.money import (
    AmountError,
    TotalsLine,
    document_totals,
    surcharge_rate,
)
from invoicing.payments import record_payment
from invoicing.service import CustomerData, Invoicing, LineData
from tests.factories import ISSUER, signed_in

D = Decimal
WHEN = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)  # issue date 01/07/2026 in Madrid
IBAN = "ES9121000418450200051332"
SUM1 = f"{{{verifactu.NS_SUM1}}}"

RETAILER = CustomerData(
    name="Ferretería López García",
    tax_id="12345678Z",
    street="Calle Real 3",
    postal_code="41001",
    city="Sevilla",
    province="Sevilla",
    country="ES",
    equivalence_surcharge=True,
    payment_days=30,
)


def line(description: str, quantity: str, price: str, rate: str, **more: object) -> LineData:
    return LineData(
        description=description, quantity=quantity, unit_price=price, tax_rate=rate, **more
    )


def issuer(rt) -> None:
    with rt.sessions.begin() as s:
        configure_issuer(s, IssuerData(**ISSUER, iban=IBAN))


def draft(rt, *lines: LineData, customer: CustomerData = RETAILER, **options: object) -> int:
    with rt.sessions.begin() as s:
        result = Invoicing(s).create_draft_invoice(customer=customer, lines=list(lines), **options)
        return result.invoice.id


def issue(rt, invoice_id: int) -> None:
    with rt.sessions.begin() as s:
        issuing.issue(s, invoice_id, now=WHEN)


def text(root: etree._Element, path: str) -> str:
    found = root.find(path)
    assert found is not None, f"{path} is missing"
    return found.text or ""


def texts(root: etree._Element, path: str) -> list[str]:
    return [element.text or "" for element in root.iterfind(path)]


def documents_of(rt, invoice_id: int) -> tuple[etree._Element, etree._Element]:
    """The invoice's VERI*FACTU and Facturae documents, each validated against its XSD."""
    with rt.sessions() as s:
        invoice = s.get_one(Invoice, invoice_id)
        record = chain.document_for(s, invoice)
        xml = exports.facturae_xml(invoice)
    verifactu.validate(record)
    facturae.validate(xml)
    return etree.fromstring(record), etree.fromstring(xml)


# --- The totals, pure ------------------------------------------------------------------------


def test_the_surcharge_of_each_iva_rate_is_the_one_the_law_sets():
    assert [surcharge_rate(D(r)) for r in ("21", "10", "4", "0")] == [
        D("5.2"),
        D("1.4"),
        D("0.5"),
        D("0"),
    ]
    assert surcharge_rate(D("21.0000")) == D("5.2")  # rates as stored
    with pytest.raises(AmountError, match="no recargo de equivalencia for IVA 7"):
        surcharge_rate(D(7))


def test_the_brief_s_example_adds_up_by_hand():
    totals = document_totals(
        [TotalsLine(D("1000.00"), D(21), withholding_rate=D(15))], equivalence_surcharge=True
    )
    # IVA 21 % of 1000.00 = 210.00; recargo 5,2 % = 52.00; IRPF 15 % = 150.00.
    # Total 1000.00 + 210.00 + 52.00 = 1262.00; to pay 1262.00 - 150.00 = 1112.00.
    [tax] = totals.taxes
    assert (tax.base, tax.amount, tax.surcharge_rate, tax.surcharge_amount) == (
        D("1000.00"),
        D("210.00"),
        D("5.2"),
        D("52.00"),
    )
    assert (totals.tax, totals.surcharge, totals.withholding) == (
        D("210.00"),
        D("52.00"),
        D("150.00"),
    )
    assert (totals.total, totals.due) == (D("1262.00"), D("1112.00"))


def test_without_the_customer_flag_there_is_no_surcharge():
    totals = document_totals([TotalsLine(D("1000.00"), D(21))])
    assert totals.taxes[0].surcharge_rate is None and totals.surcharge == D("0.00")
    assert totals.total == D("1210.00")


def test_surcharge_general_discount_and_withholding_round_per_group_half_up():
    totals = document_totals(
        [
            TotalsLine(D("99.99"), D(21), withholding_rate=D(15)),
            TotalsLine(D("86.42"), D(10)),
            TotalsLine(D("20.10"), D(4), withholding_rate=D(7)),
            TotalsLine(D("40.00"), D(0), "E1"),
        ],
        discount_percent=D(5),
        equivalence_surcharge=True,
    )
    # 21 %: 99.99 - 5 % (4.9995 → 5.00) = 94.99; IVA 19.9479 → 19.95; recargo 4.93948 → 4.94
    # 10 %: 86.42 - 5 % (4.321 → 4.32) = 82.10; IVA 8.21; recargo 1,4 % 1.1494 → 1.15
    #  4 %: 20.10 - 5 % (1.005 → 1.01) = 19.09; IVA 0.7636 → 0.76; recargo 0,5 % 0.09545 → 0.10
    # E1:   40.00 - 5 % (2.00) = 38.00; exempt: no IVA, no recargo
    assert [
        (t.rate, t.exemption, t.base, t.amount, t.surcharge_rate, t.surcharge_amount)
        for t in totals.taxes
    ] == [
        (D(21), None, D("94.99"), D("19.95"), D("5.2"), D("4.94")),
        (D(10), None, D("82.10"), D("8.21"), D("1.4"), D("1.15")),
        (D(4), None, D("19.09"), D("0.76"), D("0.5"), D("0.10")),
        (D(0), "E1", D("38.00"), D("0.00"), None, D("0.00")),
    ]
    # Discount 5.00 + 4.32 + 1.01 + 2.00 = 12.33 on 246.51 of lines: base 234.18.
    assert (totals.gross, totals.discount, totals.base) == (
        D("246.51"),
        D("12.33"),
        D("234.18"),
    )
    # IVA 19.95 + 8.21 + 0.76 = 28.92; recargo 4.94 + 1.15 + 0.10 = 6.19; total 269.29.
    assert (totals.tax, totals.surcharge, totals.total) == (D("28.92"), D("6.19"), D("269.29"))
    # IRPF 15 %: 99.99 - 5.00 = 94.99 → 14.2485 → 14.25; 7 %: 20.10 - 1.01 = 19.09 → 1.3363 → 1.34
    assert [(w.rate, w.base, w.amount) for w in totals.withholdings] == [
        (D(15), D("94.99"), D("14.25")),
        (D(7), D("19.09"), D("1.34")),
    ]
    # To pay: 269.29 - (14.25 + 1.34 = 15.59) = 253.70.
    assert (totals.withholding, totals.due) == (D("15.59"), D("253.70"))


def test_a_general_discount_rounds_on_each_iva_group_not_on_the_whole():
    totals = document_totals(
        [TotalsLine(D("0.10"), D(21)), TotalsLine(D("0.10"), D(10))], discount_percent=D(5)
    )
    # Each group: 0.10 × 5 % = 0.005 → 0.01; on the whole it would be 0.20 × 5 % = 0.01.
    assert totals.discount == D("0.02")
    assert [t.base for t in totals.taxes] == [D("0.09"), D("0.09")]


# --- Recargo + IRPF + payment days: the brief's invoice, stored, issued, documented ------------


def test_the_brief_s_invoice_is_stored_recorded_and_written_as_the_sources_say(rt):
    issuer(rt)
    invoice_id = draft(rt, line("Asesoría fiscal", "1", "1000", "21", withholding_rate="15"))
    issue(rt, invoice_id)
    with rt.sessions() as s:
        invoice = s.get_one(Invoice, invoice_id)
        [tax] = invoice.taxes
        assert (tax.rate, tax.base, tax.amount) == (D(21), D("1000.00"), D("210.00"))
        assert (tax.surcharge_rate, tax.surcharge_amount) == (D("5.2"), D("52.00"))
        assert [(w.rate, w.base, w.amount) for w in invoice.withholdings] == [
            (D(15), D("1000.00"), D("150.00"))
        ]
        assert invoice.lines[0].withholding_rate == D(15)
        assert (invoice.base_total, invoice.tax_total, invoice.surcharge_total) == (
            D("1000.00"),
            D("210.00"),
            D("52.00"),
        )
        assert (invoice.total, invoice.withholding_total, invoice.amount_due) == (
            D("1262.00"),
            D("150.00"),
            D("1112.00"),
        )
        # Issued on 01/07/2026 to a customer with 30 days: due 31/07/2026.
        assert (invoice.issue_date, invoice.due_date) == (date(2026, 7, 1), date(2026, 7, 31))
        record = chain.alta_of(invoice)
        assert (record.cuota_total, record.importe_total) == (D("262.00"), D("1262.00"))
        assert chain.qr_url_of(invoice).endswith("&importe=1262.00")

    record, fe = documents_of(rt, invoice_id)
    [detalle] = record.iter(f"{SUM1}DetalleDesglose")
    assert [(child.tag.removeprefix(SUM1), child.text) for child in detalle] == [
        ("Impuesto", "01"),
        ("ClaveRegimen", "01"),
        ("CalificacionOperacion", "S1"),
        ("TipoImpositivo", "21.00"),
        ("BaseImponibleOimporteNoSujeto", "1000.00"),
        ("CuotaRepercutida", "210.00"),
        ("TipoRecargoEquivalencia", "5.20"),
        ("CuotaRecargoEquivalencia", "52.00"),
    ]
    # CuotaTotal = IVA + recargo; ImporteTotal = base + IVA + recargo (IRPF not subtracted).
    assert text(record, f".//{SUM1}CuotaTotal") == "262.00"
    assert text(record, f".//{SUM1}ImporteTotal") == "1262.00"

    tax = fe.find(".//Invoice/TaxesOutputs/Tax")
    assert [(child.tag, child.findtext("TotalAmount") or child.text) for child in tax] == [
        ("TaxTypeCode", "01"),
        ("TaxRate", "21.00"),
        ("TaxableBase", "1000.00"),
        ("TaxAmount", "210.00"),
        ("EquivalenceSurcharge", "5.20"),
        ("EquivalenceSurchargeAmount", "52.00"),
    ]
    withheld = fe.find(".//Invoice/TaxesWithheld/Tax")
    assert [(child.tag, child.findtext("TotalAmount") or child.text) for child in withheld] == [
        ("TaxTypeCode", "04"),
        ("TaxRate", "15.00"),
        ("TaxableBase", "1000.00"),
        ("TaxAmount", "150.00"),
    ]
    totals = fe.find(".//Invoice/InvoiceTotals")
    assert [(child.tag, child.text) for child in totals] == [
        ("TotalGrossAmount", "1000.00"),
        ("TotalGrossAmountBeforeTaxes", "1000.00"),
        ("TotalTaxOutputs", "262.00"),  # 210.00 + 52.00
        ("TotalTaxesWithheld", "150.00"),
        ("InvoiceTotal", "1112.00"),  # 1000.00 + 262.00 - 150.00
        ("TotalOutstandingAmount", "1112.00"),
        ("TotalExecutableAmount", "1112.00"),
    ]
    # The line carries the same taxes, for information.
    item = fe.find(".//Items/InvoiceLine")
    assert item.findtext("TaxesWithheld/Tax/TaxAmount/TotalAmount") == "150.00"
    assert item.findtext("TaxesOutputs/Tax/EquivalenceSurchargeAmount/TotalAmount") == "52.00"
    installment = fe.find(".//PaymentDetails/Installment")
    assert [child.tag for child in installment] == [
        "InstallmentDueDate",
        "InstallmentAmount",
        "PaymentMeans",
        "AccountToBeCredited",
    ]
    assert installment.findtext("InstallmentDueDate") == "2026-07-31"
    assert installment.findtext("InstallmentAmount") == "1112.00"
    assert installment.findtext("PaymentMeans") == "04"  # transferencia
    assert installment.findtext("AccountToBeCredited/IBAN") == IBAN
    batch = fe.find(".//FileHeader/Batch")
    assert batch.findtext("TotalInvoicesAmount/TotalAmount") == "1112.00"
    assert batch.findtext("TotalExecutableAmount/TotalAmount") == "1112.00"


def test_payments_settle_the_amount_due_not_the_total(rt):
    issuer(rt)
    invoice_id = draft(rt, line("Asesoría fiscal", "1", "1000", "21", withholding_rate="15"))
    issue(rt, invoice_id)
    with rt.sessions.begin() as s, pytest.raises(InvalidDocumentError) as refused:
        record_payment(s, invoice_id, "1262.00", date(2026, 7, 20))
    assert refused.value.errors == [
        ("amount", "1262.00 is more than the 1112.00 still owed on F2026-00001")
    ]
    with rt.sessions.begin() as s:
        part = record_payment(s, invoice_id, "1000.00", date(2026, 7, 20))
        assert (part.invoice.status, part.invoice.outstanding) == ("issued", D("112.00"))
    with rt.sessions.begin() as s:
        rest = record_payment(s, invoice_id, "112.00", date(2026, 7, 31))
        assert (rest.invoice.status, rest.invoice.paid_total) == ("paid", D("1112.00"))
        assert rest.invoice.outstanding == D("0.00")


# --- Everything at once: several rates, exempt, discount, two IRPF rates ----------------------


def mixed_lines() -> list[LineData]:
    return [
        # 3 × 33.33 = 99.99 at 21 %, IRPF 15 %
        line("Montaje", "3", "33.33", "21", withholding_rate="15"),
        # 7 × 12.345 = 86.415 → 86.42 at 10 %
        line("Bombillas", "7", "12.345", "10"),
        # 2 × 10.05 = 20.10 at 4 %, IRPF 7 %
        line("Manual técnico", "2", "10.05", "4", withholding_rate="7"),
        # 40.00 exempt (art. 20 LIVA)
        line("Curso", "1", "40", "0", exemption_cause="E1"),
    ]


def test_several_rates_with_a_general_discount_and_two_irpf_rates(rt):
    issuer(rt)
    invoice_id = draft(rt, *mixed_lines(), discount_percent="5")
    issue(rt, invoice_id)
    with rt.sessions() as s:
        invoice = s.get_one(Invoice, invoice_id)
        # The amounts worked out in test_surcharge_general_discount_and_withholding_round_...
        assert invoice.discount_percent == D(5)
        assert (invoice.discount_total, invoice.base_total) == (D("12.33"), D("234.18"))
        assert (invoice.tax_total, invoice.surcharge_total, invoice.total) == (
            D("28.92"),
            D("6.19"),
            D("269.29"),
        )
        assert (invoice.withholding_total, invoice.amount_due) == (D("15.59"), D("253.70"))
        assert [
            (t.rate, t.exemption_cause, t.base, t.amount, t.surcharge_rate, t.surcharge_amount)
            for t in invoice.taxes
        ] == [
            (D(21), None, D("94.99"), D("19.95"), D("5.2"), D("4.94")),
            (D(10), None, D("82.10"), D("8.21"), D("1.4"), D("1.15")),
            (D(4), None, D("19.09"), D("0.76"), D("0.5"), D("0.10")),
            (D(0), "E1", D("38.00"), D("0.00"), None, D("0.00")),
        ]
        assert [(w.rate, w.base, w.amount) for w in invoice.withholdings] == [
            (D(15), D("94.99"), D("14.25")),
            (D(7), D("19.09"), D("1.34")),
        ]

    record, fe = documents_of(rt, invoice_id)
    assert texts(record, f".//{SUM1}TipoRecargoEquivalencia") == ["5.20", "1.40", "0.50"]
    assert texts(record, f".//{SUM1}CuotaRecargoEquivalencia") == ["4.94", "1.15", "0.10"]
    # The exempt group carries neither rate nor cuota nor recargo.
    exempt = record.find(f".//{SUM1}OperacionExenta/..")
    assert exempt.find(f"{SUM1}TipoRecargoEquivalencia") is None
    assert text(record, f".//{SUM1}CuotaTotal") == "35.11"  # 28.92 + 6.19
    assert text(record, f".//{SUM1}ImporteTotal") == "269.29"  # 234.18 + 28.92 + 6.19

    totals = fe.find(".//Invoice/InvoiceTotals")
    assert [(child.tag, child.text) for child in totals if child.text.strip()] == [
        ("TotalGrossAmount", "246.51"),
        ("TotalGeneralDiscounts", "12.33"),
        ("TotalGrossAmountBeforeTaxes", "234.18"),
        ("TotalTaxOutputs", "35.11"),
        ("TotalTaxesWithheld", "15.59"),
        ("InvoiceTotal", "253.70"),  # 234.18 + 35.11 - 15.59
        ("TotalOutstandingAmount", "253.70"),
        ("TotalExecutableAmount", "253.70"),
    ]
    discount = totals.find("GeneralDiscounts/Discount")
    assert [(child.tag, child.text) for child in discount] == [
        ("DiscountReason", "Descuento general 5 %"),
        ("DiscountRate", "5.00"),
        ("DiscountAmount", "12.33"),
    ]
    assert texts(fe, ".//Invoice/TaxesOutputs/Tax/TaxableBase/TotalAmount") == [
        "94.99",
        "82.10",
        "19.09",
        "38.00",
    ]
    assert texts(fe, ".//Invoice/TaxesOutputs/Tax/EquivalenceSurcharge") == ["5.20", "1.40", "0.50"]
    assert texts(fe, ".//Invoice/TaxesWithheld/Tax/TaxRate") == ["15.00", "7.00"]
    assert texts(fe, ".//Invoice/TaxesWithheld/Tax/TaxAmount/TotalAmount") == ["14.25", "1.34"]
    # Line 3: 20.10 less its 5 % (1.01) = 19.09; IRPF 7 % = 1.34 (informative, line level).
    third = fe.findall(".//Items/InvoiceLine")[2]
    assert third.findtext("GrossAmount") == "20.10"
    assert third.findtext("TaxesOutputs/Tax/TaxableBase/TotalAmount") == "19.09"
    assert third.findtext("TaxesWithheld/Tax/TaxAmount/TotalAmount") == "1.34"
    with rt.sessions() as s:
        facturae.check_totals(exports.facturae_invoice(s.get_one(Invoice, invoice_id)))


def test_a_zero_rate_line_gets_a_zero_surcharge_that_the_records_leave_out(rt):
    issuer(rt)
    invoice_id = draft(rt, line("Mascarillas", "10", "1", "0"), line("Tijeras", "1", "10", "21"))
    issue(rt, invoice_id)
    with rt.sessions() as s:
        invoice = s.get_one(Invoice, invoice_id)
        # 21 %: 10.00 → IVA 2.10, recargo 0.52; 0 %: 10.00 → 0.00 and 0 % recargo, 0.00.
        assert [(t.rate, t.surcharge_rate, t.surcharge_amount) for t in invoice.taxes] == [
            (D(21), D("5.2"), D("0.52")),
            (D(0), D(0), D("0.00")),
        ]
        assert invoice.total == D("22.62")  # 20.00 + 2.10 + 0.52
    record, fe = documents_of(rt, invoice_id)
    assert texts(record, f".//{SUM1}TipoRecargoEquivalencia") == ["5.20"]
    assert texts(fe, ".//Invoice/TaxesOutputs/Tax/EquivalenceSurcharge") == ["5.20"]


# --- When the customer's terms are read ---------------------------------------------------------


def test_an_existing_customer_keeps_its_stored_terms(rt):
    with rt.sessions.begin() as s:
        made = Invoicing(s).find_or_create_customer(RETAILER)
        assert (made.customer.equivalence_surcharge, made.customer.payment_days) == (True, 30)
    with rt.sessions.begin() as s:
        again = Invoicing(s).find_or_create_customer(
            dataclasses.replace(RETAILER, equivalence_surcharge=False, payment_days=0)
        )
        assert not again.created
        assert (again.customer.equivalence_surcharge, again.customer.payment_days) == (True, 30)


def test_terms_are_checked_when_a_customer_is_created(rt):
    with rt.sessions.begin() as s, pytest.raises(InvalidDocumentError) as refused:
        Invoicing(s).find_or_create_customer(
            CustomerData(
                name="Épicerie Dupont",
                tax_id="FR40303265045",
                country="FR",
                equivalence_surcharge=True,
                payment_days=400,
            )
        )
    assert [path for path, _ in refused.value.errors] == [
        "customer.equivalence_surcharge",
        "customer.payment_days",
    ]
    assert "only customers with a Spanish NIF" in refused.value.errors[0][1]


def test_a_draft_is_totalled_again_at_issue_when_its_customer_changed(rt):
    issuer(rt)
    plain = dataclasses.replace(RETAILER, equivalence_surcharge=False, payment_days=0)
    invoice_id = draft(rt, line("Tijeras", "10", "10", "21"), customer=plain)
    with rt.sessions() as s:
        assert s.get_one(Invoice, invoice_id).total == D("121.00")  # 100.00 + 21.00
    with rt.sessions.begin() as s:
        customer = s.scalar(select(Customer).where(Customer.tax_id == "12345678Z"))
        customer.equivalence_surcharge, customer.payment_days = True, 60
    issue(rt, invoice_id)
    with rt.sessions() as s:
        invoice = s.get_one(Invoice, invoice_id)
        # 100.00 + IVA 21.00 + recargo 5,2 % 5.20 = 126.20; due 01/07 + 60 days = 30/08/2026.
        assert (invoice.surcharge_total, invoice.total) == (D("5.20"), D("126.20"))
        assert invoice.due_date == date(2026, 8, 30)
        assert chain.alta_of(invoice).importe_total == D("126.20")


def test_editing_the_discount_or_the_customer_totals_the_draft_again(rt):
    plain = dataclasses.replace(RETAILER, tax_id="B12345674", name="Acme Soluciones SL")
    plain = dataclasses.replace(plain, equivalence_surcharge=False)
    invoice_id = draft(rt, line("Tijeras", "10", "10", "21"), customer=plain)
    with rt.sessions.begin() as s:
        edited = Invoicing(s).edit_draft(invoice_id, discount_percent="12.5")
        # 100.00 - 12,5 % (12.50) = 87.50; IVA 18.375 → 18.38; total 105.88.
        assert (edited.discount_total, edited.base_total, edited.total) == (
            D("12.50"),
            D("87.50"),
            D("105.88"),
        )
    with rt.sessions.begin() as s:
        edited = Invoicing(s).edit_draft(invoice_id, customer=RETAILER)
        # Same base; recargo 5,2 % of 87.50 = 4.55: total 87.50 + 18.38 + 4.55 = 110.43.
        assert (edited.surcharge_total, edited.total) == (D("4.55"), D("110.43"))
    with rt.sessions.begin() as s, pytest.raises(InvalidDocumentError) as refused:
        Invoicing(s).edit_draft(invoice_id, discount_percent="100.5")
    assert refused.value.errors == [("discount_percent", "must be between 0 and 100")]


# --- IRPF on lines and in the catalog -----------------------------------------------------------


def test_the_catalog_withholding_wins_like_its_iva(rt):
    from invoicing import catalog

    with rt.sessions.begin() as s:
        catalog.create_product(
            s, catalog.ProductData("ASES-H", "Asesoría (hora)", "60", 21, withholding_rate="15")
        )
        catalog.create_product(s, catalog.ProductData("CABLE", "Cable", "2", 21))
    invoice_id = draft(
        rt,
        LineData(None, "10", None, None, sku="ASES-H", withholding_rate="7"),
        LineData(None, "5", None, None, sku="CABLE", withholding_rate="7"),
        line("Desplazamiento", "1", "30", "21", withholding_rate="7"),
    )
    with rt.sessions() as s:
        invoice = s.get_one(Invoice, invoice_id)
        assert [item.withholding_rate for item in invoice.lines] == [D(15), None, D(7)]
        # 15 %: 600.00 → 90.00; 7 %: 30.00 → 2.10.
        assert [(w.rate, w.base, w.amount) for w in invoice.withholdings] == [
            (D(15), D("600.00"), D("90.00")),
            (D(7), D("30.00"), D("2.10")),
        ]


@pytest.mark.parametrize(
    ("rate", "message"),
    [
        ("0", "must be more than 0 and less than 100 (percent)"),
        ("100", "must be more than 0 and less than 100 (percent)"),
        ("15.125", "at most 2 decimals are allowed"),
        ("quince", "withholding_rate must be a number, got 'quince'"),
    ],
)
def test_a_bad_withholding_rate_is_refused_on_the_line(rt, rate, message):
    with rt.sessions.begin() as s, pytest.raises(InvalidDocumentError) as refused:
        Invoicing(s).create_draft_invoice(
            customer=RETAILER, lines=[line("X", "1", "1", "21", withholding_rate=rate)]
        )
    assert refused.value.errors == [("lines[0].withholding_rate", message)]


# --- Conversions and corrections carry it all ----------------------------------------------------


def test_a_converted_document_keeps_its_discount_and_surcharge(rt):
    quote = draft(rt, line("Tijeras", "10", "10", "21"), kind="quote", discount_percent="10")
    with rt.sessions.begin() as s:
        order = documents.convert(s, [quote], "order")
        invoice = documents.convert(s, [order.id], "invoice")
        # 100.00 - 10 % = 90.00; IVA 18.90; recargo 4.68; total 113.58.
        assert invoice.discount_percent == D(10)
        assert (invoice.base_total, invoice.surcharge_total, invoice.total) == (
            D("90.00"),
            D("4.68"),
            D("113.58"),
        )


def test_delivery_notes_with_different_discounts_are_not_invoiced_together(rt):
    with rt.sessions.begin() as s:
        notes = []
        for discount in ("0", "5"):
            made = Invoicing(s).create_draft_invoice(
                customer=RETAILER,
                lines=[line("Tijeras", "1", "10", "21")],
                kind="delivery_note",
                discount_percent=discount,
            )
            notes.append(made.invoice.id)
    with rt.sessions.begin() as s, pytest.raises(InvalidDocumentError, match="different general"):
        documents.convert(s, notes, "invoice")


def test_a_substitution_of_an_invoice_with_surcharge_states_the_rectified_surcharge(rt):
    issuer(rt)
    original = draft(rt, line("Asesoría fiscal", "1", "1000", "21", withholding_rate="15"))
    issue(rt, original)
    with rt.sessions.begin() as s:
        rectifying = corrections.rectify(
            s, original, invoice_type="R1", method="S", reason="Precio erróneo"
        )
        assert (rectifying.surcharge_total, rectifying.withholding_total) == (
            D("52.00"),
            D("150.00"),
        )
        rectifying_id = rectifying.id
    issue(rt, rectifying_id)
    record, fe = documents_of(rt, rectifying_id)
    importe = record.find(f".//{SUM1}ImporteRectificacion")
    assert [(child.tag.removeprefix(SUM1), child.text) for child in importe] == [
        ("BaseRectificada", "1000.00"),
        ("CuotaRectificada", "210.00"),
        ("CuotaRecargoRectificado", "52.00"),
    ]
    assert fe.findtext(".//InvoiceTotals/InvoiceTotal") == "1112.00"


# --- The PDF ------------------------------------------------------------------------------------


def pdf_text(rt, invoice_id: int) -> str:
    import io

    from pypdf import PdfReader

    with rt.sessions() as s:
        data = pdf.pdf_of(s.get_one(Invoice, invoice_id))
    pages = PdfReader(io.BytesIO(data)).pages
    return " ".join(" ".join(page.extract_text().split()) for page in pages)


def test_the_pdf_states_surcharge_withholding_discount_due_date_and_what_to_pay(rt):
    issuer(rt)
    invoice_id = draft(rt, *mixed_lines(), discount_percent="5")
    issue(rt, invoice_id)
    text_ = pdf_text(rt, invoice_id)
    assert "Vencimiento 31/07/2026" in text_
    assert "IVA 21 % 94,99 € 19,95 €" in text_
    assert "Recargo de equivalencia 5,2 % 94,99 € 4,94 €" in text_
    assert "Recargo de equivalencia 1,4 % 82,10 € 1,15 €" in text_
    assert "Recargo de equivalencia 0,5 % 19,09 € 0,10 €" in text_
    assert "Suma de importes 246,51 €" in text_
    assert "Descuento general 5 % -12,33 €" in text_
    assert "Total base imponible 234,18 €" in text_
    assert "Total cuota IVA 28,92 €" in text_
    assert "Total recargo de equivalencia 6,19 €" in text_
    assert "TOTAL FACTURA 269,29 €" in text_
    assert "Retención IRPF 15 % 94,99 € -14,25 €" in text_
    assert "Retención IRPF 7 % 19,09 € -1,34 €" in text_
    assert "TOTAL A PAGAR 253,70 €" in text_
    assert f"transferencia a la cuenta IBAN {IBAN}" in text_
    assert "Vencimiento: 31/07/2026" in text_


def test_a_draft_pdf_says_when_it_will_be_due(rt):
    invoice_id = draft(rt, line("Tijeras", "1", "10", "21"))
    assert "Vencimiento: a 30 días de la fecha de expedición" in pdf_text(rt, invoice_id)


def test_an_invoice_without_any_of_it_prints_as_before(rt):
    plain = CustomerData(name="Acme Soluciones SL", tax_id="B12345674")
    invoice_id = draft(rt, line("Tijeras", "1", "10", "21"), customer=plain)
    text_ = pdf_text(rt, invoice_id)
    for absent in ("Recargo", "Retención", "TOTAL A PAGAR", "Descuento general", "Vencimiento"):
        assert absent not in text_


# --- Facturae keeps its own arithmetic strict --------------------------------------------------


def issued_facturae(rt) -> facturae.Invoice:
    issuer(rt)
    invoice_id = draft(rt, *mixed_lines(), discount_percent="5")
    issue(rt, invoice_id)
    with rt.sessions() as s:
        return exports.facturae_invoice(s.get_one(Invoice, invoice_id))


def problems(invoice: facturae.Invoice) -> list[str]:
    with pytest.raises(facturae.FacturaeTotalsError) as caught:
        facturae.check_totals(invoice)
    return caught.value.problems


def test_facturae_refuses_a_wrong_surcharge(rt):
    good = issued_facturae(rt)
    first = dataclasses.replace(good.taxes[0], surcharge_amount=D("4.95"))
    wrong = dataclasses.replace(good, taxes=[first, *good.taxes[1:]])
    assert problems(wrong) == [
        "a 5.2% recargo de equivalencia on 94.99 is 4.94 (or 4.94 line by line), not 4.95",
        "the IVA and recargo de equivalencia amounts add up to 35.12, "
        "not to the total tax outputs 35.11",
    ]


def test_facturae_refuses_a_total_that_forgets_the_withholding(rt):
    good = issued_facturae(rt)
    wrong = dataclasses.replace(good, invoice_total=D("269.29"))
    # InvoiceTotal is 234.18 + 35.11 - 15.59 = 253.70, not the total before withholding.
    assert problems(wrong) == [
        "base 234.18 + IVA and surcharge 35.11 - withheld 15.59 = 253.70, "
        "not the invoice total 269.29",
    ]


def test_facturae_refuses_a_wrong_withholding_and_a_wrong_general_discount(rt):
    good = issued_facturae(rt)
    withheld = dataclasses.replace(good.withholdings[0], amount=D("14.24"))
    wrong = dataclasses.replace(
        good, withholdings=[withheld, good.withholdings[1]], total_taxes_withheld=D("15.58")
    )
    assert problems(wrong) == [
        "IRPF 15% on 94.99 is 14.25 (or 14.25 line by line), not 14.24",
        "base 234.18 + IVA and surcharge 35.11 - withheld 15.58 = 253.71, "
        "not the invoice total 253.70",
    ]
    discount = dataclasses.replace(good.general_discount, amount=D("12.34"))
    found = problems(dataclasses.replace(good, general_discount=discount))
    assert found == [
        "a 5% general discount on the lines at each IVA rate adds up to 12.33, not 12.34",
        "the line gross amounts add up to 246.51, less the general discount 12.34 to 234.17, "
        "not to the total before taxes 234.18",
    ]


def test_facturae_refuses_a_line_without_the_surcharge_of_its_rate(rt):
    good = issued_facturae(rt)
    first = dataclasses.replace(good.lines[0], surcharge_rate=None, surcharge_amount=None)
    wrong = dataclasses.replace(good, lines=[first, *good.lines[1:]])
    # Without its recargo, the line is of no breakdown entry (the 21 % one carries recargo).
    assert problems(wrong)[0] == "lines at IVA 21% have no entry in the IVA breakdown"


# --- VERI*FACTU inputs --------------------------------------------------------------------------


def test_a_verifactu_tax_line_carries_a_surcharge_only_with_tax_and_with_both_values():
    with pytest.raises(verifactu.VerifactuError, match="carries no recargo"):
        verifactu.TaxLine(
            None, D("10.00"), exencion="E1", surcharge_rate=D("5.2"), surcharge_amount=D("0.52")
        )
    with pytest.raises(verifactu.VerifactuError, match="both its rate and its amount"):
        verifactu.TaxLine(D(21), D("10.00"), D("2.10"), surcharge_rate=D("5.2"))


def test_an_issued_invoice_stays_as_issued_when_its_customer_changes(rt):
    issuer(rt)
    invoice_id = draft(rt, line("Tijeras", "10", "10", "21"))
    issue(rt, invoice_id)
    with rt.sessions.begin() as s:
        customer = s.scalar(select(Customer).where(Customer.tax_id == "12345678Z"))
        customer.equivalence_surcharge = False
    with rt.sessions() as s:
        invoice = s.get_one(Invoice, invoice_id)
        assert (invoice.status, invoice.surcharge_total) == (InvoiceStatus.ISSUED, D("5.20"))
    with rt.sessions.begin() as s, pytest.raises(DocumentStateError):
        Invoicing(s).edit_draft(invoice_id, discount_percent="5")


# --- The invoice page and the print page ---------------------------------------------------


def cell(page: str, testid: str) -> str:
    import re

    found = re.search(rf'data-testid="{testid}"[^>]*>([^<]*)<', page)
    assert found is not None, testid
    return found.group(1).strip()


def test_the_invoice_and_print_pages_show_every_amount(rt, client):
    issuer(rt)
    invoice_id = draft(rt, *mixed_lines(), discount_percent="5")
    signed_in(rt, client)
    page = client.get(f"/ui/invoices/{invoice_id}").get_data(as_text=True)
    assert cell(page, "due-date") == "a 30 días de la fecha de expedición"
    issue(rt, invoice_id)

    page = client.get(f"/ui/invoices/{invoice_id}").get_data(as_text=True)
    assert cell(page, "customer-surcharge") == "Sí"
    assert cell(page, "due-date") == "31 jul 2026"
    assert cell(page, "general-discount") == "-12,33\u00a0€"
    assert cell(page, "surcharge-total") == "6,19\u00a0€"
    assert cell(page, "invoice-total") == "269,29\u00a0€"
    assert cell(page, "amount-due") == "253,70\u00a0€"
    assert cell(page, "outstanding") == "253,70\u00a0€"
    assert "Recargo de equivalencia 5,2 %" in page and "Retención IRPF 15 %" in page
    assert 'name="amount" inputmode="decimal" required value="253,70"' in page

    printed = client.get(f"/ui/invoices/{invoice_id}/print").get_data(as_text=True)
    assert cell(printed, "due-date") == "31 jul 2026"
    assert cell(printed, "total") == "269,29\u00a0€"
    assert cell(printed, "amount-due") == "253,70\u00a0€"
    assert cell(printed, "general-discount") == "-12,33\u00a0€"
    assert printed.count('data-testid="surcharge"') == 3
    assert printed.count('data-testid="withholding"') == 2
    assert "Vencimiento: 31 jul 2026" in printed


def test_recargo_is_charged_on_goods_only_never_on_services(rt):
    from invoicing import catalog, chain, exports
    from invoicing import verifactu as vf
    from invoicing.issuing import issue
    from invoicing.models import Invoice
    from invoicing.service import CustomerData, Invoicing, LineData
    from tests.factories import make_issuer

    make_issuer(rt)
    retailer = CustomerData(
        name="Ferretería López",
        tax_id="12345678Z",
        street="Calle Real 3",
        postal_code="41001",
        city="Sevilla",
        equivalence_surcharge=True,
    )
    with rt.sessions.begin() as s:
        catalog.create_product(
            s,
            catalog.ProductData(
                sku="MONTAJE", name="Montaje", unit_price="50", tax_rate="21", service=True
            ),
        )
        draft = (
            Invoicing(s)
            .create_draft_invoice(
                customer=retailer,
                lines=[
                    LineData(description="Taladro", quantity=2, unit_price="100", tax_rate=21),
                    LineData(
                        description=None, quantity=1, unit_price=None, tax_rate=None, sku="MONTAJE"
                    ),
                    LineData(
                        description="Formación",
                        quantity=1,
                        unit_price="100",
                        tax_rate=21,
                        service=True,
                    ),
                ],
            )
            .invoice.id
        )
        issue(s, draft)
    with rt.sessions() as s:
        invoice = s.get_one(Invoice, draft)
        rows = sorted((t.rate, t.base, t.surcharge_rate, t.surcharge_amount) for t in invoice.taxes)
        # 5.2 % only on the 200 € of goods; the 150 € of services carry none.
        assert rows == [
            (Decimal(21), Decimal("150.00"), None, Decimal("0.00")),
            (Decimal(21), Decimal("200.00"), Decimal("5.2"), Decimal("10.40")),
        ]
        assert invoice.surcharge_total == Decimal("10.40")
        assert invoice.total == Decimal("350.00") + Decimal("73.50") + Decimal("10.40")
        vf.validate(chain.document_for(s, invoice))
        exports.facturae_xml(invoice)  # validated, totals checked line by line
