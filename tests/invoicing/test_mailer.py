"""Emailing invoices through a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import select

from invoicing import facturae
from invoicing.errors import DocumentStateError, InvalidDocumentError
from invoicing.facturae import SigningCredentials
from invoicing.issuing import issue
from invoicing.mailer import (
    MailDeliveryError,
    MailNotConfiguredError,
    MailSettings,
    send_invoice,
    spanish_money,
)
from invoicing.models import Invoice, InvoiceEmail, Issuer
from invoicing.payments import record_payment
from invoicing.settings import InvoicingSettings
from tests import certificates
from tests.factories import deal, make_draft, make_issuer
from tests.smtp import SENDER, SmtpServer, free_port, smtp_server

CUSTOMER_EMAIL = "facturas@acme.example"  # the sample deal's customer
USER, PASSWORD = "puente", "s3cret"


# --- a real SMTP server ----------------------------------------------------------------------


def check_login(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USER.encode()
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


@contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never says a word (no SMTP greeting)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        yield int(s.getsockname()[1])


def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    return certificates.tls_files(tmp_path, "127.0.0.1", ip="127.0.0.1")


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


# --- invoices ----------------------------------------------------------------------------------


def issued_invoice(rt, **draft: Any) -> int:
    make_issuer(rt)
    invoice_id = make_draft(rt, **draft)
    with rt.sessions.begin() as s:
        issue(s, invoice_id)
    return invoice_id


def send(rt, invoice_id: int, settings: MailSettings, **options: Any) -> InvoiceEmail:
    """Send in a transaction of its own, committed even when sending fails (as the API does)."""
    with rt.sessions() as s:
        try:
            return send_invoice(s, invoice_id, settings, **options)
        finally:
            s.commit()


def emails(rt) -> list[InvoiceEmail]:
    with rt.sessions() as s:
        return list(s.scalars(select(InvoiceEmail).order_by(InvoiceEmail.id)))


def number_of(rt, invoice_id: int) -> str:
    with rt.sessions() as s:
        number = s.get_one(Invoice, invoice_id).number
        assert number is not None
        return number


def attachments(message: EmailMessage) -> dict[str, tuple[str, bytes]]:
    found = {}
    for part in message.iter_attachments():
        filename = part.get_filename()
        assert filename is not None
        payload = part.get_content()
        found[filename] = (part.get_content_type(), payload)
    return found


# --- sending -----------------------------------------------------------------------------------


def test_the_customer_gets_a_spanish_email_with_the_pdf_and_the_facturae(rt, smtp):
    invoice_id = issued_invoice(rt)
    number = number_of(rt, invoice_id)

    record = send(rt, invoice_id, smtp.settings())

    assert (record.status, record.to, record.error) == ("sent", CUSTOMER_EMAIL, None)
    [received] = smtp.inbox.messages
    assert received.mail_from == SENDER and received.rcpt_tos == [CUSTOMER_EMAIL]
    message = received.parsed()
    assert message["Subject"] == f"Factura {number} de Puente Demo SL"
    assert message["To"] == CUSTOMER_EMAIL
    assert message["From"] == f"Puente Demo SL <{SENDER}>"
    assert message["Message-ID"] == record.message_id
    assert record.message_id and record.message_id.endswith("@puente.example>")

    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    with rt.sessions() as s:
        issue_date = s.get_one(Invoice, invoice_id).issue_date
    assert number in text
    assert f"{issue_date:%d/%m/%Y}" in text
    assert "Total:                3.001,41 €" in text
    assert "Importe pendiente:    3.001,41 €" in text
    assert "Base imponible:       2.480,50 €" in text

    files = attachments(message)
    assert set(files) == {f"factura-{number}.pdf", f"factura-{number}-facturae.xml"}
    pdf_type, pdf = files[f"factura-{number}.pdf"]
    assert pdf_type == "application/pdf" and pdf.startswith(b"%PDF")
    xml_type, xml = files[f"factura-{number}-facturae.xml"]
    assert xml_type == "application/xml"
    facturae.validate(xml)
    assert b"<InvoiceNumber>" in xml and number.encode() in xml

    assert [(e.status, e.to) for e in emails(rt)] == [("sent", CUSTOMER_EMAIL)]


def test_to_sends_to_another_address(rt, smtp):
    invoice_id = issued_invoice(rt)

    record = send(rt, invoice_id, smtp.settings(), to="  contabilidad@acme.example ")

    assert record.to == "contabilidad@acme.example"
    assert smtp.inbox.messages[0].rcpt_tos == ["contabilidad@acme.example"]


def test_with_credentials_the_facturae_attached_is_signed(rt, smtp):
    key, certificate = certificates.self_signed("Puente Demo SL")
    invoice_id = issued_invoice(rt)
    number = number_of(rt, invoice_id)

    send(rt, invoice_id, smtp.settings(), credentials=SigningCredentials(key, certificate))

    files = attachments(smtp.inbox.messages[0].parsed())
    content_type, xml = files[f"factura-{number}-facturae.xsig"]
    assert content_type == "application/xml"
    facturae.validate(xml)
    assert "Puente Demo SL" in facturae.verify(xml, trusted_certificate=certificate)


def test_a_partly_paid_invoice_says_what_is_still_owed(rt, smtp):
    invoice_id = issued_invoice(rt)
    number = number_of(rt, invoice_id)
    with rt.sessions.begin() as s:
        record_payment(s, invoice_id, "1000.00", datetime.now(UTC).date())

    send(rt, invoice_id, smtp.settings())

    message = smtp.inbox.messages[0].parsed()
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "Pagado:               1.000,00 €" in text
    assert "Importe pendiente:    2.001,41 €" in text
    # The Facturae is the invoice as issued: payments made since do not change it.
    xml = attachments(message)[f"factura-{number}-facturae.xml"][1]
    facturae.validate(xml)
    assert b"<TotalOutstandingAmount>3001.41</TotalOutstandingAmount>" in xml


def test_a_paid_invoice_can_be_sent_and_says_it_is_paid(rt, smtp):
    invoice_id = issued_invoice(rt)
    with rt.sessions.begin() as s:
        record_payment(s, invoice_id, "3001.41", datetime.now(UTC).date())

    send(rt, invoice_id, smtp.settings())

    body = smtp.inbox.messages[0].parsed().get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "Importe pendiente:    0,00 €" in text
    assert "está pagada" in text


def test_the_issuer_email_is_the_sender_when_no_mail_from_is_set(rt, smtp):
    invoice_id = issued_invoice(rt)
    with rt.sessions.begin() as s:
        s.scalars(select(Issuer)).one().email = "admin@demo.example"

    send(rt, invoice_id, smtp.settings(sender=None))

    assert smtp.inbox.messages[0].mail_from == "admin@demo.example"


# --- authentication and TLS --------------------------------------------------------------------


NO_TLS_WARNING = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@NO_TLS_WARNING
def test_it_logs_in_when_a_user_is_configured(rt):
    invoice_id = issued_invoice(rt)
    auth = {"authenticator": check_login, "auth_required": True, "auth_require_tls": False}
    with smtp_server(**auth) as server:
        with pytest.raises(MailDeliveryError) as caught:  # the server wants a login: none given
            send(rt, invoice_id, server.settings())
        record = send(rt, invoice_id, server.settings(user=USER, password=PASSWORD))

    assert caught.value.transient is False and "530" in str(caught.value)
    assert record.status == "sent"
    [received] = server.inbox.messages
    assert received.authenticated
    assert [e.status for e in emails(rt)] == ["failed", "sent"]


@NO_TLS_WARNING
def test_a_wrong_password_is_a_permanent_failure_that_says_so(rt):
    invoice_id = issued_invoice(rt)
    with (
        smtp_server(
            authenticator=check_login, auth_required=True, auth_require_tls=False
        ) as server,
        pytest.raises(MailDeliveryError) as caught,
    ):
        send(rt, invoice_id, server.settings(user=USER, password="wrong"))

    assert caught.value.transient is False
    assert "PUENTE_SMTP_PASSWORD" in str(caught.value) and "535" in str(caught.value)
    assert server.inbox.messages == []
    [failed] = emails(rt)
    assert failed.status == "failed" and "535" in (failed.error or "")


def test_starttls_with_a_trusted_certificate_then_login(rt, tmp_path):
    import ssl

    cert, key = tls_files(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    invoice_id = issued_invoice(rt)
    with smtp_server(
        tls_context=context, require_starttls=True, authenticator=check_login, auth_required=True
    ) as server:
        settings = server.settings(starttls=True, cafile=str(cert), user=USER, password=PASSWORD)
        record = send(rt, invoice_id, settings)

        untrusted = server.settings(starttls=True, user=USER, password=PASSWORD)
        with pytest.raises(MailDeliveryError) as caught:
            send(rt, invoice_id, untrusted)

    assert record.status == "sent"
    assert [m.authenticated for m in server.inbox.messages] == [True]
    assert caught.value.transient is False
    assert "not trusted" in str(caught.value)


# --- failures ----------------------------------------------------------------------------------


def test_a_refused_recipient_is_recorded_as_failed_and_is_not_worth_retrying(rt, smtp):
    smtp.inbox.refuse[CUSTOMER_EMAIL] = "550 5.1.1 <facturas@acme.example>: mailbox unavailable"
    invoice_id = issued_invoice(rt)

    with pytest.raises(MailDeliveryError) as caught:
        send(rt, invoice_id, smtp.settings(), idempotency_key="k-1")

    assert caught.value.transient is False
    assert "550" in str(caught.value) and "mailbox unavailable" in str(caught.value)
    [failed] = emails(rt)  # committed by the caller after the error
    assert failed.id == caught.value.email.id
    assert (failed.status, failed.to, failed.invoice_id) == ("failed", CUSTOMER_EMAIL, invoice_id)
    assert "550 5.1.1" in (failed.error or "")
    assert failed.message_id and failed.idempotency_key is None
    assert smtp.inbox.messages == []


def test_a_temporarily_refused_recipient_is_worth_retrying(rt, smtp):
    smtp.inbox.refuse[CUSTOMER_EMAIL] = "450 4.2.1 mailbox busy, try later"
    invoice_id = issued_invoice(rt)

    with pytest.raises(MailDeliveryError) as caught:
        send(rt, invoice_id, smtp.settings())

    assert caught.value.transient is True
    assert [e.status for e in emails(rt)] == ["failed"]


def test_a_server_that_is_down_is_a_transient_failure(rt):
    invoice_id = issued_invoice(rt)
    settings = MailSettings(host="127.0.0.1", port=free_port(), starttls=False, sender=SENDER)

    with pytest.raises(MailDeliveryError) as caught:
        send(rt, invoice_id, settings)

    assert caught.value.transient is True
    assert "could not talk to 127.0.0.1" in str(caught.value)
    [failed] = emails(rt)
    assert failed.status == "failed" and "refused" in (failed.error or "").lower()


def test_a_server_that_never_answers_times_out_as_a_transient_failure(rt):
    invoice_id = issued_invoice(rt)
    with silent_server() as port:
        settings = MailSettings(
            host="127.0.0.1", port=port, starttls=False, sender=SENDER, timeout=0.5
        )
        started = time.monotonic()
        with pytest.raises(MailDeliveryError) as caught:
            send(rt, invoice_id, settings)
        elapsed = time.monotonic() - started

    assert elapsed < 5
    assert caught.value.transient is True
    assert "did not answer within 0.5 s" in str(caught.value)
    assert [e.status for e in emails(rt)] == ["failed"]


def test_a_failed_attempt_then_a_success_are_both_recorded(rt, smtp):
    smtp.inbox.refuse[CUSTOMER_EMAIL] = "451 4.3.0 try again later"
    invoice_id = issued_invoice(rt)
    with pytest.raises(MailDeliveryError):
        send(rt, invoice_id, smtp.settings(), idempotency_key="k-1")
    smtp.inbox.refuse.clear()

    record = send(rt, invoice_id, smtp.settings(), idempotency_key="k-1")

    assert [(e.status, e.idempotency_key) for e in emails(rt)] == [
        ("failed", None),
        ("sent", "k-1"),
    ]
    assert record.status == "sent" and len(smtp.inbox.messages) == 1


# --- idempotency and refusals ------------------------------------------------------------------


def test_the_same_idempotency_key_after_a_success_sends_nothing_again(rt, smtp):
    invoice_id = issued_invoice(rt)

    first = send(rt, invoice_id, smtp.settings(), idempotency_key="send-1")
    again = send(rt, invoice_id, smtp.settings(), idempotency_key="send-1")

    assert again.id == first.id and again.message_id == first.message_id
    assert len(smtp.inbox.messages) == 1
    assert len(emails(rt)) == 1

    send(rt, invoice_id, smtp.settings(), idempotency_key="send-2")  # a new key sends again
    assert len(smtp.inbox.messages) == 2


def test_an_idempotency_key_used_for_another_invoice_is_refused(rt, smtp):
    first = issued_invoice(rt)
    second = make_draft(rt)
    with rt.sessions.begin() as s:
        issue(s, second)
    send(rt, first, smtp.settings(), idempotency_key="send-1")

    with pytest.raises(InvalidDocumentError) as caught:
        send(rt, second, smtp.settings(), idempotency_key="send-1")

    assert caught.value.errors[0][0] == "idempotency_key"
    assert len(smtp.inbox.messages) == 1


def test_a_draft_is_not_sent(rt, smtp):
    make_issuer(rt)
    draft = make_draft(rt)

    with pytest.raises(DocumentStateError, match="draft: issue it first"):
        send(rt, draft, smtp.settings())

    assert smtp.inbox.messages == [] and emails(rt) == []


def test_without_a_customer_email_the_recipient_is_asked_for(rt, smtp):
    customer = deal()["customer"]
    del customer["email"]
    invoice_id = issued_invoice(rt, customer=customer)

    with pytest.raises(InvalidDocumentError) as caught:
        send(rt, invoice_id, smtp.settings())

    [(path, message)] = caught.value.errors
    assert path == "to" and "has no email" in message
    assert smtp.inbox.messages == [] and emails(rt) == []


@pytest.mark.parametrize(
    "to",
    [
        "",
        "not-an-address",
        "a@b",
        "x@acme.example\r\nBcc: spy@evil.example",
        "x@acme.example\r\n",  # a line break is refused, not trimmed away
        "\tx@acme.example",
        "Ana <a@b.es>",
    ],
)
def test_an_invalid_to_is_refused_before_anything_is_sent(rt, smtp, to):
    invoice_id = issued_invoice(rt)

    with pytest.raises(InvalidDocumentError) as caught:
        send(rt, invoice_id, smtp.settings(), to=to)

    assert caught.value.errors[0][0] == "to"
    assert smtp.inbox.messages == [] and emails(rt) == []


def test_without_an_smtp_host_the_error_says_what_to_set(rt):
    invoice_id = issued_invoice(rt)

    with pytest.raises(MailNotConfiguredError, match="PUENTE_SMTP_HOST"):
        send(rt, invoice_id, MailSettings(host=None, sender=SENDER))

    assert emails(rt) == []


def test_without_any_sender_address_the_error_says_what_to_set(rt, smtp):
    invoice_id = issued_invoice(rt)

    with pytest.raises(MailNotConfiguredError, match="PUENTE_MAIL_FROM"):
        send(rt, invoice_id, smtp.settings(sender=None))


# --- pieces ------------------------------------------------------------------------------------


def test_mail_settings_come_from_the_invoicing_settings():
    settings = InvoicingSettings.from_env(
        {
            "PUENTE_SMTP_HOST": "smtp.example.com",
            "PUENTE_SMTP_PORT": "2525",
            "PUENTE_SMTP_USER": "u",
            "PUENTE_SMTP_PASSWORD": "p",
            "PUENTE_SMTP_STARTTLS": "false",
            "PUENTE_MAIL_FROM": "f@example.com",
        }
    )

    mail = MailSettings.from_settings(settings)

    assert (mail.host, mail.port, mail.user, mail.password, mail.starttls, mail.sender) == (
        "smtp.example.com",
        2525,
        "u",
        "p",
        False,
        "f@example.com",
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("3001.41", "3.001,41 €"),
        ("0", "0,00 €"),
        ("1234567.5", "1.234.567,50 €"),
        ("-7.1", "-7,10 €"),
    ],
)
def test_amounts_are_written_the_spanish_way(value, text):
    from decimal import Decimal

    assert spanish_money(Decimal(value)) == text
