"""Salesforce's ready-made flows: won opportunity → draft invoice (from the Outbound Message,
or polled for orgs that cannot send one), the invoice's number and payment status back on the
opportunity, and account → customer."""

from __future__ import annotations

import templates.crm

DEAL_WON_TO_INVOICE = templates.crm.deal_won_to_invoice("salesforce", "Salesforce")
INVOICE_STATUS_TO_CRM = templates.crm.invoice_status_to_crm("salesforce", "Salesforce")
# The same flow, started by reading the CRM every few minutes instead of by what it pushes.
DEAL_WON_TO_INVOICE_POLLED = templates.crm.deal_won_to_invoice_polled(
    "salesforce",
    "Salesforce",
    ("Outbound Message", "mensaje saliente"),
    ("opportunity", "oportunidad"),
)
ACCOUNT_TO_CUSTOMER = templates.crm.company_to_customer(
    "salesforce", "Salesforce", ("account", "cuenta")
)
