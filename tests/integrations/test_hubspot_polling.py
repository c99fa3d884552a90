"""HubSpot without webhooks: the polled flow (`hubspot.deal_won_to_invoice_polled`) reads the
deals changed since its cursor through HubSpot's CRM search (hs_lastmodifieddate, oldest first)
and invoices the won ones, once each, however many ways a deal arrives. Against the local
HubSpot (tests/fakes/hubspot.py), through the real app, Redis and both databases."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

import triggers.hubspot
from connector import polling
from connector.models import Event, Run, RunStatus, TriggerState
from connector.runtime import Runtime
from connector.spec import PollContext
from invoicing.models import Invoice
from tests.conftest import drain
from tests.factories import make_api_key
from tests.fakes.hubspot import FakeHubSpot
from tests.integrations.test_hubspot import (  # noqa: F401
    COMPANY,
    DEAL,
    Env,
    connect,
    crm,
    deliver,
    stage_change,
)
from web import create_app

SEARCH = "/crm/v3/objects/deals/search"


@dataclass
class Polled:
    env: Env
    flow_id: int
    webhook_flow_id: int

    @property
    def crm(self) -> FakeHubSpot:
        return self.env.crm

    @property
    def rt(self) -> Runtime:
        return self.env.rt

    def poll(self) -> list[int]:
        return polling.poll_flow(self.rt, self.flow_id)

    def state(self) -> dict:
        with self.rt.sessions() as s:
            name = polling.state_name(self.flow_id)
            found = s.scalar(select(TriggerState).where(TriggerState.name == name))
            return dict(found.state) if found else {}

    def invoices(self) -> list[Invoice]:
        return self.env.invoices()


def install(client: FlaskClient, headers: dict[str, str], key: str) -> int:
    answer = client.post(
        f"/api/v1/templates/{key}/install", headers=headers, json={"connection": "hs"}
    )
    assert answer.status_code == 201, answer.json
    return int(answer.json["flow_id"])


@pytest.fixture
def polled(local_rt: Runtime, crm: FakeHubSpot) -> Polled:  # noqa: F811
    # The seeded deal is still being negotiated when the flow is switched on.
    crm.touch_deal(DEAL, dealstage="contractsent", hs_is_closed_won="false")
    client = create_app(runtime=local_rt).test_client()
    headers = {"Authorization": f"Bearer {make_api_key(local_rt)}"}
    answer = connect(client, headers, crm)
    assert answer.status_code == 200, answer.json
    flow_id = install(client, headers, "hubspot.deal_won_to_invoice_polled")
    webhook_flow_id = install(client, headers, "hubspot.deal_won_to_invoice")  # the webhook's
    env = Env(local_rt, client, headers, crm, answer.json["webhook_url"])
    return Polled(env, flow_id, webhook_flow_id)


def deal_runs(polled: Polled) -> list[Run]:
    return polled.env.deal_runs()


def test_the_first_poll_fires_nothing_then_a_deal_won_is_invoiced_once(polled):
    primed_at = polled.crm.deals[DEAL]["hs_lastmodifieddate"]

    assert polled.poll() == []

    since = int(datetime.fromisoformat(primed_at.replace("Z", "+00:00")).timestamp() * 1000) + 1
    assert polled.state()["primed"] is True
    assert polled.state()["cursor"] == datetime.fromtimestamp(since / 1000, UTC).isoformat()
    assert deal_runs(polled) == []
    [first] = polled.crm.calls_to("POST", SEARCH)
    assert first.body["sorts"] == [
        {"propertyName": "hs_lastmodifieddate", "direction": "DESCENDING"}
    ]

    won_at = polled.crm.touch_deal(DEAL, dealstage="closedwon", hs_is_closed_won="true")
    run_ids = polled.poll()

    assert len(run_ids) == 1
    search = polled.crm.calls_to("POST", SEARCH)[-1].body
    assert search["sorts"] == [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]
    assert {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(since)} in (
        search["filterGroups"][0]["filters"]
    )
    drain(polled.rt)

    [run] = deal_runs(polled)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.flow_id == polled.flow_id
    [invoice] = polled.invoices()
    with polled.rt.sessions() as s:
        invoice = s.get_one(Invoice, invoice.id)
        assert (invoice.source, invoice.external_ref, invoice.status) == (
            "hubspot@connection:hs",
            DEAL,
            "draft",
        )
        assert (invoice.customer.tax_id, invoice.customer.name) == (
            "B12345674",
            "Acme Soluciones SL",
        )
        assert invoice.customer.city == "Madrid"
        lines = [(li.sku, li.quantity, li.unit_price, li.discount_percent) for li in invoice.lines]
        assert lines == [
            ("CONS-H", 20, 95, 10),
            ("LIC-ERP", 1, 800, Decimal("3.6875")),
            ("SOP-M", 3, 20, 0),
        ]
        assert invoice.base_total == Decimal("2540.50")
    assert polled.crm.deals[DEAL]["puente_invoice_url"].endswith(f"/ui/invoices/{invoice.id}")
    assert polled.state()["cursor"] == won_at

    # The invoice link written back changed the deal; it is invoiced, so nothing more.
    assert polled.poll() == []
    assert polled.poll() == []
    drain(polled.rt)
    assert len(polled.invoices()) == 1
    assert len(deal_runs(polled)) == 1


def test_a_deal_changed_to_a_stage_that_is_not_won_stops_its_run(polled):
    polled.poll()
    polled.crm.touch_deal(DEAL, dealstage="appointmentscheduled")

    assert len(polled.poll()) == 1
    drain(polled.rt)

    [run] = deal_runs(polled)
    assert run.status == RunStatus.STOPPED
    assert polled.invoices() == []
    assert polled.poll() == []  # the same change is not read twice


def test_a_deal_both_polled_and_delivered_by_webhook_is_invoiced_once(polled):
    polled.poll()
    polled.crm.touch_deal(DEAL, dealstage="closedwon", hs_is_closed_won="true")

    assert len(polled.poll()) == 1
    assert deliver(polled.env, stage_change()).status_code == 202
    drain(polled.rt)

    runs = deal_runs(polled)
    assert sorted(r.flow_id for r in runs) == sorted([polled.flow_id, polled.webhook_flow_id])
    assert all(r.status == RunStatus.SUCCEEDED for r in runs), [r.error for r in runs]
    assert len(polled.invoices()) == 1

    assert deliver(polled.env, stage_change()).status_code == 202  # won again, later
    drain(polled.rt)
    assert len(polled.invoices()) == 1


def test_hubspot_answering_429_to_the_search_loses_nothing(polled):
    polled.poll()
    cursor = polled.state()["cursor"]
    polled.crm.touch_deal(DEAL, dealstage="closedwon", hs_is_closed_won="true")
    polled.crm.fail("POST", SEARCH, 429, retry_after=1)

    assert polled.poll() == []

    assert polled.state()["cursor"] == cursor
    assert "429" in polled.state()["error"]
    with polled.rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 0

    assert len(polled.poll()) == 1
    drain(polled.rt)
    assert len(polled.invoices()) == 1
    assert polled.state()["error"] is None


def test_many_changed_deals_are_read_page_by_page_and_a_bounded_poll_goes_on_next_time(
    polled, monkeypatch
):
    polled.poll()
    ids = [str(900 + n) for n in range(5)]
    stamps = [polled.crm.touch_deal(i, dealname=f"D{i}", dealstage="contractsent") for i in ids]
    monkeypatch.setattr(triggers.hubspot, "SEARCH_PAGE", 2)
    monkeypatch.setattr(triggers.hubspot, "SEARCH_PAGES", 2)

    first = polled.poll()

    assert len(first) == 4  # two pages of two
    assert polled.state()["cursor"] == stamps[3]
    pages = [c.body.get("after") for c in polled.crm.calls_to("POST", SEARCH)[-2:]]
    assert pages == [None, "2"]

    second = polled.poll()  # from the fourth on: the fourth again (seen), then the fifth

    assert len(second) == 1
    assert polled.state()["cursor"] == stamps[4]
    with polled.rt.sessions() as s:
        polled_runs = s.scalars(select(Run).where(Run.id.in_(first + second))).all()
        assert sorted(r.key("deal_ref") for r in polled_runs) == ids


def test_an_account_with_no_deals_yet_polls_from_its_beginning(local_rt, crm):  # noqa: F811
    crm.deals.clear()
    connect(
        create_app(runtime=local_rt).test_client(),
        {"Authorization": f"Bearer {make_api_key(local_rt)}"},
        crm,
    )
    ctx = PollContext(local_rt.http, "hs", {}, logging.getLogger("test"))

    first = triggers.hubspot.poll(ctx, None)
    crm.touch_deal("1", dealstage="closedwon")
    later = triggers.hubspot.poll(ctx, first.cursor)

    assert first.items == [] and first.cursor == triggers.hubspot.SINCE_EVER
    assert [i.data["deal_id"] for i in later.items] == ["1"]
    assert later.items[0].data["stage"] == "closedwon"
    assert later.cursor == crm.deals["1"]["hs_lastmodifieddate"]
    assert COMPANY  # the seeded company stays; only deals were cleared
