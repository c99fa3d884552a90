"""Send an issued invoice to its customer by email: PDF and Facturae attached, every try recorded.

Transactions: `send_invoice` works inside the caller's session and never commits. A failed
attempt is added and flushed *before* `MailDeliveryError` is raised, so the caller decides
what to keep: commit the session after catching the error to keep the failure record (the API
does), or let it roll back. Raising rather than returning a "failed" row means no caller can
mistake a failure for a success by forgetting to look at the status.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from database import utcnow
from invoicing.errors import (
    DocumentStateError,
    InvalidDocumentError,
    InvoicingError,
    NotFoundError,
    Said,
    message_of,
)
from invoicing.fields import has_control_character
from invoicing.models import DocumentKind, Invoice, InvoiceEmail, InvoiceStatus

if TYPE_CHECKING:
    from invoicing.facturae import SigningCredentials
    from invoicing.settings import InvoicingSettings

log = logging.getLogger(__name__)

SENT = "sent"
FAILED = "failed"
DEFAULT_TIMEOUT = 20.0  # seconds, for connecting and for each SMTP command

# Deliberately plain: one mailbox, ASCII domain, nothing a header could be smuggled into.
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)


class MailNotConfiguredError(InvoicingError):
    """Sending mail is not set up on this installation (the operator's job, not the caller's)."""


class MailDeliveryError(InvoicingError):
    """The SMTP server did not take the message; the attempt is recorded in `email`.

    `transient` is True when trying again later may work (connection refused, timeout, 4xx
    answers) and False when it will not without a change (5xx: recipient refused, bad login).
    """

    def __init__(self, message: str, *, transient: bool, email: InvoiceEmail) -> None:
        super().__init__(message)
        self.transient = transient
        self.email = email


@dataclass(frozen=True)
class MailSettings:
    host: str | None
    port: int = 587
    user: str | None = None
    password: str | None = None
    starttls: bool = True
    sender: str | None = None  # envelope and From address; the issuer's email when unset
    timeout: float = DEFAULT_TIMEOUT
    # Extra CA certificates (PEM) to trust for STARTTLS, e.g. a relay with a private CA.
    cafile: str | None = None

    @classmethod
    def from_settings(cls, settings: InvoicingSettings) -> MailSettings:
        """The mail part of the invoicing settings (PUENTE_SMTP_*, PUENTE_MAIL_FROM)."""
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            user=settings.smtp_user,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
            sender=settings.mail_from,
        )


def send_invoice(
    session: Session,
    invoice_id: int,
    settings: MailSettings,
    *,
    to: str | None = None,
    credentials: SigningCredentials | None = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> InvoiceEmail:
    """Email an issued (or paid) invoice with its PDF and Facturae XML; return the sent record.

    Raises NotFoundError, DocumentStateError (drafts, cancelled), InvalidDocumentError (no or
    bad recipient, data Facturae cannot carry), MailNotConfiguredError, and MailDeliveryError
    after recording a failed attempt (see the module docstring for committing it).

    With an `idempotency_key` that already sent this invoice, the recorded email is returned and
    nothing is sent. Only successes keep the key (it is unique): a failed attempt is recorded
    without it, so retrying with the same key tries again.
    """
    # Lock the invoice for the whole send: two requests with the same key (or two clicks) are
    # serialized, and the second sees the first's record instead of mailing the customer twice.
    invoice = session.scalar(select(Invoice).where(Invoice.id == invoice_id).with_for_update())
    if invoice is None or invoice.kind != DocumentKind.INVOICE:  # quotes and orders are not sent
        raise NotFoundError(
            Said(
                f"invoice {invoice_id} does not exist",
                f"La factura {invoice_id} no existe: puede que se haya borrado.",
            )
        )
    if idempotency_key is not None:
        done = session.scalar(
            select(InvoiceEmail).where(InvoiceEmail.idempotency_key == idempotency_key)
        )
        if done is not None:
            if done.invoice_id != invoice_id:
                raise InvalidDocumentError(
                    [
                        (
                            "idempotency_key",
                            Said(
                                f"this key already sent invoice {done.invoice_id}; "
                                "use a new key for a new request",
                                f"esta clave ya se usó para enviar la factura {done.invoice_id}: "
                                "usa una clave nueva para un envío nuevo",
                            ),
                        )
                    ]
                )
            return done
    if invoice.status not in (InvoiceStatus.ISSUED, InvoiceStatus.PAID) or invoice.number is None:
        what = (
            "a draft: issue it first" if invoice.status == InvoiceStatus.DRAFT else invoice.status
        )
        raise DocumentStateError(
            Said(
                f"invoice {invoice_id} is {what}; only issued or paid invoices are sent",
                f"La factura {invoice_id} es un borrador: emítela antes de enviarla."
                if invoice.status == InvoiceStatus.DRAFT
                else f"La factura {invoice_id} está anulada: solo se envían facturas emitidas "
                "o cobradas."
                if invoice.status == InvoiceStatus.CANCELLED
                else f"La factura {invoice_id} no se puede enviar: solo se envían facturas "
                "emitidas o cobradas.",
            )
        )
    recipient = _recipient(invoice, to)
    if not settings.host:
        raise MailNotConfiguredError(
            Said(
                "sending mail is not configured: set PUENTE_SMTP_HOST (and PUENTE_SMTP_PORT, "
                "PUENTE_SMTP_USER, PUENTE_SMTP_PASSWORD, PUENTE_MAIL_FROM as your provider needs)",
                "El envío de correo no está configurado: pide a quien administra Puente que "
                "configure el servidor de correo (PUENTE_SMTP_HOST y, según el proveedor, "
                "PUENTE_SMTP_PORT, PUENTE_SMTP_USER, PUENTE_SMTP_PASSWORD y PUENTE_MAIL_FROM).",
            )
        )
    # Where mail comes from and goes to is today's contact data, not what was billed.
    sender = settings.sender or (invoice.issuer.email if invoice.issuer else None)
    if not sender:
        raise MailNotConfiguredError(
            Said(
                "no sender address: set PUENTE_MAIL_FROM, or the issuer's email "
                "(PUT /api/v1/issuer)",
                "Falta la dirección desde la que enviar: pon el correo de tu empresa en Ajustes "
                "(o pide que configuren PUENTE_MAIL_FROM).",
            )
        )

    now = now or utcnow()
    message = build_message(invoice, recipient, sender, credentials=credentials, now=now)
    message_id = str(message["Message-ID"])
    try:
        _deliver(message, sender, recipient, settings)
    except _Failure as failure:
        record = _record(session, invoice, recipient, now, message_id, FAILED, str(failure), None)
        log.warning(
            "invoice %s: email to %s failed (%s): %s",
            invoice.number,
            recipient,
            "transient" if failure.transient else "permanent",
            failure,
        )
        why = message_of(failure)
        raise MailDeliveryError(
            Said(
                f"the mail server did not take the email for {invoice.number}: {why}",
                f"El servidor de correo no aceptó el correo de la factura {invoice.number}: "
                f"{getattr(why, 'es', why)}."
                + (" Puedes volver a intentarlo más tarde." if failure.transient else ""),
            ),
            transient=failure.transient,
            email=record,
        ) from failure.__cause__
    log.info("invoice %s: emailed to %s as %s", invoice.number, recipient, message_id)
    return _record(session, invoice, recipient, now, message_id, SENT, None, idempotency_key)


def _recipient(invoice: Invoice, to: str | None) -> str:
    if to is not None:
        address = to.strip()
        # A line break is refused, not trimmed away (invoicing.fields.email_problem says why).
        if has_control_character(to) or not valid_email(address):
            raise InvalidDocumentError(
                [
                    (
                        "to",
                        Said(
                            f"{to!r} is not a valid email address",
                            f"«{to}» no es un correo electrónico válido: escríbelo como "
                            "nombre@empresa.es",
                        ),
                    )
                ]
            )
        return address
    stored = (invoice.customer.email or "").strip()
    if not stored:
        raise InvalidDocumentError(
            [
                (
                    "to",
                    Said(
                        f"customer {invoice.billed_customer.tax_id} has no email: send the "
                        f'address as "to", or set it (PATCH /api/v1/customers/'
                        f"{invoice.customer_id})",
                        f"el cliente {invoice.billed_customer.tax_id} no tiene correo "
                        "electrónico: escribe a qué dirección enviarla, o añádesela en su ficha",
                    ),
                )
            ]
        )
    if not valid_email(stored):
        raise InvalidDocumentError(
            [
                (
                    "to",
                    Said(
                        f"customer {invoice.billed_customer.tax_id} has the email {stored!r}, "
                        f'which is not valid: send an address as "to", or correct it '
                        f"(PATCH /api/v1/customers/{invoice.customer_id})",
                        f"el correo del cliente {invoice.billed_customer.tax_id} («{stored}») no "
                        "es válido: escribe a qué dirección enviarla, o corrígelo en su ficha",
                    ),
                )
            ]
        )
    return stored


def valid_email(address: str) -> bool:
    return len(address) <= 254 and _EMAIL.match(address) is not None


def _record(
    session: Session,
    invoice: Invoice,
    to: str,
    now: datetime,
    message_id: str,
    status: str,
    error: str | None,
    idempotency_key: str | None,
) -> InvoiceEmail:
    record = InvoiceEmail(
        invoice_id=invoice.id,
        to=to,
        status=status,
        error=error,
        message_id=message_id,
        idempotency_key=idempotency_key,
        created_at=now,
    )
    session.add(record)
    session.flush()
    return record


# --------------------------------------------------------------------------------------------
# The message
# --------------------------------------------------------------------------------------------


def build_message(
    invoice: Invoice,
    to: str,
    sender: str,
    *,
    credentials: SigningCredentials | None = None,
    now: datetime | None = None,
) -> EmailMessage:
    """The email for an issued invoice: Spanish text, the PDF and the Facturae XML attached."""
    from invoicing import chain, exports
    from invoicing.pdf import invoice_pdf

    assert invoice.number is not None and invoice.issue_date is not None
    # Documents first: data Facturae cannot carry is refused before anything is sent.
    facturae = exports.facturae_xml(invoice, credentials)
    pdf = invoice_pdf(invoice, chain.qr_url_of(invoice))

    issuer_name = invoice.billed_issuer.name if invoice.billed_issuer else ""
    message = EmailMessage()
    message["Subject"] = f"Factura {invoice.number} de {issuer_name}".strip()
    message["From"] = formataddr((issuer_name, sender)) if issuer_name else sender
    message["To"] = to
    if invoice.issuer and invoice.issuer.email and invoice.issuer.email != sender:
        message["Reply-To"] = invoice.issuer.email
    message["Date"] = format_datetime(now or utcnow())
    domain = sender.rpartition("@")[2]
    message["Message-ID"] = make_msgid("factura", domain if len(domain) <= 100 else None)
    message["Content-Language"] = "es"
    message.set_content(body_text(invoice))

    stem = _file_stem(invoice.number)
    message.add_attachment(pdf, maintype="application", subtype="pdf", filename=f"{stem}.pdf")
    # Signed Facturae files are conventionally ".xsig"; both are application/xml.
    extension = "xsig" if credentials is not None else "xml"
    message.add_attachment(
        facturae, maintype="application", subtype="xml", filename=f"{stem}-facturae.{extension}"
    )
    return message


def body_text(invoice: Invoice) -> str:
    assert invoice.number is not None and invoice.issue_date is not None
    issuer_name = invoice.billed_issuer.name if invoice.billed_issuer else ""
    outstanding = invoice.outstanding
    currency = invoice.currency
    lines = [
        f"Estimado cliente ({invoice.billed_customer.name}):",
        "",
        f"Le enviamos la factura {invoice.number} de {issuer_name}.",
        "",
        f"  Número de factura:    {invoice.number}",
        f"  Fecha de expedición:  {invoice.issue_date:%d/%m/%Y}",
    ]
    if invoice.due_date is not None and invoice.due_date != invoice.issue_date:
        lines.append(f"  Vencimiento:          {invoice.due_date:%d/%m/%Y}")
    lines += [
        f"  Base imponible:       {spanish_money(invoice.base_total, currency)}",
        f"  IVA:                  {spanish_money(invoice.tax_total, currency)}",
    ]
    if invoice.surcharge_total:
        lines.append(f"  Recargo equivalencia: {spanish_money(invoice.surcharge_total, currency)}")
    lines.append(f"  Total:                {spanish_money(invoice.total, currency)}")
    if invoice.withholding_total:
        lines += [
            f"  Retención IRPF:       -{spanish_money(invoice.withholding_total, currency)}",
            f"  Total a pagar:        {spanish_money(invoice.amount_due, currency)}",
        ]
    if invoice.paid_total > 0:
        lines.append(f"  Pagado:               {spanish_money(invoice.paid_total, currency)}")
    lines.append(f"  Importe pendiente:    {spanish_money(outstanding, currency)}")
    lines.append("")
    if outstanding <= 0:
        lines.append("La factura está pagada: no tiene que hacer nada más. Gracias.")
    elif invoice.billed_issuer and invoice.billed_issuer.iban:
        lines.append(
            f"Puede pagar el importe pendiente por transferencia a la cuenta "
            f"{invoice.billed_issuer.iban}, indicando el número de factura."
        )
    else:
        lines.append("Le rogamos que pague el importe pendiente indicando el número de factura.")
    lines += [
        "",
        "Adjuntamos la factura en PDF y en formato electrónico Facturae 3.2.2 (XML).",
        "",
        "Un saludo,",
        issuer_name,
    ]
    return "\n".join(lines) + "\n"


def spanish_money(value: Decimal, currency: str = "EUR") -> str:
    """3001.41 → '3.001,41 €' (thousands with dots, decimal comma)."""
    text = f"{value:,.2f}".replace(",", "_").replace(".", ",").replace("_", ".")
    return f"{text} €" if currency == "EUR" else f"{text} {currency}"


def _file_stem(number: str) -> str:
    # Numbers are like F2026-00042; keep file names safe whatever a series code holds.
    return "factura-" + (re.sub(r"[^A-Za-z0-9._-]+", "_", number) or "sin-numero")


# --------------------------------------------------------------------------------------------
# SMTP
# --------------------------------------------------------------------------------------------


class MailSendError(InvoicingError):
    """A plain message (not an invoice) could not be handed to the SMTP server."""

    def __init__(self, message: str, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def send_text(settings: MailSettings, to: str, subject: str, text: str) -> None:
    """Send a plain-text message (a notification) from the configured sender."""
    if not settings.host or not settings.sender:
        raise MailNotConfiguredError(
            Said(
                "no mail server or sender is configured: set PUENTE_SMTP_HOST and PUENTE_MAIL_FROM",
                "No hay servidor de correo o remitente configurado: pide que configuren "
                "PUENTE_SMTP_HOST y PUENTE_MAIL_FROM.",
            )
        )
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or None)
    message.set_content(text)
    try:
        _deliver(message, settings.sender, to, settings)
    except _Failure as exc:
        raise MailSendError(message_of(exc), exc.transient) from None


class _Failure(Exception):
    def __init__(self, text: str, transient: bool) -> None:
        super().__init__(text)
        self.transient = transient


def _deliver(message: EmailMessage, sender: str, to: str, settings: MailSettings) -> None:
    """Hand the message to the SMTP server; raise _Failure saying whether a retry may help."""
    assert settings.host
    where = f"{settings.host}:{settings.port}"
    try:
        _converse(message, sender, to, settings)
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = next(iter(exc.recipients.values()), (0, b""))
        raise _Failure(
            Said(
                f"{where} refused the recipient {to}: {code} {_text(text)}",
                f"{where} rechazó el destinatario {to} ({code} {_text(text)}): revisa la dirección",
            ),
            code < 500,
        ) from exc
    except smtplib.SMTPAuthenticationError as exc:
        raise _Failure(
            Said(
                f"{where} refused the login of {settings.user!r} (check PUENTE_SMTP_USER and "
                f"PUENTE_SMTP_PASSWORD): {exc.smtp_code} {_text(exc.smtp_error)}",
                f"{where} no aceptó el usuario «{settings.user}» (revisa PUENTE_SMTP_USER y "
                f"PUENTE_SMTP_PASSWORD): {exc.smtp_code} {_text(exc.smtp_error)}",
            ),
            exc.smtp_code < 500,
        ) from exc
    except smtplib.SMTPResponseException as exc:  # sender or data refused, unwelcoming greeting
        raise _Failure(
            Said(
                f"{where} answered {exc.smtp_code} {_text(exc.smtp_error)}",
                f"{where} respondió {exc.smtp_code} {_text(exc.smtp_error)}",
            ),
            exc.smtp_code < 500,
        ) from exc
    except smtplib.SMTPNotSupportedError as exc:
        raise _Failure(
            Said(
                f"{where} does not support what is configured ({exc}); if it offers no "
                "STARTTLS, set PUENTE_SMTP_STARTTLS=false",
                f"{where} no admite lo que está configurado ({exc}); si no ofrece STARTTLS, "
                "hay que poner PUENTE_SMTP_STARTTLS=false",
            ),
            False,
        ) from exc
    except smtplib.SMTPServerDisconnected as exc:
        if isinstance(exc.__context__, TimeoutError):  # smtplib turns a read timeout into this
            raise _Failure(_no_answer(where, settings.timeout), True) from exc
        raise _Failure(
            Said(
                f"{where} closed the connection: {exc or 'no answer'}",
                f"{where} cortó la conexión: {exc or 'sin respuesta'}",
            ),
            True,
        ) from exc
    except smtplib.SMTPException as exc:
        raise _Failure(Said(f"{where}: {exc}", f"{where} dio un error: {exc}"), True) from exc
    except ssl.SSLCertVerificationError as exc:
        raise _Failure(
            Said(
                f"the TLS certificate of {where} is not trusted: {exc.verify_message}",
                f"el certificado TLS de {where} no es de confianza: {exc.verify_message}",
            ),
            False,
        ) from exc
    except TimeoutError as exc:
        raise _Failure(_no_answer(where, settings.timeout), True) from exc
    except OSError as exc:  # refused, unreachable, unknown host, TLS handshake broken
        raise _Failure(
            Said(f"could not talk to {where}: {exc}", f"no se pudo conectar con {where}: {exc}"),
            True,
        ) from exc


def _no_answer(where: str, timeout: float) -> Said:
    return Said(
        f"{where} did not answer within {timeout:g} s",
        f"{where} no respondió en {timeout:g} s",
    )


def _converse(message: EmailMessage, sender: str, to: str, settings: MailSettings) -> None:
    assert settings.host
    # The timeout bounds connecting and every read and write after it.
    smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    try:
        if settings.starttls:
            smtp.starttls(context=ssl.create_default_context(cafile=settings.cafile))
        if settings.user:
            smtp.login(settings.user, settings.password or "")
        smtp.send_message(message, from_addr=sender, to_addrs=[to])
    except BaseException:
        smtp.close()
        raise
    try:
        smtp.quit()
    except OSError:  # the server took the message: an unfriendly goodbye changes nothing
        smtp.close()


def _text(value: bytes | str) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").strip()
    return value.strip()
