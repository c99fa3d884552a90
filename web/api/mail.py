"""Send an issued invoice to the customer by email: POST /api/v1/invoices/<id>/send."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from actions.invoicing import invoicing_settings, signing_credentials
from invoicing import mailer
from invoicing.models import InvoiceEmail
from web import current_runtime
from web.api import ApiError, bp, iso, json_body, sessions
from web.api.idempotency import idempotent, request_key


def email_json(email: InvoiceEmail) -> dict[str, Any]:
    return {
        "id": email.id,
        "invoice_id": email.invoice_id,
        "status": email.status,
        "to": email.to,
        "message_id": email.message_id,
        "sent_at": iso(email.created_at) if email.status == mailer.SENT else None,
        "error": email.error,
    }


@bp.errorhandler(mailer.MailNotConfiguredError)
def _not_configured(exc: mailer.MailNotConfiguredError) -> Any:
    return ApiError(503, "mail_not_configured", str(exc)).response()


@bp.errorhandler(mailer.MailDeliveryError)
def _not_delivered(exc: mailer.MailDeliveryError) -> Any:
    body = {
        "error": "mail_failed",
        "message": str(exc),
        "transient": exc.transient,
        "email": email_json(exc.email),
    }
    return jsonify(body), 502


@bp.post("/invoices/<int:invoice_id>/send")
@idempotent
def send_invoice(invoice_id: int) -> Any:
    """Email the invoice (PDF + Facturae) to `to`, or to the customer's email by default."""
    data = json_body() if request.get_data() else {}
    to = data.get("to")
    if to is not None and not isinstance(to, str):
        raise ApiError(422, "invalid", "to must be an email address", "to")
    runtime = current_runtime()
    settings = mailer.MailSettings.from_settings(invoicing_settings(runtime.services))
    failure: mailer.MailDeliveryError | None = None
    with sessions().begin() as s:
        try:
            email = mailer.send_invoice(
                s,
                invoice_id,
                settings,
                to=to,
                credentials=signing_credentials(runtime.services),
                idempotency_key=request_key(),
            )
            body = email_json(email)
        except mailer.MailDeliveryError as exc:
            # Leave the block normally so the failed attempt is committed, then answer 502.
            failure = exc
    if failure is not None:
        raise failure  # sessions don't expire on commit: the record stays readable
    return jsonify(body), 200
