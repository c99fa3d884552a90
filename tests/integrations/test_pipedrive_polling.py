"""Pipedrive without webhooks: the polled flow (`pipedrive.deal_won_to_invoice_polled`) reads the
deals changed since its cursor (GET /v1/recents?items=deal&since_timestamp=…) and invoices the
won ones, once each, however many ways a deal arrives. Against the local Pipedrive
(tests/fakes/pipedrive.py), through the real app, Redis and both databases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from connector import polling
from connector.models import Event, Run, RunStatus, TriggerState
from connector.runtime import Runtime
from invoicing.models import Invoice
from tests.conftest import drain
from tests.factories import make_api_key
from tests.fakes.pipedrive import STAMP, FakePipedrive
from tests.integrations.test_pipedrive import (  # noqa: F401
    DEAL,
    Env,
    connect,
    crm,
    deliver,
    seed,
    v2_change,
)
from web import create_app

RECENTS = "/v1/recents"


@dataclass
class Polled:
    env: Env
    flow_id: int

    @property
    def crm(self) -> FakePipedrive:
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

    def deal_runs(self) -> list[Run]:
        return [r for r in self.env.runs() if r.key("deal_ref") is not None]

    def events(self) -> int:
        with self.rt.sessions() as s:
            return int(s.scalar(select(func.count()).select_from(Event)) or 0)

    def win(self, deal_id: int = DEAL) -> str:
        """The deal marked won in Pipedrive; its new update_time."""
        return self.crm.touch_deal(deal_id, status="won", won_time=self.crm.clock.strftime(STAMP))


def install(client: FlaskClient, headers: dict[str, str], key: str) -> int:
    answer = client.post(
        f"/api/v1/templates/{key}/install", headers=headers, json={"connection": "pd"}
    )
    assert answer.status_code == 201, answer.json
    return int(answer.json["flow_id"])


@pytest.fixture
def polled(local_rt: Runtime, crm: FakePipedrive) -> Polled:  # noqa: F811
    # The seeded deal is still open when the flow is switched on.
    crm.deals[DEAL].update(status="open", won_time=None, update_time="2026-11-27 10:15:00")
    client = create_app(runtime=local_rt).test_client()
    headers = {"Authorization": f"Bearer {make_api_key(local_rt)}"}
    answer = connect(client, headers, crm)
    assert answer.status_code == 200, answer.json
    flow_id = install(client, headers, "pipedrive.deal_won_to_invoice_polled")
    hook = answer.json["webhook_url"].removeprefix(local_rt.settings.public_url)
    return Polled(Env(local_rt, client, headers, crm, hook), flow_id)


def test_the_first_poll_fires_nothing_then_a_deal_won_is_invoiced_once(polled):
    assert polled.poll() == []

    assert polled.state()["primed"] is True
    assert polled.state()["cursor"] == "2026-11-27 10:15:01"  # a second past the newest deal
    [first] = polled.crm.calls_to("GET", "/v1/deals")
    assert first.query["sort"] == "update_time DESC"
    assert polled.deal_runs() == [] and polled.events() == 0

    won_at = polled.win()
    run_ids = polled.poll()

    assert len(run_ids) == 1
    [recents] = polled.crm.calls_to("GET", RECENTS)
    assert recents.query["items"] == "deal"
    assert recents.query["since_timestamp"] == "2026-11-27 10:15:00"  # a second's overlap
    drain(polled.rt)

    [run] = polled.deal_runs()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert (run.flow_id, run.key("deal_ref")) == (polled.flow_id, str(DEAL))
    [invoice] = polled.env.invoices()
    with polled.rt.sessions() as s:
        invoice = s.get_one(Invoice, invoice.id)
        assert (invoice.source, invoice.external_ref, invoice.status) == (
            "pipedrive@connection:pd",
            str(DEAL),
            "draft",
        )
        customer = invoice.customer
        assert (customer.tax_id, customer.name, customer.city, customer.country) == (
            "B12345674",
            "Acme Soluciones SL",
            "Madrid",
            "ES",
        )
        lines = [(li.sku, li.quantity, li.unit_price, li.discount_percent) for li in invoice.lines]
        assert lines == [("CONS-H", 20, 95, 10), ("LIC-ERP", 1, 800, Decimal("3.6875"))]
        assert invoice.base_total == Decimal("2480.50")
        invoice_id = invoice.id
    link = polled.crm.deal_field(DEAL, "puente_invoice_url")
    assert link.endswith(f"/ui/invoices/{invoice_id}")
    assert polled.state()["cursor"] == won_at

    # Writing the link changed the deal in Pipedrive; it is invoiced, so nothing more.
    assert polled.crm.deals[DEAL]["update_time"] > won_at
    assert polled.poll() == []
    assert polled.poll() == []
    drain(polled.rt)
    assert len(polled.env.invoices()) == 1
    assert len(polled.deal_runs()) == 1
    assert polled.state()["cursor"] == polled.crm.deals[DEAL]["update_time"]


def test_a_deal_moved_to_a_stage_not_won_stops_its_run_and_is_not_read_as_new_again(polled):
    polled.poll()
    changed = polled.crm.touch_deal(DEAL, stage_id=3)

    assert len(polled.poll()) == 1
    drain(polled.rt)

    [run] = polled.deal_runs()
    assert run.status == RunStatus.STOPPED
    assert "ganada" in run.error["message"]
    assert polled.env.invoices() == []
    # The next poll reads from a second before its cursor, so Pipedrive lists the same change
    # again: it is the same deal and update_time, already seen.
    assert polled.poll() == []
    last = polled.crm.calls_to("GET", RECENTS)[-1]
    since = datetime.strptime(changed, STAMP) - timedelta(seconds=1)
    assert last.query["since_timestamp"] == since.strftime(STAMP)
    assert len(polled.deal_runs()) == 1 and polled.events() == 1


def test_what_changed_before_the_cursor_is_not_new_even_when_pipedrive_lists_it(polled):
    polled.crm.recents_inclusive = True  # since_timestamp taken as "from", not "after"
    polled.poll()  # the cursor: a second past the seeded deal's change

    assert polled.poll() == []  # asks from that change's second: listed, but not new

    [recents] = polled.crm.calls_to("GET", RECENTS)
    assert recents.query["since_timestamp"] == polled.crm.deals[DEAL]["update_time"]
    assert polled.events() == 0 and polled.deal_runs() == []
    assert polled.state()["cursor"] == "2026-11-27 10:15:01"


def test_many_deals_changed_are_read_page_after_page_one_run_each(polled):
    for deal_id in (DEAL + 1, DEAL + 2):
        seed(polled.crm, deal_id, status="open", won_time=None, update_time="2026-11-01 09:00:00")
    polled.poll()
    for deal_id in (DEAL, DEAL + 1, DEAL + 2):
        polled.win(deal_id)

    run_ids = polled.poll()

    assert len(run_ids) == 3
    starts = [c.query.get("start") for c in polled.crm.calls_to("GET", RECENTS)]
    assert starts == ["0", "2"]  # the fake gives two a page here
    drain(polled.rt)
    assert sorted(i.external_ref for i in polled.env.invoices()) == [
        str(DEAL),
        str(DEAL + 1),
        str(DEAL + 2),
    ]
    assert all(r.status == RunStatus.SUCCEEDED for r in polled.deal_runs())


def test_the_same_deal_also_delivered_by_the_webhook_is_still_invoiced_once(polled):
    webhook_flow = install(polled.env.client, polled.env.headers, "pipedrive.deal_won_to_invoice")
    polled.poll()
    polled.win()

    assert len(polled.poll()) == 1
    drain(polled.rt)
    answer = deliver(polled.env, v2_change())  # Pipedrive's webhook for the same win
    assert answer.status_code == 202, answer.json
    drain(polled.rt)

    [invoice] = polled.env.invoices()
    assert invoice.external_ref == str(DEAL)
    runs = polled.deal_runs()
    assert sorted(r.flow_id for r in runs) == sorted([polled.flow_id, webhook_flow])
    assert all(r.status == RunStatus.SUCCEEDED for r in runs), [r.error for r in runs]
    assert {r.key("deal_ref") for r in runs} == {str(DEAL)}


def test_pipedrive_answering_429_loses_nothing_the_next_poll_gets_the_deal(polled):
    polled.poll()
    primed = polled.state()["cursor"]
    polled.win()
    polled.crm.fail("GET", RECENTS, 429, retry_after=1)

    assert polled.poll() == []

    assert polled.state()["cursor"] == primed
    assert "429" in polled.state()["error"]
    assert polled.events() == 0

    assert len(polled.poll()) == 1
    assert polled.state()["error"] is None
    drain(polled.rt)
    [run] = polled.deal_runs()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert len(polled.env.invoices()) == 1
