"""Actions on the invoicing core: customers, draft invoices, issuing and payments."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from connector.errors import ConfigurationError, FieldError, TransientError, ValidationError
from connector.events import OUTBOX
from connector.settings import Settings
from connector.spec import (
    ActionContext,
    ActionSpec,
    DomainEvent,
    Effects,
    ServiceKey,
    ServiceRegistry,
)
from database import utcnow
from invoicing import chain, documents, outbox
from invoicing.deals import DealData
from invoicing.errors import DocumentStateError, InvalidDocumentError, NotFoundError
from invoicing.facturae import SigningCredentials, load_pkcs12
from invoicing.mailer import MailDeliveryError, MailSettings
from invoicing.money import cents, to_decimal
from invoicing.service import CustomerData, DraftResult, Invoicing, LineData
from invoicing.settings import InvoicingSettings

# The services the invoicing side registers in the runtime (see install_services).
INVOICING = ServiceKey[Invoicing]("invoicing")
INVOICING_SETTINGS = ServiceKey[InvoicingSettings]("invoicing.settings")
SIGNING = ServiceKey[SigningCredentials | None]("invoicing.signing")
MAIL = ServiceKey[MailSettings | None]("invoicing.mail")
# The address of an invoice's page, to write back to a CRM deal.
INVOICE_LINK = ServiceKey[Callable[[int], str]]("invoicing.link")


def install_services(services: ServiceRegistry, settings: Settings) -> None:
    """Register the invoicing core's own settings, the invoicing facade (in the step's
    transaction), the Facturae signing certificate (loaded once, on first use: reading a
    PKCS#12 costs ~40 ms) and outgoing mail (None when no SMTP host is set).

    The engine's `settings` carry nothing of invoicing: its settings are
    `InvoicingSettings.from_env()`, unless the runtime was given some
    (`build_runtime(settings, services={INVOICING_SETTINGS: InvoicingSettings(...)})`,
    e.g. a test's SMTP server), which the certificate and mail are then built from.
    """
    config = (
        services.get(INVOICING_SETTINGS)
        if services.has(INVOICING_SETTINGS)
        else InvoicingSettings.from_env()
    )
    services.provide(INVOICING_SETTINGS, config)
    services.provide_factory(INVOICING, Invoicing)
    p12, password = config.facturae_p12, config.facturae_p12_password
    services.provide_lazy(SIGNING, lambda: _credentials(p12, password))
    services.provide(MAIL, MailSettings.from_settings(config) if config.smtp_host else None)
    services.provide(OUTBOX, _Outbox())
    public = settings.public_url.rstrip("/")
    services.provide(INVOICE_LINK, lambda invoice_id: f"{public}/ui/invoices/{invoice_id}")


def invoicing_settings(services: ServiceRegistry) -> InvoicingSettings:
    """The invoicing settings this process runs with (the web and the CLI use them too)."""
    return services.get(INVOICING_SETTINGS)


class _Outbox:
    """The invoicing core's outbox as the engine reads it (connector.events)."""

    def unpublished(self, session: Session, limit: int) -> list[DomainEvent]:
        return [
            DomainEvent(
                e.id, e.topic, e.subject_id, e.payload, e.created_at.astimezone(UTC).isoformat()
            )
            for e in outbox.unpublished(session, limit)
        ]

    def mark_published(self, session: Session, ids: list[int]) -> None:
        outbox.mark_published(session, ids, utcnow())


def _credentials(path: Path | None, password: str | None) -> SigningCredentials | None:
    return None if path is None else load_pkcs12(path.read_bytes(), password)


def signing_credentials(services: ServiceRegistry) -> SigningCredentials | None:
    """The signing certificate as this process has it configured (the web uses it too)."""
    return services.get(SIGNING) if services.has(SIGNING) else None


@contextmanager
def _explained(what: str) -> Iterator[None]:
    """Turn the invoicing core's refusals into errors the run log explains (no retry)."""
    try:
        yield
    except InvalidDocumentError as exc:
        raise ValidationError.from_field_errors(
            what, [FieldError(p, m) for p, m in exc.errors]
        ) from None
    except NotFoundError as exc:
        raise ValidationError(f"{what}: {exc}") from None
    except DocumentStateError as exc:
        raise ConfigurationError(f"{what}: {exc}") from None


def record_won_deal(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Keep the won deal for reports, once per source and deal id (the trigger's deal)."""
    owner = data.get("owner") or {}
    amount = data.get("amount")
    source, ref = _identity(ctx, data.get("source") or "webhook", str(data["deal_id"]))
    with _explained("the deal cannot be recorded"):
        deal, created = ctx.service(INVOICING).record_deal(
            DealData(
                source=source,
                external_ref=ref,
                won_at=datetime.fromisoformat(data["won_at"]),
                title=data.get("title"),
                owner_name=owner.get("name"),
                owner_email=owner.get("email"),
                campaign=data.get("campaign"),
                amount=cents(to_decimal(amount)) if amount is not None else None,
                currency=data.get("currency", "EUR"),
                customer_name=data["customer"]["name"],
                customer_tax_id=data["customer"]["tax_id"],
            )
        )
    return {
        "deal_record_id": deal.id,
        "source": deal.source,
        "external_ref": deal.external_ref,
        "won_at": deal.won_at.astimezone(UTC).isoformat(),
        "created": created,
    }


def _identity(ctx: ActionContext, source: Any, ref: Any) -> tuple[Any, Any]:
    """What a record made for the trigger's item is unique by: the trigger's entity when the
    run has one, never the mapped fields (a wrong mapping would put two deals on one
    invoice); the mapped ones only for runs whose trigger names no entity."""
    if ctx.entity is None:
        return source, ref
    if ref not in (None, "", ctx.entity.key):
        ctx.log.warning(
            "the mapped reference %r is not the trigger's %r: the trigger's is kept",
            ref,
            ctx.entity.key,
        )
    return ctx.entity.source, ctx.entity.key


def convert_document(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Turn a quote, order or delivery note into the next document, all or part of it."""
    takes = None
    if data.get("lines") is not None:
        takes = [documents.Take(line["line_id"], line.get("quantity")) for line in data["lines"]]
    with _explained("the document cannot be converted"):
        draft, created = ctx.service(INVOICING).convert(
            data["document_id"], data["to"], takes, idempotency_key=ctx.idempotency_key
        )
    return {
        "document_id": draft.id,
        "kind": draft.kind,
        "status": draft.status,
        "converted_from": draft.converted_from_id,
        "total": str(draft.total),
        "created": created,
    }


def find_or_create_customer(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """The customer with this tax id, created when there is none."""
    with _explained("the customer cannot be found or created"):
        result = ctx.service(INVOICING).find_or_create_customer(CustomerData.from_json(data))
    customer = result.customer
    return {
        "customer_id": customer.id,
        "tax_id": customer.tax_id,
        "tax_id_kind": customer.tax_id_kind,
        "name": customer.name,
        "email": customer.email,
        "equivalence_surcharge": customer.equivalence_surcharge,
        "payment_days": customer.payment_days,
        "created": result.created,
        "name_differs": result.name_differs,
    }


def issue_invoice(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Number, date and register the draft; repeating it changes nothing."""
    with _explained("the invoice cannot be issued"):
        issued = ctx.service(INVOICING).issue(data["invoice_id"], data.get("series"))
    invoice = issued.invoice
    return {
        "invoice_id": invoice.id,
        "number": invoice.number,
        "issue_date": invoice.issue_date.isoformat() if invoice.issue_date else None,
        "status": invoice.status,
        "total": str(invoice.total),
        "amount_due": str(invoice.amount_due),
        "due_date": invoice.due_date.isoformat() if invoice.due_date else None,
        "huella": chain.alta_of(invoice).huella,
        "qr_url": chain.qr_url_of(invoice),
        "external_ref": invoice.external_ref,
        "created": issued.issued_now,
    }


def cancel_invoice(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Cancel an invoice issued in error (VERI*FACTU anulación); repeating changes nothing."""
    with _explained("the invoice cannot be cancelled"):
        invoice, cancelled_now = ctx.service(INVOICING).cancel(data["invoice_id"], data["reason"])
    return {
        "invoice_id": invoice.id,
        "number": invoice.number,
        "status": invoice.status,
        "external_ref": invoice.external_ref,
        "created": cancelled_now,
    }


def send_invoice(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Email the issued invoice with its PDF and Facturae; once per idempotency key."""
    mail = ctx.service(MAIL)
    if mail is None:
        raise ConfigurationError(
            "sending mail is not set up: set PUENTE_SMTP_HOST and PUENTE_MAIL_FROM on the workers"
        )
    try:
        with _explained("the invoice cannot be sent"):
            email, created = ctx.service(INVOICING).send_invoice(
                data["invoice_id"],
                mail,
                to=data.get("to"),
                credentials=ctx.service(SIGNING),
                idempotency_key=ctx.idempotency_key,
            )
    except MailDeliveryError as exc:  # the failed attempt stays in the invoice's email history
        if exc.transient:
            raise TransientError(
                f"the mail server did not take the invoice: {exc}", keeps_record=True
            ) from None
        raise ValidationError(
            f"the mail server refused the invoice: {exc}", keeps_record=True
        ) from None
    return {
        "invoice_id": email.invoice_id,
        "email_id": email.id,
        "to": email.to,
        "status": email.status,
        "message_id": email.message_id,
        "created": created,
    }


def record_payment(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Record money received, once per idempotency key."""
    paid_on = date.fromisoformat(data["paid_on"]) if data.get("paid_on") else date.today()
    with _explained("the payment cannot be recorded"):
        recorded = ctx.service(INVOICING).record_payment(
            data["invoice_id"],
            data["amount"],
            paid_on,
            method=data.get("method"),
            reference=data.get("reference"),
            idempotency_key=ctx.idempotency_key,
        )
    invoice = recorded.invoice
    return {
        "invoice_id": invoice.id,
        "payment_id": recorded.payment.id,
        "number": invoice.number,
        "status": invoice.status,
        "paid": str(invoice.paid_total),
        "outstanding": str(invoice.outstanding),
        "external_ref": invoice.external_ref,
        "created": recorded.created,
    }


def create_draft_invoice(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Find or create the customer by tax id and create the draft, once per key and deal."""
    source, ref = _identity(ctx, data.get("source"), data.get("external_ref"))
    with _explained("the invoice cannot be created"):
        result = ctx.service(INVOICING).create_draft_invoice(
            customer=CustomerData.from_json(data["customer"]),
            lines=[LineData.from_json(line) for line in data["lines"]],
            currency=data.get("currency", "EUR"),
            source=source,
            external_ref=ref,
            idempotency_key=ctx.idempotency_key,
            notes=data.get("notes"),
            invoice_type=data.get("invoice_type", "F1"),
            discount_percent=data.get("discount_percent") or 0,
            operation_date=data.get("operation_date"),
            kind=data.get("kind", "invoice"),
        )
    if result.customer.name_differs:
        ctx.log.warning(
            "customer %s is stored as %r; the deal says %r (the stored name is kept)",
            result.customer.customer.tax_id,
            result.customer.customer.name,
            data["customer"]["name"],
        )
    return draft_output(result)


def draft_output(result: DraftResult) -> dict[str, Any]:
    invoice, party = result.invoice, result.customer
    return {
        "invoice_id": invoice.id,
        "kind": invoice.kind,
        "status": invoice.status,
        "created": result.created,
        "customer": {
            "id": party.customer.id,
            "tax_id": party.customer.tax_id,
            "name": party.customer.name,
            "created": party.created,
            "name_differs": party.name_differs,
        },
        "currency": invoice.currency,
        "external_ref": invoice.external_ref,
        "totals": {
            "discount": str(invoice.discount_total),
            "base": str(invoice.base_total),
            "tax": str(invoice.tax_total),
            "surcharge": str(invoice.surcharge_total),
            "total": str(invoice.total),
            "withholding": str(invoice.withholding_total),
            "due": str(invoice.amount_due),
        },
        "taxes": [_tax(t) for t in invoice.taxes],
    }


def _tax(tax: Any) -> dict[str, Any]:
    data = {"rate": _rate(tax.rate), "base": str(tax.base), "amount": str(tax.amount)}
    if tax.surcharge_rate is not None:  # recargo de equivalencia
        data["surcharge_rate"] = _rate(tax.surcharge_rate)
        data["surcharge_amount"] = str(tax.surcharge_amount)
    return data


def _rate(rate: Any) -> str:
    return format(rate.normalize(), "f")


def _spec(
    perform: Callable[[ActionContext, dict[str, Any]], dict[str, Any]],
    title: str,
    title_es: str,
    keys: tuple[tuple[str, str], ...] = (),
    effects: Effects = Effects.DATABASE,
    upsert: bool = False,
) -> ActionSpec:
    name = perform.__name__
    return ActionSpec(
        key=f"invoicing.{name}",
        title=title,
        title_es=title_es,
        description=(perform.__doc__ or "").strip(),
        input_schema=f"actions/invoicing.{name}.input.json",
        output_schema=f"actions/invoicing.{name}.output.json",
        perform=perform,
        business_keys=keys,
        effects=effects,
        upsert=upsert,
    )


CONVERT_DOCUMENT = _spec(
    convert_document,
    "Convert document",
    "Convertir documento",
)
RECORD_WON_DEAL = _spec(
    record_won_deal,
    "Record won deal",
    "Registrar oportunidad ganada",
    upsert=True,
)
CREATE_DRAFT_INVOICE = _spec(
    create_draft_invoice,
    "Create draft invoice",
    "Crear factura en borrador",
    (("invoice_ref", "invoice_id"), ("customer_tax_id", "customer.tax_id")),
)
FIND_OR_CREATE_CUSTOMER = _spec(
    find_or_create_customer,
    "Find or create customer",
    "Buscar o crear cliente",
    (("customer_tax_id", "tax_id"),),
    upsert=True,
)
# An issued invoice is found by its number; the id until it has one.
INVOICE_REF = (("invoice_ref", "number"), ("invoice_ref", "invoice_id"))
ISSUE_INVOICE = _spec(issue_invoice, "Issue invoice", "Emitir factura", INVOICE_REF)
CANCEL_INVOICE = _spec(cancel_invoice, "Cancel invoice", "Anular factura", INVOICE_REF)
SEND_INVOICE = _spec(
    send_invoice,
    "Send invoice by email",
    "Enviar factura por correo",
    (("invoice_ref", "invoice_id"),),
    effects=Effects.EXTERNAL_WRITE,
)
RECORD_PAYMENT = _spec(record_payment, "Record payment", "Registrar cobro", INVOICE_REF)
