"""Salesforce's ready-made flows: won opportunity → draft invoice (from the Outbound Message,
or polled for orgs that cannot send one), the invoice's number and payment status back on the
opportunity, and account → customer."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import templates.crm
from connector.spec import TemplateSpec

DEAL_WON_TO_INVOICE = templates.crm.deal_won_to_invoice("salesforce", "Salesforce")
INVOICE_STATUS_TO_CRM = templates.crm.invoice_status_to_crm("salesforce", "Salesforce")
# The same flow, started by reading Salesforce every few minutes instead of by its message.
DEAL_WON_TO_INVOICE_POLLED = replace(
    templates.crm.deal_won_to_invoice(
        "salesforce", "Salesforce", trigger="salesforce.deal_won_polled", suffix="_polled"
    ),
    title="Salesforce: won opportunity → draft invoice (read every few minutes, no Outbound "
    "Message)",
    title_es="Salesforce: oportunidad ganada → factura en borrador (leída cada pocos minutos, "
    "sin mensaje saliente)",
)


def _account_to_customer(connection: str) -> dict[str, Any]:
    return {
        "name": "Salesforce: cuenta → cliente",
        "description": "Cuando se crea o cambia una cuenta en Salesforce, crea en Puente el "
        "cliente con su NIF/CIF, su nombre y su dirección de facturación (uno por NIF/CIF).",
        "trigger": {"key": "salesforce.account_changed", "connection": connection},
        "steps": [
            {
                "id": "account",
                "name": "Leer la cuenta",
                "action": "salesforce.get_account",
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
    key="salesforce.account_to_customer",
    title="Salesforce: account → customer",
    title_es="Salesforce: cuenta → cliente",
    description="An account created or changed in Salesforce becomes a customer in Puente, "
    "found or created by its NIF/CIF (one per NIF/CIF); an account without one waits until it "
    "has it.",
    description_es="Una cuenta creada o modificada en Salesforce pasa a ser un cliente en "
    "Puente, buscado o creado por su NIF/CIF (uno por NIF/CIF); una cuenta sin NIF/CIF espera "
    "a tenerlo.",
    connection_type="salesforce",
    document=_account_to_customer,
)
