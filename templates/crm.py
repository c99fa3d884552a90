"""The two ready-made flows every CRM gets, built from its action family's keys
(`<crm>.get_deal`, `<crm>.update_deal`, `<crm>.add_note`) and trigger (`<crm>.deal_won`)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from connector.intake import connection_scope
from connector.spec import Entity, TemplateSpec


def deal_won_to_invoice(
    crm: str, name: str, trigger: str | None = None, suffix: str = ""
) -> TemplateSpec:
    """Won deal → read it with its lines and company → a note for its owner when it cannot
    be invoiced (then the run fails saying why) → the won-deal record → the draft invoice →
    its link on the deal. `trigger` (default `<crm>.deal_won`) starts it from another
    trigger of the same item shape (a poll), under the key `<crm>.deal_won_to_invoice<suffix>`."""

    def document(connection: str) -> dict[str, Any]:
        deal = "steps.deal"
        return {
            "name": f"{name}: oportunidad ganada → factura en borrador",
            "description": f"Cuando una oportunidad de {name} pasa a ganada, crea el cliente "
            "por su NIF y la factura en borrador con sus líneas, y deja el enlace en la "
            "oportunidad.",
            "trigger": {"key": trigger or f"{crm}.deal_won", "connection": connection},
            "steps": [
                {
                    "id": "deal",
                    "name": "Leer la oportunidad, sus líneas y su empresa",
                    "action": f"{crm}.get_deal",
                    "connection": connection,
                    "input": {"deal_id": {"$expr": "trigger.deal_id"}},
                },
                {
                    "id": "won",
                    "filter": {"$expr": f"{deal}.is_won"},
                    "explain": "la etapa de la oportunidad no cuenta como ganada",
                },
                {
                    "id": "warn",
                    "name": "Avisar al comercial si falta algo para facturar",
                    "action": f"{crm}.add_note",
                    "connection": connection,
                    "input": {
                        "deal_id": {"$expr": "trigger.deal_id"},
                        "text": {"$expr": f"{deal}.problem"},
                        "fail": True,
                    },
                },
                {
                    "id": "record",
                    "name": "Registrar la oportunidad ganada",
                    "action": "invoicing.record_won_deal",
                    "input": {
                        "deal_id": {"$expr": f"{deal}.deal_id"},
                        "source": {"$expr": f"{deal}.source"},
                        "title": {"$expr": f"{deal}.title"},
                        "won_at": {"$expr": f"{deal}.won_at"},
                        "currency": {"$expr": f"{deal}.currency"},
                        "customer": {"$expr": f"{deal}.customer"},
                        "lines": {"$expr": f"{deal}.lines"},
                    },
                },
                {
                    "id": "invoice",
                    "name": "Crear factura en borrador",
                    "action": "invoicing.create_draft_invoice",
                    "input": {
                        "customer": {"$expr": f"{deal}.customer"},
                        "lines": {"$expr": f"{deal}.lines"},
                        "currency": {"$expr": f"{deal}.currency"},
                        "notes": {"$expr": f"{deal}.title"},
                    },
                },
                {
                    "id": "link",
                    "name": "Dejar el enlace a la factura en la oportunidad",
                    "action": f"{crm}.update_deal",
                    "connection": connection,
                    "input": {
                        "deal_id": {"$expr": "trigger.deal_id"},
                        "invoice_id": {"$expr": "steps.invoice.invoice_id"},
                    },
                },
            ],
        }

    return TemplateSpec(
        key=f"{crm}.deal_won_to_invoice{suffix}",
        title=f"{name}: won deal → draft invoice",
        title_es=f"{name}: oportunidad ganada → factura en borrador",
        description=f"A deal won in {name} becomes a draft invoice with its lines and customer; "
        "the invoice's link is written on the deal.",
        description_es=f"Una oportunidad ganada en {name} se convierte en una factura en "
        "borrador con sus líneas y su cliente; el enlace a la factura queda en la oportunidad.",
        connection_type=crm,
        document=document,
    )


def _from(crm: str, connection: str) -> str:
    """Whether the trigger's invoice came from a deal of this connection: its own deals only
    (another account of the same CRM has deals of the same ids), and the bare CRM name of the
    deals invoiced before events kept the connection they arrived on."""
    mine = Entity(crm, "").arrived_on(connection_scope(connection)).source
    return f"(trigger.source == {_literal(crm)} || trigger.source == {_literal(mine)})"


def _literal(text: str) -> str:
    """A JMESPath literal of any text (JSON inside backticks)."""
    return "`" + json.dumps(text).replace("`", "\\`") + "`"


def invoice_status_to_crm(crm: str, name: str) -> TemplateSpec:
    """Invoice issued → number, link and "Pendiente" on the deal; paid → "Cobrado"."""

    def document(connection: str) -> dict[str, Any]:
        return {
            "name": f"{name}: número y estado de cobro en la oportunidad",
            "description": f"Cuando se emite o se cobra una factura que vino de {name}, "
            "escribe su número, su enlace y Pendiente o Cobrado en la oportunidad.",
            "trigger": {"key": "invoicing.invoice_status"},
            "steps": [
                {
                    "id": "mine",
                    "filter": {"$expr": f"{_from(crm, connection)} && trigger.external_ref"},
                    "explain": f"la factura no viene de una oportunidad de {name}",
                },
                {
                    "id": "status",
                    "name": "Escribir número, enlace y estado de cobro",
                    "action": f"{crm}.update_deal",
                    "connection": connection,
                    "input": {
                        "deal_id": {"$expr": "trigger.external_ref"},
                        "invoice_id": {"$expr": "trigger.invoice_id"},
                        "invoice_number": {"$expr": "trigger.number"},
                        "payment_status": {"$expr": "trigger.payment_status"},
                    },
                },
            ],
        }

    return TemplateSpec(
        key=f"{crm}.invoice_status_to_crm",
        title=f"{name}: invoice number and payment status on the deal",
        title_es=f"{name}: número de factura y estado de cobro en la oportunidad",
        description=f"When an invoice from a {name} deal is issued or paid, the deal shows its "
        "number, link and Pendiente / Cobrado.",
        description_es=f"Cuando se emite o se cobra una factura de una oportunidad de {name}, "
        "la oportunidad muestra su número, su enlace y Pendiente / Cobrado.",
        connection_type=crm,
        document=document,
    )


def deal_won_to_invoice_polled(
    crm: str, name: str, push: tuple[str, str], deal: tuple[str, str] = ("deal", "oportunidad")
) -> TemplateSpec:
    """The deal-won flow started by reading the CRM every few minutes (`<crm>.deal_won_polled`),
    for accounts that cannot send `push` (what the CRM pushes, in English and Spanish)."""
    return replace(
        deal_won_to_invoice(crm, name, trigger=f"{crm}.deal_won_polled", suffix="_polled"),
        title=f"{name}: won {deal[0]} → draft invoice (read every few minutes, no {push[0]})",
        title_es=f"{name}: {deal[1]} ganada → factura en borrador (leída cada pocos minutos, "
        f"sin {push[1]})",
    )


def company_to_customer(crm: str, name: str, kind: tuple[str, str]) -> TemplateSpec:
    """Company (account, organization: `kind` in English and Spanish, a feminine noun in each
    CRM's Spanish) created or changed → read it → stop until it has a NIF/CIF → the customer,
    found or created by it. Uses `<crm>.<kind>_changed` and `<crm>.get_<kind>`."""
    en, es = kind

    def document(connection: str) -> dict[str, Any]:
        return {
            "name": f"{name}: {es} → cliente",
            "description": f"Cuando se crea o cambia una {es} en {name}, crea en Puente el "
            "cliente con su NIF/CIF, su nombre y su dirección (uno por NIF/CIF).",
            "trigger": {"key": f"{crm}.{en}_changed", "connection": connection},
            "steps": [
                {
                    "id": en,
                    "name": f"Leer la {es}",
                    "action": f"{crm}.get_{en}",
                    "connection": connection,
                    "input": {"company_id": {"$expr": "trigger.company_id"}},
                },
                {
                    "id": "has_tax_id",
                    "filter": {"$expr": f"steps.{en}.has_tax_id"},
                    "explain": f"la {es} no tiene NIF/CIF todavía",
                },
                {
                    "id": "customer",
                    "name": "Buscar o crear el cliente por su NIF/CIF",
                    "action": "invoicing.find_or_create_customer",
                    "input": {"$expr": f"steps.{en}.customer"},
                },
            ],
        }

    return TemplateSpec(
        key=f"{crm}.{en}_to_customer",
        title=f"{name}: {en} → customer",
        title_es=f"{name}: {es} → cliente",
        description=f"A{'n' if en[0] in 'aeiou' else ''} {en} created or changed in {name} "
        "becomes a customer in Puente, found or created by its NIF/CIF (one per NIF/CIF); one "
        "without a NIF/CIF waits until it has it.",
        description_es=f"Una {es} creada o modificada en {name} pasa a ser un cliente en "
        f"Puente, buscado o creado por su NIF/CIF (uno por NIF/CIF); una {es} sin NIF/CIF "
        "espera a tenerlo.",
        connection_type=crm,
        document=document,
    )
