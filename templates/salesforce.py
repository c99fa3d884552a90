"""Salesforce's ready-made flows: won opportunity → draft invoice, and the invoice's number
and payment status back on the opportunity."""

from __future__ import annotations

import templates.crm

DEAL_WON_TO_INVOICE = templates.crm.deal_won_to_invoice("salesforce", "Salesforce")
INVOICE_STATUS_TO_CRM = templates.crm.invoice_status_to_crm("salesforce", "Salesforce")
