"""Actions, one module per family; ALL lists every action the registry knows."""

from actions import invoicing

ALL = (invoicing.CREATE_DRAFT_INVOICE,)
