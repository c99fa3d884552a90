"""Ready-made flows, one module per connection type; ALL lists every template."""

from templates import pipedrive

ALL: tuple = (
    pipedrive.DEAL_WON_TO_INVOICE,
    pipedrive.INVOICE_STATUS_TO_CRM,
)
