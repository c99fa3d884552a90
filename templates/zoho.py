"""Zoho CRM's ready-made flows: won deal → draft invoice (from the notification channel, or
polled for accounts that cannot enable one), invoice status → the deal, and account →
customer."""

from __future__ import annotations

import templates.crm

DEAL_WON_TO_INVOICE = templates.crm.deal_won_to_invoice("zoho", "Zoho CRM")
INVOICE_STATUS_TO_CRM = templates.crm.invoice_status_to_crm("zoho", "Zoho CRM")
# The same flow, started by reading the CRM every few minutes instead of by what it pushes.
DEAL_WON_TO_INVOICE_POLLED = templates.crm.deal_won_to_invoice_polled(
    "zoho", "Zoho CRM", ("notifications", "notificaciones")
)
ACCOUNT_TO_CUSTOMER = templates.crm.company_to_customer("zoho", "Zoho CRM", ("account", "cuenta"))
