"""Actions, one module per family; ALL lists every action the registry knows."""

from actions import http, invoicing

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
)
