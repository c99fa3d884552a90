"""Triggers, one module per family; ALL lists every trigger the registry knows."""

from triggers import api, crm, http, hubspot, invoicing, pipedrive, salesforce, webhook, zoho

ALL = (
    webhook.DEAL_WON,
    webhook.HOURS_LOGGED,
    http.DEALS_POLLED,
    api.DEAL_WON,
    api.CUSTOMER_CREATED,
    invoicing.INVOICE_DRAFTED,
    invoicing.INVOICE_ISSUED,
    invoicing.INVOICE_PAID,
    invoicing.INVOICE_CANCELLED,
    invoicing.INVOICE_STATUS,
    invoicing.CUSTOMER_CREATED,
    invoicing.DEAL_RECORDED,
    crm.DEAL_WON,
    hubspot.DEAL_WON,
    hubspot.DEAL_WON_POLLED,
    hubspot.COMPANY_CHANGED,
    pipedrive.DEAL_WON,
    pipedrive.DEAL_WON_POLLED,
    pipedrive.ORGANIZATION_CHANGED,
    zoho.DEAL_WON,
    zoho.DEAL_WON_POLLED,
    zoho.ACCOUNT_CHANGED,
    salesforce.DEAL_WON,
    salesforce.DEAL_WON_POLLED,
    salesforce.ACCOUNT_CHANGED,
)
