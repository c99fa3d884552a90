"""The demo set-up `make run` seeds: a signed webhook and the flow "deal won → draft invoice"."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector import admin
from connector.crypto import SecretBox
from connector.models import Flow, Subscription
from connector.registry import Registry
from connector.schemas import example
from invoicing import crm
from invoicing.models import Opportunity

DEMO_HOOK_NAME = "Demo: deal won webhook"

DEMO_FLOW: dict[str, Any] = {
    "name": "Oportunidad ganada → factura en borrador",
    "description": "Finds or creates the customer by NIF; drafts an invoice with the deal's lines.",
    "trigger": {"key": "webhook.deal_won"},
    "steps": [
        {
            "id": "deal",
            "name": "Registrar la oportunidad ganada",
            "action": "invoicing.record_won_deal",
            "input": {"$expr": "trigger"},
        },
        {
            "id": "invoice",
            "name": "Crear factura en borrador",
            "action": "invoicing.create_draft_invoice",
            "input": {
                "customer": {"$expr": "trigger.customer"},
                "lines": {"$expr": "trigger.lines"},
                "currency": {"$expr": "trigger.currency"},
                "external_ref": {"$expr": "trigger.deal_id"},
                "source": {"$expr": "trigger.source"},
                "notes": {"$expr": "trigger.title"},
            },
        },
    ],
}


PIPELINE_FLOW: dict[str, Any] = {
    **DEMO_FLOW,
    "name": "CRM de Puente: oportunidad ganada → factura en borrador",
    "description": "An opportunity of the built-in pipeline marked won becomes a draft invoice.",
    "trigger": {"key": "crm.deal_won"},
}

# A small pipeline, so the whole loop can be tried with no CRM account.
DEMO_COMPANIES = (
    {
        "name": "Acme Soluciones SL",
        "tax_id": "B12345674",
        "email": "facturas@acme.example",
        "street": "Calle Mayor 1",
        "postal_code": "28013",
        "city": "Madrid",
        "province": "Madrid",
    },
    {
        "name": "Talleres Ebro SA",
        "tax_id": "A58818501",
        "street": "Paseo de la Independencia 8",
        "postal_code": "50004",
        "city": "Zaragoza",
        "province": "Zaragoza",
    },
)
DEMO_OPPORTUNITIES = (
    (0, "Implantación ERP", "negociacion", (("CONS-H", "Consultoría (horas)", 20, "95", 10),)),
    (0, "Soporte anual", "propuesta", ((None, "Soporte y mantenimiento anual", 1, "1200", 0),)),
    (1, "Formación de usuarios", "nueva", ((None, "Formación presencial (días)", 3, "450", 5),)),
)


def ensure_pipeline(s: Session, registry: Registry) -> None:
    """Seed the built-in CRM's pipeline and its deal-won flow once."""
    if s.scalar(select(Flow.id).where(Flow.trigger_key == "crm.deal_won")) is None:
        admin.save_flow(s, registry, PIPELINE_FLOW, enabled=True)
    if s.scalar(select(Opportunity.id).limit(1)) is not None:
        return
    companies = [crm.add_company(s, **fields) for fields in DEMO_COMPANIES]
    for company, title, stage, lines in DEMO_OPPORTUNITIES:
        crm.add_opportunity(
            s,
            title=title,
            company_id=companies[company].id,
            stage=stage,
            owner_name="Lucía Pérez",
            lines=[
                crm.LineInput(text, Decimal(qty), Decimal(price), sku, Decimal(discount))
                for sku, text, qty, price, discount in lines
            ],
        )


def demo_hook(s: Session) -> Subscription | None:
    """The demo webhook, once it has been created."""
    return s.scalar(select(Subscription).where(Subscription.name == DEMO_HOOK_NAME))


def ensure_demo(s: Session, box: SecretBox, registry: Registry) -> tuple[Subscription, str]:
    """Create the demo webhook and flow, and the demo pipeline, once; return the webhook and
    its secret."""
    ensure_pipeline(s, registry)
    sub = demo_hook(s)
    if sub is None:
        created = admin.create_subscription(s, box, DEMO_HOOK_NAME, "webhook.deal_won")
        sub = created.subscription
    if s.scalar(select(Flow.id).where(Flow.subscription_id == sub.id)) is None:
        admin.save_flow(s, registry, DEMO_FLOW, subscription_id=sub.id, enabled=True)
    return sub, box.decrypt(sub.secret_encrypted)


def sample_deal(deal_id: str | None = None) -> dict[str, Any]:
    """The example deal from the trigger's schema, with a fresh deal id unless one is given."""
    deal = example("triggers/deal_won.json")
    deal["deal_id"] = deal_id or f"D-{int(time.time() * 1000)}"
    return deal
