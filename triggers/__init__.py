"""Triggers, one module per family; ALL lists every trigger the registry knows."""

from triggers import webhook

ALL = (webhook.DEAL_WON,)
