"""Customers abroad: EU VAT numbers and other foreign ids reach VERI*FACTU as IDOtro."""

from __future__ import annotations

import pytest

from invoicing import chain, exports, facturae, verifactu
from invoicing.issuing import issue
from invoicing.models import Invoice
from invoicing.service import CustomerData, Invoicing, LineData
from tests.factories import make_issuer

LINE = LineData(description="Consultoría", quantity=1, unit_price="1000", tax_rate=21)


@pytest.mark.parametrize(
    ("customer", "expected"),
    [
        (
            CustomerData(
                name="Société Exemple SA",
                tax_id="FR40303265045",
                country="FR",
                street="1 rue de la Paix",
                postal_code="75002",
                city="Paris",
                province="Paris",
            ),
            "<sum1:CodigoPais>FR</sum1:CodigoPais><sum1:IDType>02</sum1:IDType>"
            "<sum1:ID>FR40303265045</sum1:ID>",
        ),
        (
            CustomerData(
                name="Example Inc",
                tax_id="US-99-123",
                country="US",
                street="1 Main St",
                postal_code="10001",
                city="New York",
                province="NY",
            ),
            "<sum1:CodigoPais>US</sum1:CodigoPais><sum1:IDType>04</sum1:IDType>"
            "<sum1:ID>US99123</sum1:ID>",
        ),
    ],
    ids=["eu-vat", "elsewhere"],
)
def test_a_foreign_customer_is_identified_with_idotro_and_both_documents_validate(
    rt, customer, expected
):
    make_issuer(rt)
    with rt.sessions.begin() as s:
        draft = Invoicing(s).create_draft_invoice(customer=customer, lines=[LINE]).invoice.id
    with rt.sessions.begin() as s:
        invoice = issue(s, draft).invoice
        xml = chain.alta_of(invoice).xml
        verifactu.validate(chain.document_for(s, invoice))
        document = exports.facturae_xml(s.get_one(Invoice, draft))
    assert expected in xml
    assert (
        "<sum1:NIF>" not in xml.split("<sum1:Destinatarios>")[1].split("</sum1:Destinatarios>")[0]
    )
    facturae.validate(document)


def test_a_recipient_needs_exactly_one_kind_of_id():
    with pytest.raises(verifactu.VerifactuError, match="either a Spanish NIF or a foreign id"):
        verifactu.Recipient(name="X")
    with pytest.raises(verifactu.VerifactuError, match="IDType"):
        verifactu.Recipient(name="X", country="FR", id_type="99", other_id="FR1")
