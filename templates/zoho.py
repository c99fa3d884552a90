"""Zoho CRM's ready-made flows: won deal → draft invoice (from the notification channel, or
polled for accounts that cannot enable one), invoice status → the deal, and account →
customer."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from connector.spec import TemplateSpec
from templates import crm

DEAL_WON_TO_INVOICE = crm.deal_won_to_invoice("zoho", "Zoho CRM")
INVOICE_STATUS_TO_CRM = crm.invoice_status_to_crm("zoho", "Zoho CRM")
# The same flow, started by reading Zoho CRM every few minutes instead of by its channel.
DEAL_WON_TO_INVOICE_POLLED = replace(
    crm.deal_won_to_invoice("zoho", "Zoho CRM", trigger="zoho.deal_won_polled", suffix="_polled"),
    title="Zoho CRM: won deal → draft invoice (read every few minutes, no notifications)",
    title_es="Zoho CRM: oportunidad ganada → factura en borrador (leída cada pocos minutos, "
    "sin notificaciones)",
)


def _account_to_customer(connection: str) -> dict[str, Any]:
    return {
        "name": "Zoho CRM: cuenta → cliente",
        "description": "Cuando se crea o cambia una cuenta en Zoho CRM, crea en Puente el "
        "cliente con su NIF/CIF, su nombre y su dirección de facturación (uno por NIF/CIF).",
        "trigger": {"key": "zoho.account_changed", "connection": connection},
        "steps": [
            {
                "id": "account",
                "name": "Leer la cuenta",
                "action": "zoho.get_account",
                "connection": connection,
                "input": {"company_id": {"$expr": "trigger.company_id"}},
            },
            {
                "id": "has_tax_id",
                "filter": {"$expr": "steps.account.has_tax_id"},
                "explain": "la cuenta no tiene NIF/CIF todavía",
            },
            {
                "id": "customer",
                "name": "Buscar o crear el cliente por su NIF/CIF",
                "action": "invoicing.find_or_create_customer",
                "input": {"$expr": "steps.account.customer"},
            },
        ],
    }


ACCOUNT_TO_CUSTOMER = TemplateSpec(
    key="zoho.account_to_customer",
    title="Zoho CRM: account → customer",
    title_es="Zoho CRM: cuenta → cliente",
    description="An account created or changed in Zoho CRM becomes a customer in Puente, found "
    "or created by its NIF/CIF (one per NIF/CIF); an account without one waits until it has it.",
    description_es="Una cuenta creada o modificada en Zoho CRM pasa a ser un cliente en Puente, "
    "buscado o creado por su NIF/CIF (uno por NIF/CIF); una cuenta sin NIF/CIF espera a "
    "tenerlo.",
    connection_type="zoho",
    document=_account_to_customer,
)
