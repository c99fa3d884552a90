"""The catalog gives lines their name, price and IVA by SKU, including CRM codes mapped to it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from invoicing import catalog, chain, exports, facturae, verifactu
from invoicing.errors import DocumentStateError, InvalidDocumentError
from invoicing.issuing import issue
from invoicing.models import Invoice
from invoicing.service import Invoicing, LineData
from tests.factories import ACME, make_issuer


def add_products(rt) -> None:
    with rt.sessions.begin() as s:
        catalog.create_product(s, catalog.ProductData("CONS-H", "Consultoría (hora)", "95.00", 21))
        catalog.create_product(
            s, catalog.ProductData("FORM", "Formación bonificada", "300", 0, exemption_cause="E1")
        )
        catalog.map_code(s, "hubspot", "PRD-77", "CONS-H")


def draft(rt, *lines: LineData, source: str | None = "hubspot") -> int:
    with rt.sessions.begin() as s:
        return (
            Invoicing(s)
            .create_draft_invoice(customer=ACME, lines=list(lines), source=source)
            .invoice.id
        )


def line(**fields) -> LineData:
    return LineData(
        description=fields.pop("description", None),
        quantity=fields.pop("quantity", 1),
        unit_price=fields.pop("unit_price", None),
        tax_rate=fields.pop("tax_rate", None),
        **fields,
    )


def test_a_sku_alone_brings_the_catalog_name_price_and_iva(rt):
    add_products(rt)
    invoice_id = draft(rt, line(sku="CONS-H", quantity=10))
    with rt.sessions() as s:
        [item] = s.get_one(Invoice, invoice_id).lines
        assert (item.description, item.unit_price, item.tax_rate) == (
            "Consultoría (hora)",
            Decimal("95.00000000"),
            Decimal("21.0000"),
        )
        assert item.base == Decimal("950.00") and item.product_id is not None


def test_the_negotiated_price_wins_but_the_catalog_iva_always_applies(rt):
    add_products(rt)
    invoice_id = draft(
        rt,
        line(
            sku="CONS-H",
            quantity=2,
            unit_price="80",
            tax_rate=10,
            description="Consultoría con descuento",
        ),
    )
    with rt.sessions() as s:
        [item] = s.get_one(Invoice, invoice_id).lines
        assert (item.unit_price, item.tax_rate) == (Decimal("80"), Decimal("21"))
        assert item.description == "Consultoría con descuento"


def test_a_crm_code_is_translated_through_its_mapping_for_that_crm_only(rt):
    add_products(rt)
    invoice_id = draft(rt, line(sku="PRD-77", quantity=1))
    with rt.sessions() as s:
        assert s.get_one(Invoice, invoice_id).lines[0].sku == "CONS-H"
    with pytest.raises(InvalidDocumentError) as exc:
        draft(rt, line(sku="PRD-77"), source="pipedrive")
    assert exc.value.errors == [
        (
            "lines[0].sku",
            "'PRD-77' is not in the catalog nor mapped "
            "for pipedrive: add it, or send description, unit_price and "
            "tax_rate",
        )
    ]


def test_every_line_code_is_resolved_at_once_mapping_first_and_only_active_products(rt):
    add_products(rt)
    with rt.sessions.begin() as s:
        catalog.create_product(s, catalog.ProductData("OLD", "Retirado", "10", 21))
        catalog.create_product(s, catalog.ProductData("PRD-9", "Our own PRD-9", "10", 21))
        catalog.map_code(s, "hubspot", "PRD-9", "OLD")  # mapped to a product no longer sold
        catalog.map_code(s, "hubspot", "GONE", "OLD")
        catalog.product_by_sku(s, "OLD").active = False

    with rt.sessions() as s:
        found = catalog.resolve(
            s, ["PRD-77", "CONS-H", "PRD-9", "GONE", "NOPE", "CONS-H"], "hubspot"
        )
        assert {code: p.sku for code, p in found.items()} == {
            "PRD-77": "CONS-H",  # the CRM's mapping
            "CONS-H": "CONS-H",  # our own SKU
            "PRD-9": "PRD-9",  # mapped to an inactive product: our own SKU of that name
        }  # GONE (inactive only) and NOPE (unknown) mean nothing
        assert {code: p.sku for code, p in catalog.resolve(s, ["PRD-77"], None).items()} == {}
        assert catalog.resolve(s, [], "hubspot") == {}


def test_a_product_needs_a_valid_iva_and_an_exemption_only_at_zero(rt):
    with rt.sessions.begin() as s, pytest.raises(InvalidDocumentError) as exc:
        catalog.create_product(s, catalog.ProductData("X", "X", "-1", 7, exemption_cause="E9"))
    assert [path for path, _ in exc.value.errors] == ["unit_price", "tax_rate", "exemption_cause"]
    with rt.sessions.begin() as s, pytest.raises(InvalidDocumentError, match="carries 0 % IVA"):
        catalog.create_product(s, catalog.ProductData("Y", "Y", "1", 21, exemption_cause="E1"))
    add_products(rt)
    with rt.sessions.begin() as s, pytest.raises(DocumentStateError, match="exists already"):
        catalog.create_product(s, catalog.ProductData("CONS-H", "Again", "1", 21))


def test_exempt_lines_form_their_own_group_in_the_totals_and_the_records(rt):
    add_products(rt)
    make_issuer(rt)
    invoice_id = draft(rt, line(sku="CONS-H", quantity=10), line(sku="FORM", quantity=2))
    with rt.sessions.begin() as s:
        issue(s, invoice_id)
    with rt.sessions() as s:
        invoice = s.get_one(Invoice, invoice_id)
        groups = [(t.rate, t.exemption_cause, t.base, t.amount) for t in invoice.taxes]
        assert groups == [
            (Decimal("21"), None, Decimal("950.00"), Decimal("199.50")),
            (Decimal("0"), "E1", Decimal("600.00"), Decimal("0.00")),
        ]
        assert invoice.total == Decimal("1749.50")
        record = chain.alta_of(invoice)
        assert "<sum1:OperacionExenta>E1</sum1:OperacionExenta>" in record.xml
        verifactu.validate(chain.document_for(s, invoice))
        facturae.validate(exports.facturae_xml(invoice))
