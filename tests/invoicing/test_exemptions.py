"""Exempt and 0 % lines: grouped by rate and cause everywhere, every document still produced."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from lxml import etree

from invoicing import chain, exports, facturae, pdf
from invoicing import verifactu as vf
from invoicing.errors import InvalidDocumentError
from invoicing.issuing import issue
from invoicing.models import Invoice
from invoicing.service import Invoicing, LineData
from tests.factories import ACME, make_issuer

NOW = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


def _issued(rt, lines: list[LineData]) -> int:
    make_issuer(rt)
    with rt.sessions.begin() as s:
        draft = Invoicing(s).create_draft_invoice(customer=ACME, lines=lines).invoice.id
        issue(s, draft, now=NOW)
    return draft


def test_two_exemption_causes_and_a_taxed_zero_rate_line_produce_every_document(rt):
    invoice_id = _issued(
        rt,
        [
            LineData(
                description="Curso reglado",
                quantity=1,
                unit_price="300",
                tax_rate=0,
                exemption_cause="E1",
            ),
            LineData(
                description="Envío a Andorra",
                quantity=1,
                unit_price="200",
                tax_rate=0,
                exemption_cause="E2",
            ),
            LineData(description="Libro de texto", quantity=2, unit_price="10", tax_rate=0),
            LineData(description="Consultoría", quantity=1, unit_price="100", tax_rate=21),
        ],
    )
    with rt.sessions() as s:
        invoice = s.get_one(Invoice, invoice_id)
        assert sorted((t.rate, t.exemption_cause or "") for t in invoice.taxes) == [
            (Decimal(0), ""),
            (Decimal(0), "E1"),
            (Decimal(0), "E2"),
            (Decimal(21), ""),
        ]

        document = exports.facturae_xml(invoice)  # validated against the XSD inside
        root = etree.fromstring(document)
        outputs = root.findall("Invoices/Invoice/TaxesOutputs/Tax")
        assert sorted(
            (t.findtext("TaxRate"), t.findtext("TaxableBase/TotalAmount")) for t in outputs
        ) == [
            ("0.00", "20.00"),
            ("0.00", "200.00"),
            ("0.00", "300.00"),
            ("21.00", "100.00"),
        ]
        # Each exempt line says so, and the invoice states the legal ground of each exemption.
        events = {
            line.findtext("ItemDescription"): (
                line.findtext("SpecialTaxableEvent/SpecialTaxableEventCode"),
                line.findtext("SpecialTaxableEvent/SpecialTaxableEventReason"),
            )
            for line in root.iter("InvoiceLine")
        }
        assert events["Curso reglado"][0] == "01" and "artículo 20" in events["Curso reglado"][1]
        assert (
            events["Envío a Andorra"][0] == "01" and "artículo 21" in events["Envío a Andorra"][1]
        )
        assert events["Libro de texto"] == (None, None) and events["Consultoría"] == (None, None)
        literals = [r.text for r in root.iter("LegalReference")]
        assert len(literals) == 2
        assert "artículo 20" in literals[0] and "artículo 21" in literals[1]

        # The VERI*FACTU record: one DetalleDesglose per group, each exemption with its cause.
        node = etree.fromstring(chain.alta_of(invoice).xml)
        detalles = [
            (
                d.findtext(f"{{{vf.NS_SUM1}}}OperacionExenta"),
                d.findtext(f"{{{vf.NS_SUM1}}}TipoImpositivo"),
            )
            for d in node.iter(f"{{{vf.NS_SUM1}}}DetalleDesglose")
        ]
        assert sorted(detalles, key=str) == sorted(
            [("E1", None), ("E2", None), (None, "0.00"), (None, "21.00")], key=str
        )
        vf.validate(chain.document_for(s, invoice))
        assert pdf.pdf_of(invoice).startswith(b"%PDF-")


def test_facturae_refuses_two_breakdown_entries_of_the_same_rate_and_cause():
    line = facturae.Line(
        description="x",
        quantity=Decimal(1),
        unit_price=Decimal(10),
        gross_amount=Decimal(10),
        tax_rate=Decimal(0),
        tax_amount=Decimal(0),
        exemption="E1",
    )
    tax = facturae.TaxTotal(rate=Decimal(0), base=Decimal(10), amount=Decimal(0), exemption="E1")
    problems = facturae._tax_problems(
        facturae.Invoice(
            number="F1",
            issue_date=NOW.date(),
            seller=None,  # type: ignore[arg-type]
            buyer=None,  # type: ignore[arg-type]
            lines=[line],
            taxes=[tax, tax],
            gross_amount_before_taxes=Decimal(10),
            total_tax_outputs=Decimal(0),
            invoice_total=Decimal(10),
        )
    )
    assert problems == ["IVA 0% exempt (E1) appears more than once in the breakdown"]


def test_an_invoice_whose_facturae_could_not_be_produced_is_not_issued(rt):
    from sqlalchemy import select

    from invoicing.errors import DocumentStateError
    from invoicing.models import Customer, VerifactuRecord

    make_issuer(rt)
    with rt.sessions.begin() as s:
        draft = (
            Invoicing(s)
            .create_draft_invoice(
                customer=ACME,
                lines=[LineData(description="Informe", quantity=1, unit_price="10", tax_rate=21)],
            )
            .invoice.id
        )
        # A country saved before the core checked countries: no Facturae can name it.
        s.scalars(select(Customer)).one().country = "XX"
    with pytest.raises(DocumentStateError) as refused, rt.sessions.begin() as s:
        issue(s, draft, now=NOW)
    assert "no se ha emitido" in refused.value.args[0].es

    with rt.sessions() as s:
        invoice = s.get_one(Invoice, draft)
        assert (invoice.status, invoice.number) == ("draft", None)  # nothing numbered
        assert s.scalars(select(VerifactuRecord)).all() == []  # nothing chained


def test_a_line_text_longer_than_the_invoice_keeps_is_refused_at_the_draft(rt):
    with pytest.raises(InvalidDocumentError) as refused, rt.sessions.begin() as s:
        Invoicing(s).create_draft_invoice(
            customer=ACME,
            lines=[LineData(description="Informe " * 70, quantity=1, unit_price="10", tax_rate=21)],
        )
    [(field, message)] = refused.value.errors
    assert field == "lines[0].description" and "500" in message.es
