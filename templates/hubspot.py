"""HubSpot's ready-made flows: won deal → draft invoice (from the webhook, or polled for
accounts that cannot register webhooks), invoice status → the deal, and company → customer."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import templates.crm
from connector.spec import TemplateSpec

DEAL_WON_TO_INVOICE = templates.crm.deal_won_to_invoice("hubspot", "HubSpot")
INVOICE_STATUS_TO_CRM = templates.crm.invoice_status_to_crm("hubspot", "HubSpot")
# The same flow, started by reading HubSpot every few minutes instead of by its webhook.
DEAL_WON_TO_INVOICE_POLLED = replace(
    templates.crm.deal_won_to_invoice(
        "hubspot", "HubSpot", trigger="hubspot.deal_won_polled", suffix="_polled"
    ),
    title="HubSpot: won deal → draft invoice (read every few minutes, no webhook)",
    title_es="HubSpot: oportunidad ganada → factura en borrador (leída cada pocos minutos, "
    "sin webhook)",
)


def _company_to_customer(connection: str) -> dict[str, Any]:
    return {
        "name": "HubSpot: empresa → cliente",
        "description": "Cuando se crea o cambia una empresa en HubSpot, crea en Puente el "
        "cliente con su NIF/CIF, su nombre y su dirección (uno por NIF/CIF).",
        "trigger": {"key": "hubspot.company_changed", "connection": connection},
        "steps": [
            {
                "id": "company",
                "name": "Leer la empresa",
                "action": "hubspot.get_company",
                "connection": connection,
                "input": {"company_id": {"$expr": "trigger.company_id"}},
            },
            {
                "id": "has_tax_id",
                "filter": {"$expr": "steps.company.has_tax_id"},
                "explain": "la empresa no tiene NIF/CIF todavía",
            },
            {
                "id": "customer",
                "name": "Buscar o crear el cliente por su NIF/CIF",
                "action": "invoicing.find_or_create_customer",
                "input": {"$expr": "steps.company.customer"},
            },
        ],
    }


COMPANY_TO_CUSTOMER = TemplateSpec(
    key="hubspot.company_to_customer",
    title="HubSpot: company → customer",
    title_es="HubSpot: empresa → cliente",
    description="A company created or changed in HubSpot becomes a customer in Puente, found "
    "or created by its NIF/CIF (one per NIF/CIF); a company without one waits until it has it.",
    description_es="Una empresa creada o modificada en HubSpot pasa a ser un cliente en Puente, "
    "buscado o creado por su NIF/CIF (uno por NIF/CIF); una empresa sin NIF/CIF espera a "
    "tenerlo.",
    connection_type="hubspot",
    document=_company_to_customer,
)
