"""Templates on the generic signed webhooks: any system that signs with Standard Webhooks."""

from __future__ import annotations

from typing import Any

from connector.spec import TemplateSpec


def hours_flow(_connection: str) -> dict[str, Any]:
    """Ticket resolved → the customer by NIF → a draft invoice with a line per time entry
    (its hours at its rate)."""
    return {
        "name": "Incidencia resuelta → factura de las horas",
        "description": "Cuando se resuelve una incidencia, factura en borrador las horas "
        "imputadas a su precio por hora.",
        "trigger": {"key": "webhook.hours_logged"},
        "steps": [
            {
                "id": "invoice",
                "name": "Crear factura en borrador de las horas",
                "action": "invoicing.create_draft_invoice",
                "input": {
                    "customer": {"$expr": "trigger.customer"},
                    "currency": {"$expr": "trigger.currency"},
                    "notes": {
                        "$expr": "concat('Incidencia ', trigger.ticket_id, ': ', "
                        "coalesce(trigger.title, ''))"
                    },
                    "lines": {
                        "$expr": "trigger.entries[].{description: concat(coalesce(date, ''), "
                        "' ', coalesce(description, 'Horas de servicio')), quantity: hours, "
                        "unit_price: rate, tax_rate: coalesce(tax_rate, `21`)}"
                    },
                },
            }
        ],
    }


HOURS_TO_INVOICE = TemplateSpec(
    key="webhook.hours_to_invoice",
    title="Resolved ticket → invoice of its hours",
    title_es="Incidencia resuelta → factura de sus horas",
    description="A ticket resolved in a helpdesk or time tracker becomes a draft invoice with "
    "a line per time entry, at its rate; installing it gives the signed address to send to.",
    description_es="Una incidencia resuelta en el programa de soporte o de control horario se "
    "convierte en una factura en borrador con una línea por parte de horas, a su precio; al "
    "instalarla se obtiene la dirección firmada a la que enviarlas.",
    connection_type=None,
    document=hours_flow,
)
