"""The two ready-made flows of a Zoho CRM connection."""

from templates import crm

DEAL_WON_TO_INVOICE = crm.deal_won_to_invoice("zoho", "Zoho CRM")
INVOICE_STATUS_TO_CRM = crm.invoice_status_to_crm("zoho", "Zoho CRM")
