"""Actions, one module per family; ALL lists every action the registry knows, SERVICES
what their domains register in the runtime."""

from actions import crm, http, hubspot, invoicing, pipedrive, salesforce, zoho

ALL = (
    invoicing.RECORD_WON_DEAL,
    invoicing.FIND_OR_CREATE_CUSTOMER,
    invoicing.CREATE_DRAFT_INVOICE,
    invoicing.CONVERT_DOCUMENT,
    invoicing.ISSUE_INVOICE,
    invoicing.SEND_INVOICE,
    invoicing.RECORD_PAYMENT,
    invoicing.CANCEL_INVOICE,
    http.REQUEST,
    hubspot.GET_DEAL,
    hubspot.UPDATE_DEAL,
    hubspot.ADD_NOTE,
    hubspot.GET_COMPANY,
    hubspot.UPSERT_COMPANY,
    pipedrive.GET_DEAL,
    pipedrive.UPDATE_DEAL,
    pipedrive.ADD_NOTE,
    pipedrive.GET_ORGANIZATION,
    pipedrive.UPSERT_COMPANY,
    zoho.GET_DEAL,
    zoho.UPDATE_DEAL,
    zoho.ADD_NOTE,
    zoho.GET_ACCOUNT,
    zoho.UPSERT_COMPANY,
    salesforce.GET_DEAL,
    salesforce.UPDATE_DEAL,
    salesforce.ADD_NOTE,
    salesforce.GET_ACCOUNT,
    salesforce.UPSERT_COMPANY,
)

# The CRM families' APIs, for reconciliation (actions.crm.reconcile), by connection type.
CRM_APIS: dict[str, crm.CrmApi] = {
    "hubspot": hubspot.API,
    "pipedrive": pipedrive.API,
    "salesforce": salesforce.API_CALLS,
    "zoho": zoho.API,
}

# What the domains behind the actions register in the runtime when it is built.
SERVICES = (invoicing.install_services,)
