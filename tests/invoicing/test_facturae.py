"""Facturae 3.2.2: the XML we write is valid against the official XSD, adds up, and signs."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from lxml import etree

from invoicing import facturae
from invoicing.facturae import (
    Corrective,
    FacturaeError,
    FacturaeSchemaError,
    FacturaeSignatureError,
    FacturaeTotalsError,
    Invoice,
    Line,
    Party,
    SigningCredentials,
    TaxTotal,
    facturae_xml,
    load_pkcs12,
    sign,
    validate,
    verify,
)
from invoicing.money import cents, document_totals, line_amounts

D = Decimal
FE = facturae.FACTURAE_NS
DS = facturae.DS_NS
XADES = facturae.XADES_NS
XSD = facturae.schema_dir() / "Facturaev3_2_2.xsd"


# ------------------------------------------------------------------------------ factories


def seller() -> Party:
    return Party(
        tax_id="B12345674",
        name="Puente Software S.L.",
        address="Calle Mayor 1",
        postal_code="28013",
        town="Madrid",
        province="Madrid",
        email="facturas@puente.example",
    )


def buyer() -> Party:
    return Party(
        tax_id="A58818501",
        name="Bodegas Riojanas S.A.",
        address="Avenida de la Paz 12",
        postal_code="26004",
        town="Logroño",
        province="La Rioja",
    )


def line(
    description: str,
    quantity: str,
    unit_price: str,
    rate: str,
    discount_percent: str = "0",
    sku: str | None = None,
) -> Line:
    """A line computed the way the invoicing core computes it."""
    amounts = line_amounts(D(quantity), D(unit_price), D(discount_percent))
    return Line(
        description=description,
        quantity=D(quantity),
        unit_price=D(unit_price),
        gross_amount=amounts.base,
        tax_rate=D(rate),
        tax_amount=cents(amounts.base * D(rate) / 100),
        discount_percent=D(discount_percent),
        discount_amount=amounts.discount,
        sku=sku,
    )


def invoice(*lines: Line, **changes: object) -> Invoice:
    """An invoice whose totals come from `invoicing.money`, as issued invoices' do."""
    lines = lines or (line("Consultoría", "10", "150", "21"),)
    totals = document_totals((item.gross_amount, item.tax_rate) for item in lines)
    built = Invoice(
        number="2026-0042",
        series_code="F",
        issue_date=date(2026, 3, 2),
        seller=seller(),
        buyer=buyer(),
        lines=lines,
        taxes=[TaxTotal(t.rate, t.base, t.amount) for t in totals.taxes],
        gross_amount_before_taxes=totals.base,
        total_tax_outputs=totals.tax,
        invoice_total=totals.total,
    )
    return dataclasses.replace(built, **changes)  # type: ignore[arg-type]


def parse(xml: bytes) -> etree._Element:
    return etree.fromstring(xml)


def text(root: etree._Element, path: str) -> str:
    found = root.find(path)
    assert found is not None, f"{path} is missing"
    return found.text or ""


def xsd_enumeration(type_name: str) -> set[str]:
    schema = etree.parse(str(XSD))
    ns = {"xs": "http://www.w3.org/2001/XMLSchema"}
    values = schema.xpath(
        f"//xs:simpleType[@name='{type_name}']//xs:enumeration/@value", namespaces=ns
    )
    return {str(value) for value in values}


# ------------------------------------------------------------------------------ generation


def test_a_complete_invoice_with_two_lines_and_two_iva_rates_validates_against_the_xsd() -> None:
    xml = facturae_xml(
        invoice(
            line("Consultoría", "10", "150", "21", discount_percent="10", sku="CONS-01"),
            line("Libro técnico", "2", "20.50", "4"),
        )
    )

    validate(xml)
    root = parse(xml)
    assert text(root, "FileHeader/SchemaVersion") == "3.2.2"
    assert text(root, "FileHeader/Batch/BatchIdentifier") == "B123456742026-0042F"
    taxes = root.findall("Invoices/Invoice/TaxesOutputs/Tax")
    assert [(text(t, "TaxRate"), text(t, "TaxableBase/TotalAmount")) for t in taxes] == [
        ("21.00", "1350.00"),
        ("4.00", "41.00"),
    ]
    assert [text(t, "TaxAmount/TotalAmount") for t in taxes] == ["283.50", "1.64"]
    totals = root.find("Invoices/Invoice/InvoiceTotals")
    assert totals is not None
    assert text(totals, "TotalGrossAmount") == "1391.00"
    assert text(totals, "TotalTaxOutputs") == "285.14"
    assert text(totals, "InvoiceTotal") == "1676.14"
    assert text(totals, "TotalExecutableAmount") == "1676.14"
    discounted, plain = root.findall("Invoices/Invoice/Items/InvoiceLine")
    assert text(discounted, "TotalCost") == "1500.00"
    assert text(discounted, "DiscountsAndRebates/Discount/DiscountRate") == "10.00"
    assert text(discounted, "DiscountsAndRebates/Discount/DiscountAmount") == "150.00"
    assert text(discounted, "GrossAmount") == "1350.00"
    assert text(discounted, "ArticleCode") == "CONS-01"
    assert plain.find("DiscountsAndRebates") is None
    assert text(plain, "UnitOfMeasure") == "01"


def test_a_buyer_in_france_gets_an_overseas_address_and_eu_residence() -> None:
    french = Party(
        tax_id="40303265045",
        name="Vins de Bordeaux SARL",
        address="12 Rue de la Paix",
        postal_code="75002",
        town="Paris",
        province="Île-de-France",
        country="FR",
    )
    xml = facturae_xml(invoice(buyer=french))

    validate(xml)
    party = parse(xml).find("Parties/BuyerParty")
    assert party is not None
    assert text(party, "TaxIdentification/ResidenceTypeCode") == "U"
    assert text(party, "TaxIdentification/PersonTypeCode") == "J"
    # An intra-community VAT number carries its country prefix.
    assert text(party, "TaxIdentification/TaxIdentificationNumber") == "FR40303265045"
    assert party.find("LegalEntity/AddressInSpain") is None
    assert text(party, "LegalEntity/OverseasAddress/PostCodeAndTown") == "75002 Paris"
    assert text(party, "LegalEntity/OverseasAddress/CountryCode") == "FRA"


def test_a_buyer_outside_the_eu_is_a_foreigner() -> None:
    american = Party("98-7654321", "Acme Inc.", "1 Main St", "10001", "New York", "NY", "US")
    xml = facturae_xml(invoice(buyer=american))

    validate(xml)
    party = parse(xml).find("Parties/BuyerParty")
    assert party is not None
    assert text(party, "TaxIdentification/ResidenceTypeCode") == "E"
    assert text(party, "TaxIdentification/TaxIdentificationNumber") == "987654321"
    assert text(party, "LegalEntity/OverseasAddress/CountryCode") == "USA"


def test_an_individual_with_a_dni_is_written_as_a_persona_fisica() -> None:
    person = Party(
        tax_id="12345678Z",
        name="María de la Fuente Ruiz",
        given_name="María",
        first_surname="de la Fuente",
        second_surname="Ruiz",
        address="Calle Real 3, 2º B",
        postal_code="41001",
        town="Sevilla",
        province="Sevilla",
    )
    xml = facturae_xml(invoice(buyer=person))

    validate(xml)
    party = parse(xml).find("Parties/BuyerParty")
    assert party is not None
    assert text(party, "TaxIdentification/PersonTypeCode") == "F"
    assert text(party, "Individual/Name") == "María"
    assert text(party, "Individual/FirstSurname") == "de la Fuente"
    assert text(party, "Individual/SecondSurname") == "Ruiz"
    assert text(party, "Individual/AddressInSpain/PostCode") == "41001"


def test_a_person_whose_name_comes_in_one_field_is_written_whole_never_guessed() -> None:
    # "Juan Carlos" is a given name: guessing would make "Carlos" a surname.
    person = dataclasses.replace(buyer(), tax_id="12345678Z", name="Juan Carlos Pérez Gil")
    xml = facturae_xml(invoice(buyer=person))

    validate(xml)
    party = parse(xml).find("Parties/BuyerParty")
    assert party is not None
    assert text(party, "TaxIdentification/PersonTypeCode") == "F"
    assert text(party, "LegalEntity/CorporateName") == "Juan Carlos Pérez Gil"
    assert party.find("Individual") is None


def test_an_individual_whose_name_cannot_be_split_is_written_corporate_style() -> None:
    person = dataclasses.replace(buyer(), tax_id="X1234567L", name="Madonna")
    xml = facturae_xml(invoice(buyer=person))

    validate(xml)
    party = parse(xml).find("Parties/BuyerParty")
    assert party is not None
    assert text(party, "TaxIdentification/PersonTypeCode") == "F"  # an NIE is a person
    assert text(party, "LegalEntity/CorporateName") == "Madonna"


def test_explicit_surnames_win_over_splitting_the_name() -> None:
    person = dataclasses.replace(
        buyer(), tax_id="12345678Z", name="José María", first_surname="García", second_surname=None
    )
    party = parse(facturae_xml(invoice(buyer=person))).find("Parties/BuyerParty/Individual")
    assert party is not None
    assert (text(party, "Name"), text(party, "FirstSurname")) == ("José María", "García")
    assert party.find("SecondSurname") is None


def test_a_simplified_invoice_validates() -> None:
    xml = facturae_xml(invoice(line("Ticket", "1", "12.40", "10"), document_type="FA"))

    validate(xml)
    assert text(parse(xml), "Invoices/Invoice/InvoiceHeader/InvoiceDocumentType") == "FA"


def test_a_rectifying_invoice_carries_the_corrective_block_and_validates() -> None:
    credit = invoice(
        line("Devolución de consultoría", "-2", "150", "21"),
        number="R-2026-0001",
        series_code="R",
        invoice_class="OR",
        corrective=Corrective(
            number="2026-0042",
            series_code="F",
            issue_date=date(2026, 3, 2),
            tax_period_start=date(2026, 3, 1),
            tax_period_end=date(2026, 3, 31),
            reason_code="10",
            correction_method="02",
            additional_reason="Dos jornadas no prestadas",
        ),
    )
    xml = facturae_xml(credit)

    validate(xml)
    header = parse(xml).find("Invoices/Invoice/InvoiceHeader")
    assert header is not None
    assert text(header, "InvoiceClass") == "OR"
    assert text(header, "Corrective/InvoiceNumber") == "2026-0042"
    assert text(header, "Corrective/ReasonDescription") == "Detalle Operación"
    assert text(header, "Corrective/CorrectionMethodDescription") == (
        "Rectificación por diferencias"
    )
    assert text(header, "Corrective/TaxPeriod/EndDate") == "2026-03-31"
    assert text(parse(xml), "Invoices/Invoice/InvoiceTotals/InvoiceTotal") == "-363.00"


def test_a_rectifying_invoice_without_its_corrective_details_is_refused() -> None:
    with pytest.raises(FacturaeError, match="needs its corrective details"):
        facturae_xml(invoice(invoice_class="OR"))


def test_an_eight_decimal_unit_price_is_kept() -> None:
    xml = facturae_xml(invoice(line("Energía (kWh)", "1000", "0.12345678", "21")))

    validate(xml)
    item = parse(xml).find("Invoices/Invoice/Items/InvoiceLine")
    assert item is not None
    assert text(item, "UnitPriceWithoutTax") == "0.12345678"
    assert text(item, "TotalCost") == "123.46"  # 123.45678 in cents


def test_a_unit_price_with_more_than_eight_decimals_is_refused() -> None:
    bad = dataclasses.replace(line("Energía", "1", "0.12", "21"), unit_price=D("0.123456789"))
    with pytest.raises(FacturaeError, match="more than the 8 decimals"):
        facturae_xml(invoice(bad))


def test_inconsistent_totals_raise_a_clear_error() -> None:
    wrong = invoice(invoice_total=D("1815.01"))

    with pytest.raises(FacturaeTotalsError) as caught:
        facturae_xml(wrong)
    assert caught.value.problems == [
        "base 1500.00 + IVA 315.00 = 1815.00, not the invoice total 1815.01"
    ]
    assert str(caught.value).startswith("the invoice totals are inconsistent: base 1500.00")


def test_a_line_whose_amounts_do_not_add_up_is_named_in_the_error() -> None:
    good = line("Consultoría", "10", "150", "21")
    wrong = dataclasses.replace(good, gross_amount=D("1490.00"), tax_amount=D("312.90"))

    with pytest.raises(FacturaeTotalsError) as caught:
        facturae_xml(invoice(good, lines=[wrong]))  # totals computed from the good line
    assert caught.value.problems == [
        "line 1: gross amount 1490.00 + discount 0.00 = 1490.00, "
        "but quantity × unit price = 1500.00",
        "the lines at IVA 21% add up to 1490.00, not 1500.00",
        "the line gross amounts add up to 1490.00, not to the total gross amount 1500.00",
    ]


def test_iva_may_be_rounded_on_the_summed_base_or_line_by_line_but_nothing_else() -> None:
    lines = [line(f"Artículo {n}", "1", "0.12", "21") for n in range(3)]
    assert [item.tax_amount for item in lines] == [D("0.03")] * 3  # 0.0252 each

    def with_iva(amount: str) -> Invoice:
        return invoice(
            *lines,
            taxes=[TaxTotal(D(21), D("0.36"), D(amount))],
            total_tax_outputs=D(amount),
            invoice_total=D("0.36") + D(amount),
        )

    validate(facturae_xml(with_iva("0.08")))  # 21% of 0.36 = 0.0756
    validate(facturae_xml(with_iva("0.09")))  # 3 × 0.03
    with pytest.raises(FacturaeTotalsError, match=r"is 0.08 \(or 0.09 line by line\), not 0.10"):
        facturae_xml(with_iva("0.10"))


def test_the_xml_is_utf8_with_the_fe_namespace() -> None:
    xml = facturae_xml(invoice())

    assert xml.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert "Logroño".encode() in xml  # raw UTF-8, not character references
    root = parse(xml)
    assert root.tag == f"{{{FE}}}Facturae"
    assert root.prefix == "fe"
    # Facturae's inner elements are unqualified: only the root is in the namespace.
    assert root[0].tag == "FileHeader"


def test_payment_details_carry_the_due_date_and_iban() -> None:
    xml = facturae_xml(
        invoice(payment_due_date=date(2026, 4, 1), iban="ES91 2100 0418 4502 0005 1332")
    )

    validate(xml)
    installment = parse(xml).find("Invoices/Invoice/PaymentDetails/Installment")
    assert installment is not None
    assert text(installment, "InstallmentDueDate") == "2026-04-01"
    assert text(installment, "InstallmentAmount") == "1815.00"
    assert text(installment, "PaymentMeans") == "04"
    assert text(installment, "AccountToBeCredited/IBAN") == "ES9121000418450200051332"


def test_every_country_in_the_mapping_is_a_facturae_country_code() -> None:
    assert set(facturae.ALPHA3.values()) <= xsd_enumeration("CountryType")


def test_rectification_texts_are_spelled_as_the_xsd_enumerates_them() -> None:
    assert set(facturae.REASONS) == xsd_enumeration("ReasonCodeType")
    assert set(facturae.REASONS.values()) == xsd_enumeration("ReasonDescriptionType")
    assert set(facturae.CORRECTION_METHODS) == xsd_enumeration("CorrectionMethodType")
    assert set(facturae.CORRECTION_METHODS.values()) == xsd_enumeration(
        "CorrectionMethodDescriptionType"
    )


# ------------------------------------------------------------------------------ validation


def test_a_broken_document_fails_validation_with_readable_errors() -> None:
    root = parse(facturae_xml(invoice()))
    totals = root.find("Invoices/Invoice/InvoiceTotals")
    modality = root.find("FileHeader/Modality")
    assert totals is not None and modality is not None
    totals.remove(totals.find("InvoiceTotal"))
    modality.text = "X"
    broken = etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    with pytest.raises(FacturaeSchemaError) as caught:
        validate(broken)
    errors = caught.value.errors
    assert len(errors) == 2
    assert errors[0].startswith("line ")
    assert "Modality" in errors[0] and "'X'" in errors[0]
    assert "InvoiceTotal" in errors[1]
    assert str(caught.value).startswith("the XML is not valid Facturae 3.2.2 (2 errors): line ")


def test_xml_that_is_not_well_formed_is_reported_as_such() -> None:
    with pytest.raises(FacturaeSchemaError, match="not well-formed XML"):
        validate(b"<fe:Facturae xmlns:fe='x'><FileHeader></fe:Facturae>")


def test_the_schemas_are_read_from_puente_standards_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(facturae.schema_dir(), tmp_path / "facturae")
    monkeypatch.setenv("PUENTE_STANDARDS_DIR", str(tmp_path))

    assert facturae.schema_dir() == tmp_path / "facturae"
    validate(facturae_xml(invoice()))

    monkeypatch.setenv("PUENTE_STANDARDS_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(FacturaeError, match="set PUENTE_STANDARDS_DIR"):
        validate(facturae_xml(invoice()))


def test_a_schema_importing_from_the_network_fails_offline_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "facturae"
    folder.mkdir()
    shutil.copy(facturae.schema_dir() / "xmldsig-core-schema.xsd", folder)
    (folder / "Facturaev3_2_2.xsd").write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:x">'
        '<xs:import namespace="urn:y" schemaLocation="http://example.invalid/y.xsd"/>'
        "</xs:schema>"
    )
    monkeypatch.setenv("PUENTE_STANDARDS_DIR", str(tmp_path))

    with pytest.raises(FacturaeError, match=r"cannot load the Facturae schema .*example\.invalid"):
        validate(facturae_xml(invoice()))


# ------------------------------------------------------------------------------ signature


def self_signed(common_name: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "ES"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Puente Software S.L."),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return key, certificate


@pytest.fixture(scope="module")
def p12() -> tuple[bytes, x509.Certificate]:
    key, certificate = self_signed("Puente Facturae Test")
    data = pkcs12.serialize_key_and_certificates(
        b"puente", key, certificate, None, serialization.BestAvailableEncryption(b"s3cret")
    )
    return data, certificate


@pytest.fixture(scope="module")
def credentials(p12: tuple[bytes, x509.Certificate]) -> SigningCredentials:
    return load_pkcs12(p12[0], "s3cret")


@pytest.fixture(scope="module")
def signed(credentials: SigningCredentials) -> bytes:
    return sign(facturae_xml(invoice()), credentials)


def test_a_signed_invoice_verifies_and_still_validates_against_the_xsd(
    signed: bytes, credentials: SigningCredentials
) -> None:
    subject = verify(signed, trusted_certificate=credentials.certificate)

    assert subject == "CN=Puente Facturae Test,O=Puente Software S.L.,C=ES"
    validate(signed)
    root = parse(signed)
    assert root[-1].tag == f"{{{DS}}}Signature"  # enveloped, at the end of fe:Facturae


def test_the_signature_is_xades_epes_with_the_facturae_policy(signed: bytes) -> None:
    root = parse(signed)
    ns = {"ds": DS, "xades": XADES}
    policy = root.find(".//xades:SignaturePolicyId", ns)
    assert policy is not None
    assert policy.findtext("xades:SigPolicyId/xades:Identifier", namespaces=ns) == (
        "http://www.facturae.es/politica_de_firma_formato_facturae/"
        "politica_de_firma_formato_facturae_v3_1.pdf"
    )
    assert policy.findtext(".//ds:DigestValue", namespaces=ns) == "Ohixl6upD6av8N7pEvDABhEL6hM="
    digest_method = policy.find(".//ds:DigestMethod", ns)
    assert digest_method is not None
    assert digest_method.get("Algorithm") == "http://www.w3.org/2000/09/xmldsig#sha1"
    signing_time = root.findtext(".//xades:SigningTime", namespaces=ns)
    assert signing_time is not None
    assert abs(datetime.fromisoformat(signing_time) - datetime.now(UTC)) < timedelta(minutes=5)
    assert root.findtext(".//xades:ClaimedRole", namespaces=ns) == "emisor"
    assert root.find(".//xades:SigningCertificate/xades:Cert/xades:IssuerSerial", ns) is not None
    references = root.findall("ds:Signature/ds:SignedInfo/ds:Reference", ns)
    assert "" in [reference.get("URI") for reference in references]
    c14n = root.find("ds:Signature/ds:SignedInfo/ds:CanonicalizationMethod", ns)
    assert c14n is not None and c14n.get("Algorithm") == facturae.C14N_1_0
    key_info = root.find("ds:Signature/ds:KeyInfo", ns)
    assert key_info is not None
    assert key_info.find("ds:KeyValue", ns) is not None
    assert key_info.find("ds:X509Data/ds:X509Certificate", ns) is not None


def test_tampering_with_an_amount_after_signing_makes_verification_fail(
    signed: bytes, credentials: SigningCredentials
) -> None:
    assert signed.count(b"<InvoiceTotal>1815.00</InvoiceTotal>") == 1
    tampered = signed.replace(
        b"<InvoiceTotal>1815.00</InvoiceTotal>", b"<InvoiceTotal>1.00</InvoiceTotal>"
    )

    validate(tampered)  # the schema cannot tell: only the signature can
    with pytest.raises(FacturaeSignatureError, match="does not verify"):
        verify(tampered, trusted_certificate=credentials.certificate)


def test_a_signature_by_another_certificate_is_rejected(signed: bytes) -> None:
    _, stranger = self_signed("Someone Else")

    with pytest.raises(FacturaeSignatureError, match="does not verify"):
        verify(signed, trusted_certificate=stranger)


# The system CA bundle signxml reads holds a root with a non-positive serial number.
@pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")
def test_a_self_signed_certificate_is_not_trusted_unless_pinned(signed: bytes) -> None:
    with pytest.raises(FacturaeSignatureError, match="does not verify"):
        verify(signed)


def issued_by_a_test_ca(tmp_path: Path) -> tuple[bytes, Path]:
    """A PKCS#12 holding a leaf certificate and its CA, and the CA as a PEM trust file."""
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Puente Test CA")])
    now = datetime.now(UTC)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Emisor Puente")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    data = pkcs12.serialize_key_and_certificates(
        b"emisor", key, leaf, [ca], serialization.BestAvailableEncryption(b"pw")
    )
    trust = tmp_path / "ca.pem"
    trust.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return data, trust


def _key_usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def test_a_signer_issued_by_a_trusted_ca_verifies_with_the_chain_in_the_signature(
    tmp_path: Path,
) -> None:
    data, trust = issued_by_a_test_ca(tmp_path)
    credentials = load_pkcs12(data, b"pw")
    signed = sign(facturae_xml(invoice()), credentials)

    assert [c.subject.rfc4514_string() for c in credentials.chain] == ["CN=Puente Test CA"]
    assert len(parse(signed).findall(f".//{{{DS}}}X509Certificate")) == 2  # leaf and CA
    assert verify(signed, ca_pem_file=trust) == "CN=Emisor Puente"


def test_an_unsigned_invoice_does_not_verify() -> None:
    with pytest.raises(FacturaeSignatureError, match="exactly one ds:Signature"):
        verify(facturae_xml(invoice()))


def test_signing_a_signed_document_again_is_refused(
    signed: bytes, credentials: SigningCredentials
) -> None:
    with pytest.raises(FacturaeSignatureError, match="already signed"):
        sign(signed, credentials)


def test_a_wrong_pkcs12_password_is_a_clear_error(p12: tuple[bytes, x509.Certificate]) -> None:
    with pytest.raises(FacturaeSignatureError, match="wrong password"):
        load_pkcs12(p12[0], "not-it")


def test_load_pkcs12_returns_the_certificate_and_key(
    p12: tuple[bytes, x509.Certificate], credentials: SigningCredentials
) -> None:
    assert credentials.certificate == p12[1]
    assert credentials.subject == "CN=Puente Facturae Test,O=Puente Software S.L.,C=ES"
    assert credentials.chain == ()
