"""Pipedrive's ready-made flows: won deal → draft invoice (from the webhook, or polled for
accounts that cannot register webhooks), invoice status → the deal, and organization →
customer."""

from __future__ import annotations

import templates.crm

DEAL_WON_TO_INVOICE = templates.crm.deal_won_to_invoice("pipedrive", "Pipedrive")
INVOICE_STATUS_TO_CRM = templates.crm.invoice_status_to_crm("pipedrive", "Pipedrive")
# The same flow, started by reading the CRM every few minutes instead of by what it pushes.
DEAL_WON_TO_INVOICE_POLLED = templates.crm.deal_won_to_invoice_polled(
    "pipedrive", "Pipedrive", ("webhook", "webhook")
)
ORGANIZATION_TO_CUSTOMER = templates.crm.company_to_customer(
    "pipedrive", "Pipedrive", ("organization", "organización")
)
