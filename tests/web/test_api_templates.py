"""Ready-made flows: listed, and installed for a connection of their type, enabled."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import actions
import templates
import triggers
from connector import runtime
from connector.http_client import save_connection
from connector.models import Flow
from connector.registry import Registry
from connector.runtime import build_runtime
from connector.spec import TemplateSpec
from tests.factories import make_api_key
from web import create_app
from web.demo import DEMO_FLOW


def echo_flow(connection: str) -> dict[str, Any]:
    return {
        **DEMO_FLOW,
        "name": f"Plantilla para {connection}",
        "steps": [
            *DEMO_FLOW["steps"],
            {
                "id": "notify",
                "action": "http.request",
                "connection": connection,
                "input": {"method": "POST", "url": "/deals", "body": {"ok": True}},
            },
        ],
    }


EXAMPLE = TemplateSpec(
    key="http.example",
    title="Example",
    title_es="Ejemplo",
    description="A won deal to a draft, then a call to the connection's API.",
    description_es="Una oportunidad ganada a borrador y después una llamada a la API.",
    connection_type="http",
    document=echo_flow,
)


@pytest.fixture
def api(settings, rt) -> Iterator[tuple[Any, dict[str, str]]]:
    registry = Registry.build(
        triggers.ALL, actions.ALL, actions.SERVICES, (*templates.ALL, EXAMPLE)
    )
    built = build_runtime(settings, registry)
    runtime.install(built)
    with built.sessions.begin() as s:
        save_connection(s, built.secrets, name="erp", base_url="https://erp.example.com")
    yield built, {"Authorization": f"Bearer {make_api_key(built)}"}
    runtime.install(rt)
    built.close()


def test_templates_are_listed_with_their_titles_in_both_languages(api):
    built, headers = api
    client = create_app(runtime=built).test_client()

    items = client.get("/api/v1/templates", headers=headers).json["items"]

    [example] = [t for t in items if t["key"] == "http.example"]
    assert example["title_es"] == "Ejemplo" and example["connection_type"] == "http"


def test_installing_a_template_creates_its_flow_enabled_for_the_connection(api):
    built, headers = api
    client = create_app(runtime=built).test_client()

    answer = client.post(
        "/api/v1/templates/http.example/install", headers=headers, json={"connection": "erp"}
    )

    assert answer.status_code == 201
    with built.sessions() as s:
        flow = s.get_one(Flow, answer.json["flow_id"])
        assert flow.enabled and flow.name == "Plantilla para erp"
        assert flow.current_version.document["steps"][-1]["connection"] == "erp"


@pytest.mark.parametrize(
    ("key", "body", "status", "field"),
    [
        ("http.nothing", {"connection": "erp"}, 404, None),
        ("http.example", {}, 422, "connection"),
        ("http.example", {"connection": "missing"}, 422, "connection"),
    ],
)
def test_a_template_is_not_installed_for_a_wrong_request(api, key, body, status, field):
    built, headers = api
    client = create_app(runtime=built).test_client()

    answer = client.post(f"/api/v1/templates/{key}/install", headers=headers, json=body)

    assert answer.status_code == status
    assert answer.json.get("field") == field
    with built.sessions() as s:
        assert s.query(Flow).count() == 0


def test_a_template_for_another_type_of_connection_is_refused_saying_which(api):
    built, headers = api
    client = create_app(runtime=built).test_client()
    other = TemplateSpec(**{**EXAMPLE.__dict__, "key": "hubspot.x", "connection_type": "hubspot"})
    built.registry.templates[other.key] = other

    answer = client.post(
        "/api/v1/templates/hubspot.x/install", headers=headers, json={"connection": "erp"}
    )

    assert answer.status_code == 422 and "needs a hubspot" in answer.json["message"]


def test_the_hours_template_gets_its_own_signed_address_and_invoices_each_time_entry(rt, client):
    import json

    from invoicing.models import Invoice
    from tests.conftest import drain
    from tests.factories import signed

    headers = {"Authorization": f"Bearer {make_api_key(rt)}"}
    installed = client.post("/api/v1/templates/webhook.hours_to_invoice/install", headers=headers)
    assert installed.status_code == 201
    assert installed.json["webhook_secret"].startswith("whsec_")
    path = installed.json["webhook_url"].removeprefix(rt.settings.public_url)
    ticket = {
        "ticket_id": "T-311",
        "title": "Migración del correo",
        "resolved_at": "2026-12-03T17:40:00+01:00",
        "currency": "EUR",
        "customer": {"name": "Acme Soluciones SL", "tax_id": "B12345674"},
        "entries": [
            {"date": "2026-12-02", "description": "Análisis", "hours": "2.5", "rate": "60"},
            {"date": "2026-12-03", "hours": 4, "rate": "60", "tax_rate": 21},
        ],
    }
    body = json.dumps(ticket).encode()

    for msg_id in ("msg_t1", "msg_t2"):  # a second delivery of the ticket: one invoice
        answer = client.post(
            path, data=body, headers=signed(installed.json["webhook_secret"], body, msg_id)
        )
        assert answer.status_code == 202
    drain(rt)

    with rt.sessions() as s:
        [invoice] = s.query(Invoice).all()
        assert [(str(line.quantity), str(line.unit_price)) for line in invoice.lines] == [
            ("2.50000000", "60.00000000"),
            ("4.00000000", "60.00000000"),
        ]
        assert invoice.lines[0].description == "2026-12-02 Análisis"
        assert str(invoice.total) == "471.90"  # 390 + 21 % IVA
        assert invoice.external_ref == "ticket:T-311"
