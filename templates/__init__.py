"""Ready-made flows, one module per connection type; ALL lists every template."""

from templates import hubspot, pipedrive, salesforce, webhook, zoho

ALL: tuple = (
    hubspot.DEAL_WON_TO_INVOICE,
    hubspot.INVOICE_STATUS_TO_CRM,
    hubspot.DEAL_WON_TO_INVOICE_POLLED,
    hubspot.COMPANY_TO_CUSTOMER,
    pipedrive.DEAL_WON_TO_INVOICE,
    pipedrive.INVOICE_STATUS_TO_CRM,
    pipedrive.DEAL_WON_TO_INVOICE_POLLED,
    pipedrive.ORGANIZATION_TO_CUSTOMER,
    zoho.DEAL_WON_TO_INVOICE,
    zoho.INVOICE_STATUS_TO_CRM,
    zoho.DEAL_WON_TO_INVOICE_POLLED,
    zoho.ACCOUNT_TO_CUSTOMER,
    salesforce.DEAL_WON_TO_INVOICE,
    salesforce.INVOICE_STATUS_TO_CRM,
    salesforce.DEAL_WON_TO_INVOICE_POLLED,
    salesforce.ACCOUNT_TO_CUSTOMER,
    webhook.HOURS_TO_INVOICE,
)
