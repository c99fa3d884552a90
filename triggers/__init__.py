"""Triggers, one module per family; ALL lists every trigger the registry knows."""

from triggers import invoicing, webhook

ALL = (
    webhook.DEAL_WON,
    invoicing.INVOICE_ISSUED,
    invoicing.INVOICE_PAID,
    invoicing.INVOICE_CANCELLED,
    invoicing.CUSTOMER_CREATED,
)
