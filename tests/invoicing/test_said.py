"""The invoicing core's refusals say themselves in Spanish too (invoicing.errors.Said).

The English text is what the API and the logs show, and stays as it was; `.es` is what a
Spanish page shows. Each refusal here is met through the real core function, with bad input.
"""

from __future__ import annotations

import ast
import copy
import pickle
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from invoicing import catalog, corrections, crm, documents, exports, facturae, reports, totals
from invoicing.errors import (
    DocumentStateError,
    InvalidDocumentError,
    NotFoundError,
    Said,
    message_of,
)
from invoicing.issuing import issue
from invoicing.mailer import MailDeliveryError, MailNotConfiguredError, MailSettings, send_invoice
from invoicing.models import Invoice
from invoicing.money import AmountError, to_decimal
from invoicing.payments import record_payment
from invoicing.service import CustomerData, Invoicing, LineData
from invoicing.tax_ids import TaxIdError, parse_tax_id
from tests.factories import deal, make_draft, make_issued, make_issuer
from tests.smtp import SENDER, free_port

ROOT = Path(__file__).resolve().parents[2]


def said(message: str) -> Said:
    """The message, checked to carry a Spanish text of its own."""
    assert isinstance(message, Said), f"English only: {message!r}"
    assert message.es and message.es != str(message)
    return message


def refused(exc: pytest.ExceptionInfo[Exception]) -> Said:
    """The one message of a refusal: its only field error, or its text."""
    errors = getattr(exc.value, "errors", None)
    if errors:
        [(_, message)] = errors
        return said(message)
    return said(exc.value.args[0])


# --- each module's refusals, in both languages -----------------------------------------------


def test_an_invalid_spanish_nif_says_why_in_spanish():
    with pytest.raises(TaxIdError) as caught:
        parse_tax_id("B1234567X")

    message = refused(caught)
    assert str(message) == (
        "'B1234567X' is not a valid Spanish NIF/CIF/NIE (the control digit or letter does not "
        "match); check the digits and the control letter"
    )
    assert str(caught.value) == str(message)
    assert message.es.startswith("«B1234567X» no es un NIF/CIF español válido")
    assert "la letra o cifra de control no cuadra" in message.es


@pytest.mark.parametrize(
    ("raw", "country", "english", "spanish"),
    [
        ("", "ES", "the tax id is empty", "falta el NIF/CIF"),
        ("FR123", "FR", "'FR123' is not a valid FR VAT number", "NIF-IVA válido de Francia"),
        ("X" * 31, "US", "is too long for a tax id (30 characters at most)", "como mucho 30"),
    ],
)
def test_other_tax_id_refusals_are_said_in_spanish_too(raw, country, english, spanish):
    with pytest.raises(TaxIdError) as caught:
        parse_tax_id(raw, country)

    message = refused(caught)
    assert english in message
    assert spanish in message.es


def test_a_customer_with_a_bad_nif_keeps_the_spanish_through_the_draft(rt):
    data = deal()
    with rt.sessions.begin() as s, pytest.raises(InvalidDocumentError) as caught:
        Invoicing(s).create_draft_invoice(
            customer=CustomerData.from_json({**data["customer"], "tax_id": "B1234567X"}),
            lines=[LineData.from_json(line) for line in data["lines"]],
        )

    [(path, message)] = caught.value.errors
    assert path == "customer.tax_id"
    assert message.startswith("'B1234567X' is not a valid Spanish NIF/CIF/NIE")
    assert "no es un NIF/CIF español válido" in said(message).es
    assert str(caught.value) == f"customer.tax_id: {message}"  # the API's text, unchanged


def test_an_amount_that_is_not_a_number_names_the_field_in_spanish():
    with pytest.raises(AmountError) as caught:
        to_decimal("doce", "unit_price")

    message = refused(caught)
    assert str(message) == "unit_price must be a number, got 'doce'"
    assert message.es == "«doce» no es un número: escribe el precio en cifras"


def test_too_many_decimals_on_a_line_is_said_in_spanish(rt):
    line = LineData(description="Horas", quantity="1.123456789", unit_price="10", tax_rate="21")
    with rt.sessions.begin() as s, pytest.raises(InvalidDocumentError) as caught:
        Invoicing(s).create_draft_invoice(
            customer=CustomerData.from_json(deal()["customer"]), lines=[line]
        )

    [(path, message)] = caught.value.errors
    assert path == "lines[0].quantity"
    assert str(message) == "at most 8 decimals are allowed"
    assert said(message).es == "admite como mucho 8 decimales"


def test_a_bad_general_discount_is_said_in_spanish():
    with pytest.raises(InvalidDocumentError) as caught:
        totals.discount_percent("150")

    message = refused(caught)
    assert str(message) == "must be between 0 and 100"
    assert "entre 0 y 100" in message.es

    with pytest.raises(InvalidDocumentError) as caught:
        totals.discount_percent("diez")

    message = refused(caught)
    assert str(message) == "discount_percent must be a number, got 'diez'"
    assert "escribe el descuento en cifras" in message.es


def test_a_sku_not_in_the_catalog_is_said_in_spanish(rt):
    line = LineData(description=None, quantity="1", unit_price=None, tax_rate=None, sku="NOPE")
    with rt.sessions.begin() as s, pytest.raises(InvalidDocumentError) as caught:
        Invoicing(s).create_draft_invoice(
            customer=CustomerData.from_json(deal()["customer"]), lines=[line], source="hubspot"
        )

    [(path, message)] = caught.value.errors
    assert path == "lines[0].sku"
    assert str(message) == (
        "'NOPE' is not in the catalog nor mapped for hubspot: add it, or send description, "
        "unit_price and tax_rate"
    )
    assert said(message).es.startswith("«NOPE» no está en el catálogo ni asignado")


def test_a_product_with_a_foreign_iva_rate_is_said_in_spanish(rt):
    product = catalog.ProductData(sku="P-1", name="Tornillos", unit_price="1.50", tax_rate="7")
    with rt.sessions.begin() as s, pytest.raises(InvalidDocumentError) as caught:
        catalog.create_product(s, product)

    message = refused(caught)
    assert str(message) == "7 is not a Spanish IVA rate (21, 10, 4 or 0)"
    assert message.es == "7 no es un tipo de IVA español: usa el 21, el 10, el 4 o el 0"


def test_a_quote_converted_into_a_delivery_note_is_refused_in_spanish(rt):
    quote = make_draft(rt, kind="quote")
    with rt.sessions.begin() as s, pytest.raises(InvalidDocumentError) as caught:
        documents.convert(s, [quote], "delivery_note")

    message = refused(caught)
    assert str(message) == "a quote becomes order or invoice, not delivery_note"
    assert message.es == "un presupuesto se convierte en pedido o factura, no en albarán"


def test_converting_documents_that_do_not_exist_is_said_in_spanish(rt):
    with rt.sessions.begin() as s, pytest.raises(NotFoundError) as caught:
        documents.convert(s, [998, 999], "invoice")

    message = refused(caught)
    assert str(message) == "document(s) 998, 999 do not exist"
    assert message.es.startswith("No existen los documentos 998, 999")


def test_the_built_in_crm_refuses_in_spanish(rt):
    with rt.sessions.begin() as s, pytest.raises(InvalidDocumentError) as caught:
        crm.add_company(s, name="  ")
    message = refused(caught)
    assert str(message) == "the company needs a name"
    assert message.es == "la empresa necesita un nombre"

    with rt.sessions.begin() as s, pytest.raises(InvalidDocumentError) as caught:
        crm.add_company(s, name="Acme", city="x" * 500)
    message = refused(caught)
    assert str(message).startswith("is 500 characters long; at most ")
    assert message.es.startswith("tiene 500 caracteres y caben como mucho ")

    with rt.sessions.begin() as s, pytest.raises(InvalidDocumentError) as caught:
        crm.add_company(s, name="Acme", tax_id="B12345675")
    message = refused(caught)
    assert "not a valid" in str(message) and "NIF" in message.es

    with rt.sessions.begin() as s, pytest.raises(InvalidDocumentError) as caught:
        crm.add_company(s, name="Acme", postal_code="2801")
    assert "código postal" in refused(caught).es

    with rt.sessions.begin() as s, pytest.raises(InvalidDocumentError) as caught:
        crm.move(s, 1, "cerrada")
    message = refused(caught)
    assert str(message) == f"must be one of: {', '.join(crm.STAGES)}"
    assert "Propuesta enviada" in message.es

    with rt.sessions.begin() as s, pytest.raises(NotFoundError) as caught:
        crm.move(s, 999, "nueva")
    message = refused(caught)
    assert str(message) == "opportunity 999 does not exist"
    assert message.es.startswith("La oportunidad 999 no existe")


@pytest.mark.parametrize(
    ("raw", "english", "spanish"),
    [
        ("31/12/2026", "expected a date as YYYY-MM-DD, got '31/12/2026'", "AAAA-MM-DD"),
        ("2026-02-30", "'2026-02-30' is not a valid date", "no es una fecha que exista"),
    ],
)
def test_a_bad_report_date_is_said_in_spanish(raw, english, spanish):
    with pytest.raises(ValueError) as caught:
        reports.parse_day(raw)

    message = refused(caught)
    assert str(message) == english
    assert spanish in message.es


def test_a_bad_report_page_is_said_in_spanish(rt):
    with rt.sessions() as s, pytest.raises(ValueError) as caught:
        reports.never_billed(s, None, None, limit=0)

    message = refused(caught)
    assert str(message) == "limit must be at least 1 and offset at least 0"
    assert "el límite debe ser al menos 1" in message.es


def test_a_rectification_with_a_wrong_method_is_refused_in_spanish(rt):
    invoice_id = make_issued(rt)
    with rt.sessions.begin() as s, pytest.raises(InvalidDocumentError) as caught:
        corrections.rectify(s, invoice_id, invoice_type="R1", method="X", reason="precio")

    message = refused(caught)
    assert str(message) == "must be S (substitution) or I (differences)"
    assert message.es == "debe ser S (por sustitución) o I (por diferencias)"


def test_issuing_into_a_series_that_does_not_exist_is_refused_in_spanish(rt):
    make_issuer(rt)
    draft = make_draft(rt)
    with rt.sessions.begin() as s, pytest.raises(InvalidDocumentError) as caught:
        issue(s, draft, series_code="Z")

    message = refused(caught)
    assert str(message) == "there is no series 'Z'"
    assert message.es.startswith("no hay ninguna serie «Z»")


def test_a_payment_for_an_invoice_that_does_not_exist_is_refused_in_spanish(rt):
    with rt.sessions.begin() as s, pytest.raises(NotFoundError) as caught:
        record_payment(s, 999, "10")

    message = refused(caught)
    assert str(message) == "invoice 999 does not exist"
    assert message.es == "La factura 999 no existe: puede que se haya borrado."


def test_a_draft_exported_as_facturae_is_refused_in_spanish(rt):
    draft = make_draft(rt)
    with rt.sessions() as s, pytest.raises(DocumentStateError) as caught:
        exports.facturae_invoice(s.get_one(Invoice, draft))

    message = refused(caught)
    assert str(message) == f"invoice {draft} is a draft: issue it first"
    assert message.es == f"La factura {draft} es un borrador: emítela primero."


# --- sending by e-mail -----------------------------------------------------------------------


def test_sending_without_a_mail_server_is_said_in_spanish(rt):
    invoice_id = make_issued(rt)
    with rt.sessions() as s, pytest.raises(MailNotConfiguredError) as caught:
        send_invoice(s, invoice_id, MailSettings(host=None, sender=SENDER))

    message = refused(caught)
    assert str(message).startswith("sending mail is not configured: set PUENTE_SMTP_HOST")
    assert message.es.startswith("El envío de correo no está configurado")


def test_sending_without_a_sender_is_said_in_spanish(rt):
    invoice_id = make_issued(rt)
    with rt.sessions() as s, pytest.raises(MailNotConfiguredError) as caught:
        send_invoice(s, invoice_id, MailSettings(host="127.0.0.1", sender=None))

    message = refused(caught)
    assert str(message) == (
        "no sender address: set PUENTE_MAIL_FROM, or the issuer's email (PUT /api/v1/issuer)"
    )
    assert "pon el correo de tu empresa en Ajustes" in message.es


def test_a_draft_is_not_sent_and_says_so_in_spanish(rt):
    make_issuer(rt)
    draft = make_draft(rt)
    with rt.sessions() as s, pytest.raises(DocumentStateError) as caught:
        send_invoice(s, draft, MailSettings(host="127.0.0.1", sender=SENDER))

    message = refused(caught)
    assert str(message) == (
        f"invoice {draft} is a draft: issue it first; only issued or paid invoices are sent"
    )
    assert message.es == f"La factura {draft} es un borrador: emítela antes de enviarla."


def test_an_invalid_recipient_is_refused_in_spanish(rt):
    invoice_id = make_issued(rt)
    with rt.sessions() as s, pytest.raises(InvalidDocumentError) as caught:
        send_invoice(s, invoice_id, MailSettings(host="127.0.0.1", sender=SENDER), to="nadie")

    message = refused(caught)
    assert str(message) == "'nadie' is not a valid email address"
    assert message.es.startswith("«nadie» no es un correo electrónico válido")


def test_a_mail_server_that_is_down_is_said_in_spanish_and_recorded_in_english(rt):
    invoice_id = make_issued(rt)
    settings = MailSettings(host="127.0.0.1", port=free_port(), starttls=False, sender=SENDER)
    with rt.sessions() as s:
        number = s.get_one(Invoice, invoice_id).number
        with pytest.raises(MailDeliveryError) as caught:
            send_invoice(s, invoice_id, settings)
        recorded = caught.value.email.error

    message = refused(caught)
    where = f"127.0.0.1:{settings.port}"
    assert str(message).startswith(
        f"the mail server did not take the email for {number}: could not talk to {where}: "
    )
    assert message.es.startswith(
        f"El servidor de correo no aceptó el correo de la factura {number}"
    )
    assert f"no se pudo conectar con {where}" in message.es
    assert message.es.endswith("Puedes volver a intentarlo más tarde.")
    assert recorded is not None and recorded.startswith(f"could not talk to {where}")  # English


# --- Facturae: the invoice's data and the signing certificate ---------------------------------


def test_a_country_without_a_facturae_code_is_said_in_spanish():
    with pytest.raises(facturae.FacturaeError) as caught:
        facturae.country_alpha3("XX")

    message = refused(caught)
    assert str(message) == (
        "country 'XX' has no Facturae (ISO 3166 alpha-3) code here; pass the alpha-3 code "
        "(e.g. 'FRA') or add it to facturae.ALPHA3"
    )
    assert message.es.startswith("El país «XX» no tiene código Facturae")


def test_a_foreign_currency_invoice_is_refused_as_facturae_in_spanish(rt):
    make_issuer(rt)
    data = deal()
    with rt.sessions.begin() as s:
        draft = Invoicing(s).create_draft_invoice(
            customer=CustomerData.from_json(data["customer"]),
            lines=[LineData.from_json(line) for line in data["lines"]],
            currency="USD",
        )
        issue(s, draft.invoice.id)
        with pytest.raises(facturae.FacturaeError) as caught:
            exports.facturae_xml(draft.invoice)

    message = refused(caught)
    assert str(message).startswith("currency 'USD' is not supported: only EUR invoices")
    assert message.es == (
        "La moneda «USD» no se admite: solo se hace la Facturae de facturas en euros (EUR)."
    )


def _certificate(key, *, days: tuple[int, int] = (-1, 30)) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Puente Said Test")])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + timedelta(days=days[0]))
        .not_valid_after(now + timedelta(days=days[1]))
        .sign(key, hashes.SHA256())
    )


def _p12(key, certificate: x509.Certificate) -> bytes:
    return pkcs12.serialize_key_and_certificates(
        b"said", key, certificate, None, serialization.BestAvailableEncryption(b"s3cret")
    )


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_a_wrong_certificate_password_is_said_in_spanish(rsa_key):
    with pytest.raises(facturae.FacturaeSignatureError) as caught:
        facturae.load_pkcs12(_p12(rsa_key, _certificate(rsa_key)), "not-it")

    message = refused(caught)
    assert str(message).startswith(
        "cannot open the PKCS#12 file (wrong password or damaged file): "
    )
    assert "Revisa la contraseña." in message.es


def test_a_certificate_without_an_rsa_key_is_said_in_spanish():
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(facturae.FacturaeSignatureError) as caught:
        facturae.load_pkcs12(_p12(key, _certificate(key)), "s3cret")

    message = refused(caught)
    kind = type(key).__name__
    assert str(message) == f"the certificate's key is {kind}; Facturae signatures need RSA"
    assert message.es.startswith(f"La clave del certificado es {kind}")
    assert "necesita una clave RSA" in message.es


@pytest.mark.parametrize(
    ("days", "spanish"),
    [((-60, -1), "ha caducado"), ((2, 60), "aún no es válido")],
)
def test_a_certificate_out_of_its_dates_is_said_in_spanish(rsa_key, days, spanish):
    credentials = facturae.load_pkcs12(_p12(rsa_key, _certificate(rsa_key, days=days)), "s3cret")
    with pytest.raises(facturae.FacturaeSignatureError) as caught:
        facturae.sign(b"<x/>", credentials)

    message = refused(caught)
    assert str(message).startswith("the certificate of CN=Puente Said Test is valid from ")
    assert str(message).endswith(", not now")
    assert message.es.startswith("El certificado de CN=Puente Said Test solo vale del ")
    assert spanish in message.es


# --- the Spanish survives what is done with a message ----------------------------------------


def test_a_said_message_survives_copies_and_pickling():
    message = Said("the tax id is empty", "falta el NIF/CIF")

    for copied in (copy.copy(message), copy.deepcopy(message), pickle.loads(pickle.dumps(message))):
        assert isinstance(copied, Said)
        assert (str(copied), copied.es) == ("the tax id is empty", "falta el NIF/CIF")


def test_message_of_keeps_the_spanish_that_str_drops():
    exc = TaxIdError(Said("the tax id is empty", "falta el NIF/CIF"))

    assert not isinstance(str(exc), Said)
    assert said(message_of(exc)).es == "falta el NIF/CIF"
    assert message_of(ValueError("plain")) == "plain"


# --- no English-only refusal in the core's user-facing modules -------------------------------

# Every refusal these modules raise reaches people through the web UI (or the API's answers
# the UI shows): each is said in Spanish too.
TRANSLATED = (
    "catalog",
    "chain",
    "corrections",
    "crm",
    "documents",
    "exports",
    "issuing",
    "mailer",
    "money",
    "payments",
    "pdf",
    "reports",
    "service",
    "tax_ids",
    "totals",
)
# (module, start of the English text) → why it may stay in English only. Keep it small.
ENGLISH_ONLY: dict[tuple[str, str], str] = {}


def _is_text(node: ast.AST) -> bool:
    """A message written out as a literal: a string, an f-string, or a join of those."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _is_text(node.left) or _is_text(node.right)
    if isinstance(node, ast.IfExp):
        return _is_text(node.body) or _is_text(node.orelse)
    return False


def _drops_spanish(node: ast.AST) -> bool:
    """str(exc): the text of another refusal without its Spanish (message_of keeps it)."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "str"
        and len(node.args) == 1
        and isinstance(node.args[0], ast.Name)
    )


def _start(node: ast.AST) -> str:
    for part in ast.walk(node):
        if isinstance(part, ast.Constant) and isinstance(part.value, str):
            return part.value[:40]
    return ""


def _field_messages(node: ast.AST | None) -> list[ast.AST]:
    """The messages of (path, message) pairs written in a list or a list comprehension."""
    if isinstance(node, ast.ListComp):
        pairs = [node.elt]
    elif isinstance(node, ast.List | ast.Tuple) and not _is_pair(node):
        pairs = list(node.elts)
    else:
        pairs = [node] if node is not None else []
    return [pair.elts[1] for pair in pairs if isinstance(pair, ast.Tuple) and _is_pair(pair)]


def _is_pair(node: ast.AST) -> bool:
    return isinstance(node, ast.Tuple) and len(node.elts) == 2


def _gathers_errors(node: ast.AST) -> bool:
    """A list of field errors by its name: errors, problems (and their kin)."""
    name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", "")
    return name.endswith(("errors", "problems"))


def _returns_field_errors(function: ast.FunctionDef) -> bool:
    returns = function.returns
    return returns is not None and ast.unparse(returns) == "list[tuple[str, str]]"


def _messages(tree: ast.AST) -> list[ast.AST]:
    """Every refusal's message in a module: what `raise …Error(…)` says, and the field
    messages gathered for InvalidDocumentError (errors.append/extend/+=, and the lists the
    checks returning list[tuple[str, str]] give)."""
    found: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            func = node.exc.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name.endswith(("Error", "Failure")) and node.exc.args:
                first = node.exc.args[0]
                found += _field_messages(first) or [first]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            gathering = node.func.attr in ("append", "extend") and _gathers_errors(node.func.value)
            if gathering and len(node.args) == 1:
                found += _field_messages(node.args[0])
        elif isinstance(node, ast.AugAssign) and _gathers_errors(node.target):
            found += _field_messages(node.value)
        elif isinstance(node, ast.FunctionDef) and _returns_field_errors(node):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Return):
                    found += _field_messages(inner.value)
    return sorted(found, key=lambda node: node.lineno)


def english_only(module: str, source: str) -> list[str]:
    """The refusals of `module` (its source) said in English alone, as module:line: text."""
    return [
        f"{module}:{node.lineno}: {_start(node)!r}"
        for node in _messages(ast.parse(source))
        if (_is_text(node) or _drops_spanish(node)) and (module, _start(node)) not in ENGLISH_ONLY
    ]


def test_every_refusal_of_the_user_facing_modules_is_said_in_spanish_too():
    wrong = [
        problem
        for module in TRANSLATED
        for problem in english_only(
            module, (ROOT / "invoicing" / f"{module}.py").read_text(encoding="utf-8")
        )
    ]

    assert wrong == []


def test_the_check_itself_finds_english_only_refusals():
    source = """
def f(errors, exc, code) -> list[tuple[str, str]]:
    raise DocumentStateError(f"invoice {code} is a draft")
    raise InvalidDocumentError([("to", "pick one")])
    raise InvalidDocumentError([(name, "must not be empty") for name in code])
    errors.append(("quantity", str(exc)))
    errors.extend([("sku", f"no {code}")])
    errors += [("name", "needed")]
    return [("rate", "at most 2 decimals")]
    raise _Failure(f"{code} refused", True)
    raise NotFoundError(Said("no such invoice", "no existe la factura"))
    errors.append(("to", Said("pick one", "elige uno")))
    errors.append(("to", message_of(exc)))
    raise InvalidDocumentError(errors)
    lines.append(("Base imponible", "a PDF's text, not a refusal"))


def g():
    return [("label", "no refusal either")]
"""
    found = english_only("sample", source)

    assert [line.split(":")[1] for line in found] == ["3", "4", "5", "6", "7", "8", "9", "10"]
