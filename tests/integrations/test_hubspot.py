"""HubSpot end to end: a deal moved to a won stage becomes one draft invoice with the deal's line
items and primary company; its number, link and "Cobrado" go back on the deal. Against a local
HubSpot (tests/fakes/hubspot.py), through the real app, Redis and both databases.

Deliveries are signed as HubSpot signs them: v3 (base64 HMAC-SHA256 of method + URI + body +
timestamp with the app's client secret, refused when older than 5 minutes), and v1/v2 (hex
SHA-256) for older apps.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from flask.testing import FlaskClient
from rq.registry import ScheduledJobRegistry
from sqlalchemy import func, select

import actions.crm
from actions.hubspot import API
from connector import events, runner
from connector.models import Event, Run, RunStatus
from connector.runtime import Runtime
from invoicing.models import Deal, Invoice
from tests.conftest import drain
from tests.factories import make_api_key, make_issuer
from tests.fakes.hubspot import PORTAL_ID, FakeHubSpot, fake_hubspot
from triggers.hubspot import parse
from web import create_app

CLIENT_SECRET = "3b8f2a1c-7d4e-4f6a-9b0c-5e1d2f3a4b5c"
DEAL, COMPANY = "19283746501", "301"
FIELDS = ("puente_invoice_number", "puente_invoice_url", "puente_payment_status")


@dataclass
class Env:
    rt: Runtime
    client: FlaskClient
    headers: dict[str, str]
    crm: FakeHubSpot
    url: str  # the connection's webhook address, as HubSpot calls it

    @property
    def hook(self) -> str:
        return self.url.removeprefix(self.rt.settings.public_url)

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

    def deal_runs(self) -> list[Run]:
        return [r for r in self.runs() if r.key("deal_ref") is not None]


def seed(crm: FakeHubSpot) -> None:
    """Two pipelines (each with its own won stage), a company with its NIF and address, a
    product, and a deal won in the default pipeline with three line items."""
    crm.pipelines["default"] = [
        {"id": "appointmentscheduled", "label": "Cita", "closed": False, "probability": "0.2"},
        {"id": "contractsent", "label": "Contrato enviado", "closed": False, "probability": "0.9"},
        {"id": "closedwon", "label": "Cerrado ganado", "closed": True, "probability": "1.0"},
        {"id": "closedlost", "label": "Cerrado perdido", "closed": True, "probability": "0.0"},
    ]
    crm.pipelines["renovaciones"] = [
        {"id": "1095782", "label": "Negociando", "closed": False, "probability": "0.5"},
        {"id": "1095783", "label": "Renovado", "closed": True, "probability": "1.0"},
    ]
    crm.deal_properties |= set(FIELDS)
    crm.companies[COMPANY] = {
        "name": "Acme Soluciones SL",
        "nif": "B12345674",
        "address": "Calle Mayor 1",
        "zip": "28013",
        "city": "Madrid",
        "state": "Madrid",
        "country": "Spain",
        "domain": "acme.example",
    }
    crm.products["501"] = {"name": "Licencia ERP anual", "hs_sku": "LIC-ERP", "price": "800"}
    crm.line_items.update(
        {
            "401": {
                "name": "Consultoría (horas)",
                "quantity": "20",
                "price": "95.00",
                "hs_sku": "CONS-H",
                "hs_discount_percentage": "10",
                "hs_position_on_quote": "0",
            },
            "402": {  # from the product library, without its SKU: the product's is read
                "name": "Licencia ERP anual",
                "quantity": "1",
                "price": "800",
                "discount": "29.5",  # a unit discount: exactly 3.6875 %
                "hs_product_id": "501",
                "hs_position_on_quote": "1",
            },
            "403": {
                "name": "Soporte mensual",
                "quantity": "3",
                "price": "30",
                "discount": "10",  # a third off: no exact percentage, so 20 a unit
                "hs_sku": "SOP-M",
                "hs_position_on_quote": "2",
            },
        }
    )
    crm.deals[DEAL] = {
        "dealname": "Implantación ERP Acme",
        "dealstage": "closedwon",
        "pipeline": "default",
        "amount": "2540.5",
        "closedate": "2026-11-27T09:15:00.000Z",
        "deal_currency_code": "EUR",
        "hubspot_owner_id": "69864216",
        "hs_is_closed_won": "true",
    }
    crm.deal_line_items[DEAL] = ["403", "401", "402"]
    crm.deal_companies[DEAL] = [COMPANY]
    crm.embed_limit = 2  # three line items: HubSpot pages them, read from the v4 API…
    crm.page_limit = 2  # …in two pages


_event_ids = iter(range(1228532628, 1228600000))


def stage_change(
    deal_id: str = DEAL, stage: str = "closedwon", event_id: int | None = None, attempt: int = 0
) -> dict[str, Any]:
    """One event as HubSpot sends it (cf. /work/shared/samples/hubspot_deal_propertychange)."""
    return {
        "objectId": int(deal_id),
        "propertyName": "dealstage",
        "propertyValue": stage,
        "changeSource": "CRM_UI",
        "eventId": event_id if event_id is not None else next(_event_ids),
        "subscriptionId": 92894,
        "portalId": PORTAL_ID,
        "appId": 186886,
        "occurredAt": 1795770900000,
        "subscriptionType": "deal.propertyChange",
        "attemptNumber": attempt,
        "sourceId": "userId:69864216",
    }


def signed_v3(url: str, body: bytes, secret: str = CLIENT_SECRET, stamp: int | None = None):
    stamp = int(time.time() * 1000) if stamp is None else stamp
    source = b"POST" + url.encode() + body + str(stamp).encode()
    signature = base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest())
    return {
        "Content-Type": "application/json",
        "User-Agent": "HubSpot Connect 2.0 (http://dev.hubspot.com/)",
        "X-HubSpot-Signature-v3": signature.decode(),
        "X-HubSpot-Request-Timestamp": str(stamp),
        "X-HubSpot-Signature-Version": "v1",
        "X-HubSpot-Signature": hashlib.sha256(secret.encode() + body).hexdigest(),
    }


def signed_old(url: str, body: bytes, version: str, secret: str = CLIENT_SECRET):
    source = secret.encode() + (b"POST" + url.encode() if version == "v2" else b"") + body
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-Version": version,
        "X-HubSpot-Signature": hashlib.sha256(source).hexdigest(),
    }


def deliver(env: Env, *batch: dict[str, Any], **signing: Any) -> Any:
    body = json.dumps(list(batch or [stage_change()]), separators=(",", ":")).encode()
    return env.client.post(env.hook, data=body, headers=signed_v3(env.url, body, **signing))


@pytest.fixture
def crm() -> Iterator[FakeHubSpot]:
    with fake_hubspot() as api:
        seed(api)
        yield api


def connect(client: FlaskClient, headers: dict[str, str], crm: FakeHubSpot, **settings: Any):
    return client.put(
        "/api/v1/connections/hs",
        headers=headers,
        json={
            "type": "hubspot",
            "base_url": crm.url,
            "secret": {"access_token": crm.token, "client_secret": CLIENT_SECRET},
            "settings": settings,
        },
    )


@pytest.fixture
def env(local_rt: Runtime, crm: FakeHubSpot) -> Env:
    client = create_app(runtime=local_rt).test_client()
    headers = {"Authorization": f"Bearer {make_api_key(local_rt)}"}
    answer = connect(client, headers, crm)
    assert answer.status_code == 200, answer.json
    shown = answer.get_data(as_text=True)
    assert crm.token not in shown and CLIENT_SECRET not in shown
    for key in ("hubspot.deal_won_to_invoice", "hubspot.invoice_status_to_crm"):
        installed = client.post(
            f"/api/v1/templates/{key}/install", headers=headers, json={"connection": "hs"}
        )
        assert installed.status_code == 201, installed.json
        assert installed.json["flow_id"]
    return Env(local_rt, client, headers, crm, answer.json["webhook_url"])


def test_a_won_deal_becomes_a_draft_invoice_then_the_deal_shows_its_number_and_cobrado(env):
    answer = deliver(env)

    assert answer.status_code == 202, answer.json
    drain(env.rt)

    [run] = env.deal_runs()
    assert run.status == RunStatus.SUCCEEDED, run.error
    [invoice] = env.invoices()
    with env.rt.sessions() as s:
        invoice = s.get_one(Invoice, invoice.id)
        assert (invoice.status, invoice.source, invoice.external_ref) == (
            "draft",
            "hubspot@connection:hs",
            DEAL,
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
            (li.sku, li.description, li.quantity, li.unit_price, li.discount_percent, li.base)
            for li in invoice.lines
        ]
        assert lines == [
            ("CONS-H", "Consultoría (horas)", 20, 95, 10, Decimal("1710.00")),
            ("LIC-ERP", "Licencia ERP anual", 1, 800, Decimal("3.6875"), Decimal("770.50")),
            ("SOP-M", "Soporte mensual", 3, 20, 0, Decimal("60.00")),
        ]
        assert [li.tax_rate for li in invoice.lines] == [21, 21, 21]
        assert invoice.base_total == Decimal("2540.50")
        invoice_id = invoice.id
    link = env.crm.deals[DEAL]["puente_invoice_url"]
    assert link == f"{env.rt.settings.public_url}/ui/invoices/{invoice_id}"
    [first, second] = env.crm.calls_to("GET", f"/crm/v4/objects/deals/{DEAL}/associations/line")
    assert (first.query.get("after"), second.query["after"]) == (None, "2")

    make_issuer(env.rt)
    issued = env.client.post(f"/api/v1/invoices/{invoice_id}/issue", headers=env.headers)
    assert issued.status_code == 200, issued.json
    events.dispatch(env.rt)
    drain(env.rt)
    assert env.crm.deals[DEAL]["puente_invoice_number"] == issued.json["number"]
    assert env.crm.deals[DEAL]["puente_payment_status"] == "Pendiente"

    paid = env.client.post(
        f"/api/v1/invoices/{invoice_id}/payments",
        headers=env.headers,
        json={"amount": issued.json["totals"]["total"], "method": "transfer"},
    )
    assert paid.status_code == 201, paid.json
    events.dispatch(env.rt)
    drain(env.rt)

    deal = env.crm.deals[DEAL]
    assert deal["puente_invoice_number"] == issued.json["number"]
    assert deal["puente_invoice_url"] == link
    assert deal["puente_payment_status"] == "Cobrado"
    assert all(r.status == RunStatus.SUCCEEDED for r in env.runs()), [r.error for r in env.runs()]
    assert env.crm.notes == []
    assert {c.path for c in env.crm.calls_to("PATCH", "/")} == {f"/crm/v3/objects/deals/{DEAL}"}


def test_the_same_event_again_and_a_second_won_event_still_make_one_invoice(env):
    event = stage_change(event_id=555)
    first = deliver(env, event)
    again = deliver(env, {**event, "attemptNumber": 1})  # HubSpot's retry, signed anew

    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json["duplicate"] is True
    drain(env.rt)
    assert deliver(env, stage_change()).status_code == 202  # moved out and back to won
    drain(env.rt)

    assert len(env.invoices()) == 1
    assert [r.status for r in env.deal_runs()] == [RunStatus.SUCCEEDED, RunStatus.SUCCEEDED]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_a_delivery_signed_as_older_apps_sign_is_accepted(env, version):
    body = json.dumps([stage_change()]).encode()

    answer = env.client.post(env.hook, data=body, headers=signed_old(env.url, body, version))

    assert answer.status_code == 202, answer.json
    drain(env.rt)
    assert len(env.invoices()) == 1


def refused_deliveries(env: Env) -> dict[str, tuple[bytes, dict[str, str]]]:
    body = json.dumps([stage_change()]).encode()
    now = int(time.time() * 1000)
    v3 = signed_v3(env.url, body)
    return {
        "another-secret": (body, signed_v3(env.url, body, secret="not-the-app-secret")),
        "stale": (body, signed_v3(env.url, body, stamp=now - 6 * 60 * 1000)),
        "from-the-future": (body, signed_v3(env.url, body, stamp=now + 6 * 60 * 1000)),
        "tampered": (body.replace(b"closedwon", b"closedwin"), v3),
        "another-url": (body, signed_v3(env.url + "x", body)),
        "no-timestamp": (
            body,
            {k: v for k, v in v3.items() if k != "X-HubSpot-Request-Timestamp"},
        ),
        "unsigned": (body, {"Content-Type": "application/json"}),
        "v1-another-secret": (body, signed_old(env.url, body, "v1", secret="nope")),
        "v2-another-url": (body, signed_old(env.url + "/x", body, "v2")),
    }


@pytest.mark.parametrize(
    "case",
    [
        "another-secret",
        "stale",
        "from-the-future",
        "tampered",
        "another-url",
        "no-timestamp",
        "unsigned",
        "v1-another-secret",
        "v2-another-url",
    ],
)
def test_a_delivery_not_signed_with_the_client_secret_or_stale_is_refused_and_nothing_stored(
    env, case
):
    body, headers = refused_deliveries(env)[case]

    answer = env.client.post(env.hook, data=body, headers=headers)

    assert answer.status_code == 401
    assert "HubSpot" in answer.json["message"] or "X-HubSpot" in answer.json["message"]
    with env.rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 0
    assert env.runs() == [] and env.rt.queue.count == 0


def test_a_deal_moved_to_a_stage_that_is_not_won_stops_the_run_and_invoices_nothing(env):
    env.crm.deals[DEAL].update(dealstage="contractsent", hs_is_closed_won="false")

    assert deliver(env, stage_change(stage="contractsent")).status_code == 202
    drain(env.rt)

    [run] = env.deal_runs()
    assert run.status == RunStatus.STOPPED
    assert "ganada" in run.error["message"]
    assert env.invoices() == []
    assert env.crm.calls_to("PATCH", "/") == [] and env.crm.notes == []


def test_each_pipeline_has_its_own_won_stage(env):
    env.crm.deals[DEAL].update(pipeline="renovaciones", dealstage="1095783")

    deliver(env, stage_change(stage="1095783"))
    drain(env.rt)

    assert env.deal_runs()[0].status == RunStatus.SUCCEEDED
    assert len(env.invoices()) == 1
    assert env.crm.calls_to("GET", "/crm/v3/pipelines/deals/renovaciones")


def test_the_configured_won_stages_decide_instead_of_the_pipeline(env):
    env.crm.deals[DEAL].update(dealstage="contractsent")
    changed = connect(env.client, env.headers, env.crm, won_stages=["contractsent"])
    assert changed.status_code == 200, changed.json

    deliver(env, stage_change(stage="contractsent"))
    drain(env.rt)

    assert env.deal_runs()[0].status == RunStatus.SUCCEEDED
    assert len(env.invoices()) == 1
    assert env.crm.calls_to("GET", "/crm/v3/pipelines") == []


def test_a_won_deal_whose_company_has_no_nif_gets_a_spanish_note_then_is_invoiced(env):
    env.crm.companies[COMPANY]["nif"] = None

    deliver(env)
    drain(env.rt)

    [run] = env.deal_runs()
    assert run.status == RunStatus.FAILED
    [note] = env.crm.deal_notes(DEAL)
    assert note.startswith(
        "Falta el NIF/CIF del cliente en la empresa Acme Soluciones SL (campo 'nif')"
    )
    assert run.error["message"] == note
    assert env.invoices() == []

    env.crm.companies[COMPANY]["nif"] = "b-12345674"  # as people type it
    deliver(env)  # marked won again: a new event
    drain(env.rt)

    [invoice] = env.invoices()
    assert invoice.external_ref == DEAL
    assert len(env.crm.notes) == 1


def test_the_nif_is_read_from_the_company_property_the_connection_names(env):
    env.crm.companies[COMPANY]["nif"] = None
    env.crm.companies[COMPANY]["cif_empresa"] = "B12345674"
    assert connect(env.client, env.headers, env.crm, tax_id_field="cif_empresa").status_code == 200

    deliver(env)
    drain(env.rt)

    [invoice] = env.invoices()
    with env.rt.sessions() as s:
        assert s.get_one(Invoice, invoice.id).customer.tax_id == "B12345674"


def test_hubspot_answering_429_on_the_deal_read_is_retried_and_then_succeeds(env):
    env.crm.fail("GET", f"/crm/v3/objects/deals/{DEAL}", 429, retry_after=1)

    deliver(env)
    drain(env.rt)

    [run] = env.deal_runs()
    with env.rt.sessions() as s:
        assert s.get_one(Run, run.id).attempts == 1
    assert ScheduledJobRegistry(queue=env.rt.queue).get_job_ids() == [f"run-{run.id}-a1"]
    assert env.invoices() == []

    outcome = runner.execute_run(env.rt.sessions, env.rt.registry, run.id, tools=env.rt.tools)

    assert outcome.status == "succeeded"
    assert len(env.invoices()) == 1
    assert len(env.crm.calls_to("GET", f"/crm/v3/objects/deals/{DEAL}")) == 2


def test_a_deal_property_missing_in_hubspot_fails_the_run_saying_which_to_create(env):
    env.crm.deal_properties.discard("puente_invoice_url")

    deliver(env)
    drain(env.rt)

    [run] = env.deal_runs()
    assert run.status == RunStatus.FAILED
    assert "puente_invoice_url" in run.error["message"]
    assert "create it in HubSpot" in run.error["message"]
    assert len(env.invoices()) == 1  # the draft stays; the link is what is missing


def test_test_connection_says_whether_hubspot_takes_the_token_and_keeps_the_portal(env):
    ok = env.client.post("/api/v1/connections/hs/test", headers=env.headers)
    assert ok.json["ok"] is True, ok.json
    shown = env.client.get("/api/v1/connections/hs", headers=env.headers).json
    assert shown["account_id"] == str(PORTAL_ID)

    env.crm.token = "pat-eu1-revoked"
    refused = env.client.post("/api/v1/connections/hs/test", headers=env.headers)

    assert refused.json["ok"] is False
    assert "access token" in refused.json["message"]
    assert "token de acceso" in refused.json["message_es"]


def test_once_the_portal_is_known_the_deal_links_to_its_record_in_hubspot(env):
    env.client.post("/api/v1/connections/hs/test", headers=env.headers)

    deliver(env)
    drain(env.rt)

    [run] = env.deal_runs()
    with env.rt.sessions() as s:
        deal_step = next(st for st in s.get_one(Run, run.id).steps if st.step_id == "deal")
        url = deal_step.output["deal_url"]
    assert url == f"https://app.hubspot.com/contacts/{PORTAL_ID}/record/0-3/{DEAL}"


def test_reconcile_finds_won_deals_that_never_reached_puente(env):
    env.crm.deals["777"] = {**env.crm.deals[DEAL], "dealname": "Perdida por el camino"}
    env.crm.deal_companies["777"] = [COMPANY]
    env.crm.deals["778"] = {**env.crm.deals[DEAL], "hs_is_closed_won": "false"}
    deliver(env)
    drain(env.rt)

    since = datetime(2026, 11, 1, tzinfo=UTC)
    missing = actions.crm.reconcile(env.rt, {"hubspot": API}, since)

    assert missing == {"hs": ["777"]}
    with env.rt.sessions() as s:
        assert set(s.scalars(select(Deal.external_ref))) == {DEAL, "777"}
    assert actions.crm.reconcile(env.rt, {"hubspot": API}, since) == {}
    assert actions.crm.reconcile(env.rt, {"hubspot": API}, since + timedelta(days=60)) == {}


@pytest.mark.parametrize(
    "event",
    [
        {**stage_change(), "propertyName": "puente_invoice_url"},  # our own write-back
        {**stage_change(), "propertyName": "amount", "propertyValue": "10"},
        {**stage_change(), "subscriptionType": "deal.creation"},
        {**stage_change(), "subscriptionType": "contact.propertyChange"},
        {**stage_change(), "subscriptionType": "object.propertyChange", "objectTypeId": "0-1"},
    ],
    ids=["fields-written", "amount", "created", "a-contact", "an-object-not-a-deal"],
)
def test_events_that_are_not_a_deal_stage_change_make_no_item(event):
    assert parse([event], "d-1", {}) == []


def test_each_stage_change_in_a_batch_is_an_item_keyed_by_hubspot_s_event():
    other = {**stage_change(deal_id="42", event_id=9), "propertyValue": "contractsent"}
    generic = {
        **stage_change(deal_id="43", event_id=10),
        "subscriptionType": "object.propertyChange",
        "objectTypeId": "0-3",
    }
    batch = [stage_change(event_id=8), {**stage_change(), "propertyName": "amount"}, other, generic]

    items = parse(batch, "d", {})

    assert [i.data["deal_id"] for i in items] == [DEAL, "42", "43"]
    assert items[0].dedup_key == f"hubspot:{PORTAL_ID}:{DEAL}:8:1795770900000"
    assert items[0].data == {
        "deal_id": DEAL,
        "event_id": "8",
        "occurred_at": "2026-11-27T09:15:00+00:00",
        "stage": "closedwon",
        "account_id": str(PORTAL_ID),
    }
    assert items[1].data["stage"] == "contractsent"


def test_the_captured_hubspot_delivery_is_read_as_hubspot_sent_it():
    raw = (
        b'[{"objectId":697680835,"propertyName":"dealstage","propertyValue":"closedwon",'
        b'"changeSource":"AUTOMATION_PLATFORM","eventId":1228532628,"subscriptionId":92894,'
        b'"portalId":5799819,"appId":186886,"occurredAt":1556105815815,'
        b'"subscriptionType":"deal.propertyChange","attemptNumber":3}]'
    )

    [item] = parse(json.loads(raw), "d", {})

    assert item.data["deal_id"] == "697680835" and item.data["account_id"] == "5799819"
