"""HubSpot's ready-made flows: won deal → draft invoice, and invoice status → the deal."""

from __future__ import annotations

import templates.crm

DEAL_WON_TO_INVOICE = templates.crm.deal_won_to_invoice("hubspot", "HubSpot")
INVOICE_STATUS_TO_CRM = templates.crm.invoice_status_to_crm("hubspot", "HubSpot")
