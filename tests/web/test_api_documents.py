"""Documents of an issued invoice: Facturae (plain and signed), VERI*FACTU XML, QR."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from lxml import etree

from actions.invoicing import INVOICING_SETTINGS
from connector.runtime import build_runtime
from invoicing import facturae
from invoicing.issuing import issue
from invoicing.settings import InvoicingSettings
from tests.certificates import self_signed
from tests.factories import make_api_key, make_draft, make_issued, make_issuer
from web import create_app

FE = "{http://www.facturae.gob.es/formato/Versiones/Facturaev3_2_2.xml}"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_the_facturae_of_an_issued_invoice_validates_and_carries_its_totals(rt, client):
    key = make_api_key(rt)
    invoice_id = make_issued(rt)

    response = client.get(f"/api/v1/invoices/{invoice_id}/facturae.xml", headers=bearer(key))

    assert response.status_code == 200 and response.mimetype == "application/xml"
    facturae.validate(response.data)
    root = etree.fromstring(response.data)
    assert root.tag == f"{FE}Facturae"
    assert root.findtext(".//InvoiceTotals/InvoiceTotal") == "3001.41"
    assert root.findtext(".//InvoiceTotals/TotalTaxOutputs") == "520.91"
    assert root.findtext(".//SellerParty/TaxIdentification/TaxIdentificationNumber") == "A58818501"
    assert root.findtext(".//BuyerParty/TaxIdentification/TaxIdentificationNumber") == "B12345674"
    assert [e.text for e in root.iter("GrossAmount")] == ["1710.00", "770.50"]


def test_a_draft_has_no_facturae_yet(rt, client):
    key = make_api_key(rt)
    draft = make_draft(rt)
    response = client.get(f"/api/v1/invoices/{draft}/facturae.xml", headers=bearer(key))
    assert response.status_code == 409
    assert "issue it first" in response.json["message"]


def test_the_buyer_s_province_comes_from_its_postal_code_when_none_was_given(rt, client):
    key = make_api_key(rt)
    make_issuer(rt)
    customer = {
        "name": "Sin Provincia SL",
        "tax_id": "A58818501",
        "address": {"street": "Calle Triana 10", "postal_code": "41010", "city": "Sevilla"},
    }
    draft = make_draft(rt, customer=customer)
    with rt.sessions.begin() as s:
        issue(s, draft)

    response = client.get(f"/api/v1/invoices/{draft}/facturae.xml", headers=bearer(key))

    assert response.status_code == 200
    buyer = etree.fromstring(response.data).find(".//BuyerParty")
    assert buyer is not None and buyer.findtext(".//AddressInSpain/Province") == "Sevilla"


def test_with_a_certificate_configured_the_facturae_is_signed_and_verifies(settings, tmp_path):
    key_pair, certificate = self_signed("Puente Demo SL")
    p12 = tmp_path / "firma.p12"
    p12.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"demo", key_pair, certificate, None, serialization.BestAvailableEncryption(b"clave")
        )
    )
    certificate_set = InvoicingSettings(facturae_p12=p12, facturae_p12_password="clave")
    signing = build_runtime(settings, services={INVOICING_SETTINGS: certificate_set})
    try:
        api_key = make_api_key(signing)
        invoice_id = make_issued(signing)
        response = (
            create_app(runtime=signing)
            .test_client()
            .get(f"/api/v1/invoices/{invoice_id}/facturae.xml", headers=bearer(api_key))
        )
    finally:
        signing.close()

    assert response.status_code == 200
    facturae.validate(response.data)
    assert "Puente Demo SL" in facturae.verify(response.data, trusted_certificate=certificate)


def test_a_partly_paid_invoice_still_has_its_facturae_as_issued(rt, client):
    from datetime import date

    from invoicing.payments import record_payment

    key = make_api_key(rt)
    invoice_id = make_issued(rt)
    with rt.sessions.begin() as s:
        record_payment(s, invoice_id, "1000.00", date.today())

    response = client.get(f"/api/v1/invoices/{invoice_id}/facturae.xml", headers=bearer(key))

    assert response.status_code == 200
    facturae.validate(response.data)
    root = etree.fromstring(response.data)
    assert root.findtext(".//InvoiceTotals/TotalOutstandingAmount") == "3001.41"


def test_the_facturae_of_an_invoice_with_surcharge_and_withholding_validates(rt, client):
    from invoicing.service import CustomerData, Invoicing, LineData

    key = make_api_key(rt)
    make_issuer(rt)
    retailer = CustomerData(
        name="Ferretería López García",
        tax_id="12345678Z",
        street="Calle Real 3",
        postal_code="41001",
        city="Sevilla",
        province="Sevilla",
        equivalence_surcharge=True,
        payment_days=15,
    )
    with rt.sessions.begin() as s:
        draft = Invoicing(s).create_draft_invoice(
            customer=retailer,
            lines=[LineData("Asesoría", "1", "1000", "21", withholding_rate="15")],
        )
        issue(s, draft.invoice.id)
        invoice_id = draft.invoice.id

    response = client.get(f"/api/v1/invoices/{invoice_id}/facturae.xml", headers=bearer(key))

    assert response.status_code == 200
    facturae.validate(response.data)
    root = etree.fromstring(response.data)
    # 1000.00 + IVA 210.00 + recargo 52.00 - IRPF 150.00 = 1112.00.
    assert root.findtext(".//InvoiceTotals/TotalTaxOutputs") == "262.00"
    assert root.findtext(".//InvoiceTotals/TotalTaxesWithheld") == "150.00"
    assert root.findtext(".//InvoiceTotals/InvoiceTotal") == "1112.00"
    assert root.findtext(".//PaymentDetails/Installment/InstallmentAmount") == "1112.00"
