"""Actions on the invoicing core: the won deal becomes a draft invoice."""

from __future__ import annotations

from typing import Any

from connector.errors import FieldError, ValidationError
from connector.spec import ActionContext, ActionSpec
from invoicing.service import CustomerData, DraftResult, InvalidDocumentError, LineData


def create_draft_invoice(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Find or create the customer by tax id and create the draft, once per key and deal."""
    try:
        result = ctx.invoicing.create_draft_invoice(
            customer=CustomerData.from_json(data["customer"]),
            lines=[LineData.from_json(line) for line in data["lines"]],
            currency=data.get("currency", "EUR"),
            source=data.get("source"),
            external_ref=data.get("external_ref"),
            idempotency_key=ctx.idempotency_key,
            notes=data.get("notes"),
        )
    except InvalidDocumentError as exc:
        raise ValidationError.from_field_errors(
            "the invoice cannot be created", [FieldError(p, m) for p, m in exc.errors]
        ) from None
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
            "base": str(invoice.base_total),
            "tax": str(invoice.tax_total),
            "total": str(invoice.total),
        },
        "taxes": [
            {"rate": _rate(t.rate), "base": str(t.base), "amount": str(t.amount)}
            for t in invoice.taxes
        ],
    }


def _rate(rate: Any) -> str:
    return format(rate.normalize(), "f")


CREATE_DRAFT_INVOICE = ActionSpec(
    key="invoicing.create_draft_invoice",
    title="Create draft invoice",
    title_es="Crear factura en borrador",
    description="Find or create the customer by tax id; create a draft invoice with these lines.",
    input_schema="actions/invoicing.create_draft_invoice.input.json",
    output_schema="actions/invoicing.create_draft_invoice.output.json",
    perform=create_draft_invoice,
    business_keys=("invoice_id", "customer.tax_id"),
)
