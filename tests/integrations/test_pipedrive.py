"""Pipedrive end to end: a won deal (webhooks v2, and v1) becomes one draft invoice with the
deal's products and organization; its number, link and "Cobrado" go back on the deal; the
webhook is registered at Pipedrive and removed with its flow. Against a local Pipedrive
(tests/fakes/pipedrive.py), through the real app, Redis and both databases.

Pipedrive does not sign its webhooks and sends no signed timestamp: a delivery is authentic
when it carries the HTTP Basic user and password Puente registered the webhook with.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from flask.testing import FlaskClient
from rq.registry import ScheduledJobRegistry
from sqlalchemy import func, select, update

from connector import events, lifecycle, runner
from connector.models import Event, Flow, Run, RunStatus
from connector.runtime import Runtime
from invoicing.models import Invoice
from tests.conftest import drain
from tests.factories import make_api_key, make_issuer
from tests.fakes.pipedrive import COMPANY_ID, FakePipedrive, fake_pipedrive
from triggers.pipedrive import parse
from web import create_app

USER, PASSWORD = "puente", "correct-horse-battery-staple"
DEAL, ORG = 482, 31
NIF = "nif"  # the organization field's name in Pipedrive (settings.tax_id_field's default)


@dataclass
class Env:
    rt: Runtime
    client: FlaskClient
    headers: dict[str, str]
    crm: FakePipedrive
    hook: str  # the path of the connection's webhook address

    def invoices(self) -> list[Invoice]:
        with self.rt.sessions() as s:
            found = s.scalars(select(Invoice).order_by(Invoice.id)).all()
            s.expunge_all()
            return list(found)

    def runs(self) -> list[Run]:
        with self.rt.sessions() as s:
            found = s.scalars(select(Run).order_by(Run.id)).all()
            s.expunge_all()
            return list(found)


def seed(crm: FakePipedrive, deal_id: int = DEAL, **deal: Any) -> None:
    """An organization with its NIF and address, two products, a deal with three lines."""
    if not crm.deal_fields:
        for name in ("puente_invoice_number", "puente_invoice_url", "puente_payment_status"):
            crm.add_field("deal", name)
        crm.add_field("organization", "NIF")
    nif = next(f["key"] for f in crm.organization_fields if f["name"] == "NIF")
    crm.organizations[ORG] = {
        "id": ORG,
        "name": "Acme Soluciones SL",
        nif: "B12345674",
        "address": "Calle Mayor 1, 28013 Madrid, España",
        "address_route": "Calle Mayor",
        "address_street_number": "1",
        "address_postal_code": "28013",
        "address_locality": "Madrid",
        "address_admin_area_level_1": "Comunidad de Madrid",
        "address_country": "Spain",
    }
    crm.products[201] = {"id": 201, "name": "Consultoría (horas)", "code": "CONS-H"}
    crm.products[202] = {"id": 202, "name": "Licencia ERP anual", "code": "LIC-ERP"}
    crm.deals[deal_id] = {
        "id": deal_id,
        "title": "Implantación ERP Acme",
        "value": 2480.5,
        "currency": "EUR",
        "status": "won",
        "stage_id": 5,
        "pipeline_id": 1,
        "won_time": "2026-11-27 10:15:00",
        "close_time": "2026-11-27 10:15:00",
        "update_time": "2026-11-27 10:15:00",
        "org_id": {"value": ORG, "name": "Acme Soluciones SL"},
        "user_id": {"id": 11, "value": 11, "name": "Ana Ventas", "email": "ana@example.com"},
        "person_id": {
            "value": 9,
            "name": "Marta",
            "email": [{"value": "facturas@acme.example", "primary": True}],
        },
        **deal,
    }
    crm.deal_products[deal_id] = [
        {
            "id": 1,
            "deal_id": deal_id,
            "product_id": 201,
            "name": "Consultoría (horas)",
            "item_price": 95,
            "quantity": 20,
            "discount": 10,
            "discount_type": "percentage",
            "tax": 0,
            "enabled_flag": True,
        },
        {
            "id": 2,
            "deal_id": deal_id,
            "product_id": 202,
            "name": "Licencia ERP anual",
            "item_price": 800,
            "quantity": 1,
            "discount": 29.5,  # an amount off the line: 3.6875 %
            "discount_type": "amount",
            "tax": 21,
            "tax_method": "exclusive",
            "enabled_flag": True,
        },
        {
            "id": 3,
            "deal_id": deal_id,
            "product_id": 202,
            "name": "Licencia ERP (desactivada)",
            "item_price": 999,
            "quantity": 1,
            "enabled_flag": False,
        },
    ]
    crm.page_limit = 2  # three lines come in two pages


def v2_change(
    deal_id: int = DEAL,
    previous: dict[str, Any] | None = None,
    event_id: str | None = None,
    **data: Any,
) -> dict[str, Any]:
    """A webhooks v2 "change" of a deal, shaped as Pipedrive sends it (string ids in meta)."""
    return {
        "meta": {
            "action": "change",
            "entity": "deal",
            "company_id": str(COMPANY_ID),
            "correlation_id": str(uuid.uuid4()),
            "entity_id": str(deal_id),
            "id": event_id or str(uuid.uuid4()),
            "is_bulk_edit": False,
            "timestamp": "2026-11-27T10:15:00.000Z",
            "type": "general",
            "user_id": "11",
            "version": "2.0",
            "webhook_id": "77",
            "webhook_owner_id": "11",
            "attempt": 1,
            "host": "acme.pipedrive.com",
            "change_source": "app",
            "permitted_user_ids": ["11"],
        },
        "data": {
            "id": deal_id,
            "title": "Implantación ERP Acme",
            "status": "won",
            "stage_id": 5,
            "pipeline_id": 1,
            "org_id": ORG,
            "owner_id": 11,
            "currency": "EUR",
            "value": 2480.5,
            "won_time": "2026-11-27T10:15:00Z",
            "custom_fields": {},
            **data,
        },
        "previous": {"status": "open"} if previous is None else previous,
    }


def v1_updated(deal_id: int = DEAL, micro: int = 1764238500000001) -> dict[str, Any]:
    """A webhooks v1 "updated.deal": the whole deal now and before."""
    current = {"id": deal_id, "status": "won", "stage_id": 5, "title": "Implantación ERP Acme"}
    return {
        "v": 1,
        "matches_filters": {"current": [], "previous": []},
        "meta": {
            "v": 1,
            "action": "updated",
            "object": "deal",
            "id": deal_id,
            "company_id": COMPANY_ID,
            "user_id": 11,
            "host": "acme.pipedrive.com",
            "timestamp": micro // 1_000_000,
            "timestamp_micro": micro,
            "permitted_user_ids": [11],
            "trans_pending": False,
            "is_bulk_update": False,
            "webhook_id": "77",
        },
        "retry": 0,
        "current": current,
        "previous": {**current, "status": "open"},
        "event": "updated.deal",
    }


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {
        "Authorization": f"Basic {token}",
        "Content-Type": "application/json",
        "User-Agent": "Pipedrive-Webhook",
    }


def deliver(env: Env, payload: Any, user: str = USER, password: str = PASSWORD) -> Any:
    return env.client.post(
        env.hook, data=json.dumps(payload).encode(), headers=basic(user, password)
    )


@pytest.fixture
def crm() -> Iterator[FakePipedrive]:
    with fake_pipedrive() as api:
        seed(api)
        yield api


def connect(env_client: FlaskClient, headers: dict[str, str], crm: FakePipedrive, **settings: Any):
    return env_client.put(
        "/api/v1/connections/pd",
        headers=headers,
        json={
            "type": "pipedrive",
            "base_url": crm.url,
            "secret": {
                "api_token": crm.token,
                "webhook_user": USER,
                "webhook_password": PASSWORD,
            },
            "settings": settings,
        },
    )


@pytest.fixture
def env(local_rt: Runtime, crm: FakePipedrive) -> Env:
    client = create_app(runtime=local_rt).test_client()
    headers = {"Authorization": f"Bearer {make_api_key(local_rt)}"}
    answer = connect(client, headers, crm)
    assert answer.status_code == 200, answer.json
    assert crm.token not in answer.get_data(as_text=True)
    assert PASSWORD not in answer.get_data(as_text=True)
    url = answer.json["webhook_url"]
    for key in ("pipedrive.deal_won_to_invoice", "pipedrive.invoice_status_to_crm"):
        installed = client.post(
            f"/api/v1/templates/{key}/install", headers=headers, json={"connection": "pd"}
        )
        assert installed.status_code == 201, installed.json
        assert installed.json["flow_id"]
    return Env(local_rt, client, headers, crm, url.removeprefix(local_rt.settings.public_url))


def deal_run(env: Env) -> Run:
    [run] = [r for r in env.runs() if r.key("deal_ref") is not None]
    return run


def test_a_won_deal_becomes_a_draft_invoice_then_the_deal_shows_its_number_and_cobrado(env):
    answer = deliver(env, v2_change())

    assert answer.status_code == 202, answer.json
    drain(env.rt)

    run = deal_run(env)
    assert run.status == RunStatus.SUCCEEDED, run.error
    [invoice] = env.invoices()
    with env.rt.sessions() as s:
        invoice = s.get_one(Invoice, invoice.id)
        assert (invoice.status, invoice.source, invoice.external_ref) == (
            "draft",
            "pipedrive@connection:pd",
            str(DEAL),
        )
        customer = invoice.customer
        assert (customer.tax_id, customer.name) == ("B12345674", "Acme Soluciones SL")
        assert (customer.street, customer.postal_code, customer.city, customer.country) == (
            "Calle Mayor 1",
            "28013",
            "Madrid",
            "ES",
        )
        lines = [
            (li.sku, li.quantity, li.unit_price, li.discount_percent, li.tax_rate, li.base)
            for li in invoice.lines
        ]
        assert lines == [
            ("CONS-H", Decimal(20), Decimal(95), Decimal(10), Decimal(21), Decimal("1710.00")),
            (
                "LIC-ERP",
                Decimal(1),
                Decimal(800),
                Decimal("3.6875"),
                Decimal(21),
                Decimal("770.50"),
            ),
        ]
        assert (invoice.base_total, invoice.total) == (Decimal("2480.50"), Decimal("3001.41"))
        invoice_id = invoice.id
    link = env.crm.deal_field(DEAL, "puente_invoice_url")
    assert link == f"{env.rt.settings.public_url}/ui/invoices/{invoice_id}"
    assert env.crm.calls_to("GET", f"/v1/deals/{DEAL}/products")[1].query["start"] == "2"

    make_issuer(env.rt)
    issued = env.client.post(f"/api/v1/invoices/{invoice_id}/issue", headers=env.headers)
    assert issued.status_code == 200, issued.json
    events.dispatch(env.rt)
    drain(env.rt)
    assert env.crm.deal_field(DEAL, "puente_invoice_number") == issued.json["number"]
    assert env.crm.deal_field(DEAL, "puente_payment_status") == "Pendiente"

    paid = env.client.post(
        f"/api/v1/invoices/{invoice_id}/payments",
        headers=env.headers,
        json={"amount": issued.json["totals"]["total"], "method": "transfer"},
    )
    assert paid.status_code == 201, paid.json
    events.dispatch(env.rt)
    drain(env.rt)

    assert env.crm.deal_field(DEAL, "puente_invoice_number") == issued.json["number"]
    assert env.crm.deal_field(DEAL, "puente_invoice_url") == link
    assert env.crm.deal_field(DEAL, "puente_payment_status") == "Cobrado"
    assert all(r.status == RunStatus.SUCCEEDED for r in env.runs()), [r.error for r in env.runs()]
    assert env.crm.notes == []


def test_a_won_deal_from_webhooks_v1_is_invoiced_too(env):
    assert deliver(env, v1_updated()).status_code == 202

    drain(env.rt)

    assert deal_run(env).status == RunStatus.SUCCEEDED
    assert len(env.invoices()) == 1


def test_the_same_event_again_and_a_second_won_event_still_make_one_invoice(env):
    event = v2_change(event_id="5c7a0c2e-0b8e-4a43-9a43-2b7f1c1e0001")
    first = deliver(env, event)
    again = deliver(env, {**event, "meta": {**event["meta"], "attempt": 2}})  # Pipedrive's retry

    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json["duplicate"] is True
    drain(env.rt)
    assert deliver(env, v2_change()).status_code == 202  # won again (reopened and won)
    drain(env.rt)

    assert len(env.invoices()) == 1
    deal_runs = [r for r in env.runs() if r.key("deal_ref") is not None]
    assert [r.status for r in deal_runs] == [RunStatus.SUCCEEDED, RunStatus.SUCCEEDED]


@pytest.mark.parametrize(
    "headers",
    [
        basic(USER, "not-the-password"),
        basic("someone-else", PASSWORD),
        {"Content-Type": "application/json"},
        {"Authorization": "Bearer " + PASSWORD, "Content-Type": "application/json"},
        {"Authorization": "Basic %%%not-base64", "Content-Type": "application/json"},
    ],
    ids=["wrong-password", "wrong-user", "no-credentials", "not-basic", "garbled"],
)
def test_a_delivery_without_the_webhook_credentials_is_refused_and_nothing_is_stored(env, headers):
    answer = env.client.post(env.hook, data=json.dumps(v2_change()).encode(), headers=headers)

    assert answer.status_code == 401
    assert "webhook" in answer.json["message"]
    with env.rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 0
    assert env.runs() == [] and env.rt.queue.count == 0


def test_a_deal_moved_to_a_stage_that_is_not_won_stops_the_run_and_invoices_nothing(env):
    env.crm.deals[DEAL].update(status="open", stage_id=3, won_time=None)

    answer = deliver(env, v2_change(status="open", stage_id=3, previous={"stage_id": 2}))

    assert answer.status_code == 202
    drain(env.rt)
    run = deal_run(env)
    assert run.status == RunStatus.STOPPED
    assert "ganada" in run.error["message"]
    assert env.invoices() == []
    assert env.crm.calls_to("PUT", "/v1/deals") == []


def test_the_configured_won_stages_decide_instead_of_the_status(env):
    env.crm.deals[DEAL].update(status="open", stage_id=7, won_time=None)
    changed = connect(env.client, env.headers, env.crm, won_stages=["7"])
    assert changed.status_code == 200, changed.json

    deliver(env, v2_change(status="open", stage_id=7, previous={"stage_id": 6}))
    drain(env.rt)

    assert deal_run(env).status == RunStatus.SUCCEEDED
    assert len(env.invoices()) == 1


def test_a_won_deal_whose_organization_has_no_nif_gets_a_spanish_note_then_is_invoiced(env):
    nif = next(f["key"] for f in env.crm.organization_fields if f["name"] == "NIF")
    env.crm.organizations[ORG][nif] = None

    deliver(env, v2_change())
    drain(env.rt)

    run = deal_run(env)
    assert run.status == RunStatus.FAILED
    [note] = env.crm.notes
    assert note["deal_id"] == DEAL
    assert note["content"].startswith("Falta el NIF/CIF del cliente en la empresa Acme")
    assert run.error["message"] == note["content"]
    assert env.invoices() == []

    env.crm.organizations[ORG][nif] = "B12345674"
    deliver(env, v2_change())  # marked won again: a new event
    drain(env.rt)

    [invoice] = env.invoices()
    assert invoice.external_ref == str(DEAL)
    assert len(env.crm.notes) == 1


def test_pipedrive_answering_429_on_the_deal_read_is_retried_and_then_succeeds(env):
    env.crm.fail("GET", f"/v1/deals/{DEAL}", 429, retry_after=1)

    deliver(env, v2_change())
    drain(env.rt)

    run = deal_run(env)
    with env.rt.sessions() as s:
        assert s.get_one(Run, run.id).attempts == 1
    assert ScheduledJobRegistry(queue=env.rt.queue).get_job_ids() == [f"run-{run.id}-a1"]
    assert env.invoices() == []

    outcome = runner.execute_run(env.rt.sessions, env.rt.registry, run.id, tools=env.rt.tools)

    assert outcome.status == "succeeded"
    assert len(env.invoices()) == 1
    assert len(env.crm.calls_to("GET", f"/v1/deals/{DEAL}")) >= 2


def test_test_connection_says_whether_pipedrive_takes_the_token_and_keeps_the_company(env):
    ok = env.client.post("/api/v1/connections/pd/test", headers=env.headers)
    assert ok.json["ok"] is True and "Ana Ventas" in ok.json["message"]
    shown = env.client.get("/api/v1/connections/pd", headers=env.headers).json
    assert shown["account_id"] == str(COMPANY_ID)

    env.crm.token = "revoked"
    refused = env.client.post("/api/v1/connections/pd/test", headers=env.headers)

    assert refused.json["ok"] is False
    assert "token" in refused.json["message"] and "token" in refused.json["message_es"]


def test_the_webhook_is_registered_at_pipedrive_while_the_flow_is_enabled(env):
    url = f"{env.rt.settings.public_url}{env.hook}"

    assert len(lifecycle.sync(env.rt)["subscribed"]) == 1
    assert lifecycle.sync(env.rt)["subscribed"] == []  # once

    [hook] = env.crm.webhooks.values()
    assert (hook["subscription_url"], hook["event_action"], hook["event_object"]) == (
        url,
        "change",
        "deal",
    )
    assert (hook["http_auth_user"], hook["http_auth_password"]) == (USER, PASSWORD)
    assert hook["version"] == "2.0"

    with env.rt.sessions.begin() as s:
        s.execute(update(Flow).values(enabled=False))
    assert len(lifecycle.sync(env.rt)["unsubscribed"]) == 1

    assert env.crm.webhooks == {}
    assert env.crm.calls_to("DELETE", "/v1/webhooks") != []


@pytest.mark.parametrize(
    "payload",
    [
        v2_change(previous={"custom_fields": {"abc": None}}),  # our own write-back
        v2_change(previous={"status": "open"}, status="lost"),
        {**v2_change(), "meta": {**v2_change()["meta"], "action": "create"}, "previous": None},
        {**v2_change(), "meta": {**v2_change()["meta"], "entity": "person"}},
        {**v1_updated(), "event": "updated.person"},
        {**v1_updated(), "previous": v1_updated()["current"]},
    ],
    ids=["fields-written", "lost", "created", "a-person", "v1-person", "v1-nothing-moved"],
)
def test_changes_that_are_not_a_stage_move_or_a_win_make_no_item(payload):
    assert parse(payload, "d-1", {}) == []


def test_a_stage_move_is_an_item_keyed_by_pipedrive_s_event_id():
    [item] = parse(v2_change(event_id="e-1", status="open", previous={"stage_id": 2}), "d", {})

    assert item.dedup_key == "pipedrive:v2:e-1"
    assert item.data == {
        "deal_id": str(DEAL),
        "event_id": "v2:e-1",
        "occurred_at": "2026-11-27T10:15:00+00:00",
        "stage": "5",
        "account_id": str(COMPANY_ID),
    }
