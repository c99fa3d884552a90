"""The demo set-up `make run` seeds: a signed webhook and the flow "deal won → draft invoice"."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector import admin
from connector.crypto import SecretBox
from connector.models import Flow, Subscription
from connector.registry import Registry
from connector.schemas import example

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


def ensure_demo(s: Session, box: SecretBox, registry: Registry) -> tuple[Subscription, str]:
    """Create the demo webhook and flow once; return the webhook and its secret."""
    sub = s.scalar(select(Subscription).where(Subscription.name == DEMO_HOOK_NAME))
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
