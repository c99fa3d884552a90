"""XAdES signing and verification with signxml, for invoicing.facturae.

Apart because signxml and what it imports cost ~11 MB of memory in each process that loads
them: the web and the workers import invoicing.facturae, and only those that sign or verify
load this module.
"""

from __future__ import annotations

from base64 import b64encode
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from lxml import etree
from signxml import CanonicalizationMethod, DigestAlgorithm, SignatureConstructionMethod
from signxml.exceptions import SignXMLException
from signxml.xades import (
    XAdESDataObjectFormat,
    XAdESSignatureConfiguration,
    XAdESSignaturePolicy,
    XAdESSigner,
    XAdESVerifier,
)

from invoicing.facturae import DS_NS, XADES_NS


class SigningError(ValueError):
    """signxml refused to sign or to verify: facturae words it for people."""


# Facturae signature policy v3.1: identifier and the SHA-1 digest of the policy PDF, as
# published by facturae.gob.es and used by every Facturae signer (AutoFirma, Facturae-PHP, gobl).
FACTURAE_POLICY = XAdESSignaturePolicy(
    Identifier=(
        "http://www.facturae.es/politica_de_firma_formato_facturae/"
        "politica_de_firma_formato_facturae_v3_1.pdf"
    ),
    Description="Política de Firma FacturaE v3.1",
    DigestMethod=DigestAlgorithm.SHA1,
    DigestValue="Ohixl6upD6av8N7pEvDABhEL6hM=",
)
# The object identifier other Facturae signers put in DataObjectFormat for "an invoice".
_INVOICE_OID = "urn:oid:1.2.840.10003.5.109.10"


class _FacturaeSigner(XAdESSigner):
    """signxml's XAdES signer with the layout Facturae validators expect.

    - `SigningCertificate` with `IssuerSerial` (XAdES 1.3.2) instead of `SigningCertificateV2`,
      as AutoFirma and the other Facturae signers write it.
    - `DataObjectFormat` naming the invoice with its object identifier.
    """

    def add_signing_certificate(
        self,
        signed_signature_properties: etree._Element,
        sig_root: etree._Element,
        signing_settings: Any,
    ) -> None:
        certificate = signing_settings.cert_chain[0]
        assert isinstance(certificate, x509.Certificate)
        signing = etree.SubElement(signed_signature_properties, f"{{{XADES_NS}}}SigningCertificate")
        cert = etree.SubElement(signing, f"{{{XADES_NS}}}Cert")
        digest = etree.SubElement(cert, f"{{{XADES_NS}}}CertDigest")
        etree.SubElement(digest, f"{{{DS_NS}}}DigestMethod", Algorithm=DigestAlgorithm.SHA256.value)
        value = etree.SubElement(digest, f"{{{DS_NS}}}DigestValue")
        value.text = b64encode(certificate.fingerprint(hashes.SHA256())).decode()
        issuer_serial = etree.SubElement(cert, f"{{{XADES_NS}}}IssuerSerial")
        issuer = etree.SubElement(issuer_serial, f"{{{DS_NS}}}X509IssuerName")
        issuer.text = certificate.issuer.rfc4514_string()
        serial = etree.SubElement(issuer_serial, f"{{{DS_NS}}}X509SerialNumber")
        serial.text = str(certificate.serial_number)

    def add_data_object_format(
        self,
        signed_data_object_properties: etree._Element,
        sig_root: etree._Element,
        signing_settings: Any,
    ) -> None:
        super().add_data_object_format(
            signed_data_object_properties, sig_root=sig_root, signing_settings=signing_settings
        )
        data_object_format = signed_data_object_properties[-1]
        object_identifier = etree.Element(f"{{{XADES_NS}}}ObjectIdentifier")
        identifier = etree.SubElement(
            object_identifier, f"{{{XADES_NS}}}Identifier", Qualifier="OIDAsURN"
        )
        identifier.text = _INVOICE_OID
        data_object_format.insert(1, object_identifier)  # XAdES order: Description, then this


def sign(
    root: etree._Element, credentials: Any, facturae_policy: bool, description: str
) -> etree._Element:
    """`root` with an enveloped XAdES signature as its last child (see facturae.sign_enveloped)."""
    signer = _FacturaeSigner(
        signature_policy=FACTURAE_POLICY if facturae_policy else None,
        claimed_roles=["emisor"],
        data_object_format=XAdESDataObjectFormat(Description=description, MimeType="text/xml"),
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm="rsa-sha256",
        digest_algorithm="sha256",
        c14n_algorithm=CanonicalizationMethod.CANONICAL_XML_1_0,  # exclusive C14N breaks XAdES
    )
    try:
        signed: etree._Element = signer.sign(
            root,
            key=credentials.key,
            cert=[credentials.certificate, *credentials.chain],  # X509Data with the chain
            always_add_key_value=True,  # KeyValue as well, as the policy's examples show
        )
    except (SignXMLException, ValueError) as exc:
        raise SigningError(str(exc)) from exc
    return signed


def verify(
    xml_bytes: bytes, trusted_certificate: x509.Certificate | None, ca_pem_file: str | Path | None
) -> list[Any]:
    """signxml's verification under Facturae's policy: its results, or SigningError."""
    try:
        results: list[Any] = XAdESVerifier().verify(
            xml_bytes,
            x509_cert=trusted_certificate,
            ca_pem_file=str(ca_pem_file) if ca_pem_file is not None else None,
            expect_signature_policy=FACTURAE_POLICY,
            expect_config=XAdESSignatureConfiguration(expect_references=True),
        )
    except (SignXMLException, ValueError) as exc:
        raise SigningError(str(exc)) from exc
    return results
