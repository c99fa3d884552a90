"""Pipedrive's ready-made flows: won deal → draft invoice (from the webhook, or polled for
accounts that cannot register webhooks), invoice status → the deal, and organization →
customer."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import templates.crm
from connector.spec import TemplateSpec

DEAL_WON_TO_INVOICE = templates.crm.deal_won_to_invoice("pipedrive", "Pipedrive")
INVOICE_STATUS_TO_CRM = templates.crm.invoice_status_to_crm("pipedrive", "Pipedrive")
# The same flow, started by reading Pipedrive every few minutes instead of by its webhook.
DEAL_WON_TO_INVOICE_POLLED = replace(
    templates.crm.deal_won_to_invoice(
        "pipedrive", "Pipedrive", trigger="pipedrive.deal_won_polled", suffix="_polled"
    ),
    title="Pipedrive: won deal → draft invoice (read every few minutes, no webhook)",
    title_es="Pipedrive: oportunidad ganada → factura en borrador (leída cada pocos minutos, "
    "sin webhook)",
)


def _organization_to_customer(connection: str) -> dict[str, Any]:
    return {
        "name": "Pipedrive: organización → cliente",
        "description": "Cuando se crea o cambia una organización en Pipedrive, crea en Puente "
        "el cliente con su NIF/CIF, su nombre y su dirección (uno por NIF/CIF).",
        "trigger": {"key": "pipedrive.organization_changed", "connection": connection},
        "steps": [
            {
                "id": "organization",
                "name": "Leer la organización",
                "action": "pipedrive.get_organization",
                "connection": connection,
                "input": {"company_id": {"$expr": "trigger.company_id"}},
            },
            {
                "id": "has_tax_id",
                "filter": {"$expr": "steps.organization.has_tax_id"},
                "explain": "la organización no tiene NIF/CIF todavía",
            },
            {
                "id": "customer",
                "name": "Buscar o crear el cliente por su NIF/CIF",
                "action": "invoicing.find_or_create_customer",
                "input": {"$expr": "steps.organization.customer"},
            },
        ],
    }


ORGANIZATION_TO_CUSTOMER = TemplateSpec(
    key="pipedrive.organization_to_customer",
    title="Pipedrive: organization → customer",
    title_es="Pipedrive: organización → cliente",
    description="An organization added or changed in Pipedrive becomes a customer in Puente, "
    "found or created by its NIF/CIF (one per NIF/CIF); one without a NIF/CIF waits until it "
    "has it.",
    description_es="Una organización creada o modificada en Pipedrive pasa a ser un cliente en "
    "Puente, buscado o creado por su NIF/CIF (uno por NIF/CIF); una organización sin NIF/CIF "
    "espera a tenerlo.",
    connection_type="pipedrive",
    document=_organization_to_customer,
)
