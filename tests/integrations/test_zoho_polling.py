"""Zoho CRM without notification channels: the polled flow (`zoho.deal_won_to_invoice_polled`)
reads the deals modified since its cursor (GET /Deals sorted by Modified_Time with
If-Modified-Since) and invoices the won ones, once each, however many ways a deal arrives.
Against the local Zoho (tests/fakes/zoho.py), through the real app, Redis and both databases."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

import triggers.zoho
from connector import lifecycle, polling
from connector.models import Event, Run, RunStatus, TriggerState
from connector.runtime import Runtime
from connector.spec import PollContext
from invoicing.models import Invoice
from tests.conftest import drain
from tests.fakes.zoho import FakeZoho
from tests.integrations.test_zoho import NIF, Crm, won_deal, zoho  # noqa: F401


@dataclass
class Polled:
    crm: Crm
    deal_id: str
    flow_id: int
    webhook_flow_id: int

    @property
    def zoho(self) -> FakeZoho:
        return self.crm.zoho

    @property
    def rt(self) -> Runtime:
        return self.crm.rt

    def poll(self) -> list[int]:
        return polling.poll_flow(self.rt, self.flow_id)

    def state(self) -> dict:
        with self.rt.sessions() as s:
            name = polling.state_name(self.flow_id)
            found = s.scalar(select(TriggerState).where(TriggerState.name == name))
            return dict(found.state) if found else {}

    def invoices(self) -> list[Invoice]:
        return self.crm.invoices(self.deal_id)

    def deal_runs(self) -> list[Run]:
        return [r for r in self.crm.runs() if r.key("deal_ref") is not None]

    def lists(self) -> list:
        return [c for c in self.zoho.calls("GET", "/crm/v2/Deals?")]


def install(crm: Crm, key: str) -> int:
    answer = crm.client.post(
        f"/api/v1/templates/{key}/install", headers=crm.headers, json={"connection": "zoho"}
    )
    assert answer.status_code == 201, answer.json
    return int(answer.json["flow_id"])


@pytest.fixture
def polled(local_rt: Runtime, zoho: FakeZoho) -> Polled:  # noqa: F811
    crm = Crm(local_rt, zoho)
    crm.connect()
    # The deal is still being negotiated when the flow is switched on.
    deal_id = won_deal(zoho)
    zoho.touch_deal(deal_id, Stage="Negotiation/Review")
    flow_id = install(crm, "zoho.deal_won_to_invoice_polled")
    webhook_flow_id = install(crm, "zoho.deal_won_to_invoice")  # the channel's
    lifecycle.sync(local_rt)
    [crm.channel_id] = zoho.channels
    return Polled(crm, deal_id, flow_id, webhook_flow_id)


def test_the_first_poll_fires_nothing_then_a_deal_won_is_invoiced_once(polled):
    primed_at = datetime.fromisoformat(polled.zoho.deals[polled.deal_id]["Modified_Time"])

    assert polled.poll() == []

    assert polled.state()["primed"] is True
    cursor = datetime.fromisoformat(polled.state()["cursor"])
    assert cursor == primed_at + timedelta(seconds=1)
    assert polled.deal_runs() == []
    [first] = polled.lists()
    assert "sort_by=Modified_Time" in first.path and "sort_order=desc" in first.path
    assert "If-Modified-Since" not in first.headers

    won_at = polled.zoho.touch_deal(polled.deal_id, Stage="Cerrado ganado")
    run_ids = polled.poll()

    assert len(run_ids) == 1
    asked = polled.lists()[-1]
    assert "sort_by=Modified_Time" in asked.path and "sort_order=asc" in asked.path
    assert "page=1" in asked.path and "per_page=200" in asked.path
    assert "fields=Stage%2CModified_Time%2Cpuente_invoice_url" in asked.path
    since = datetime.fromisoformat(asked.headers["If-Modified-Since"])
    assert since == cursor - timedelta(seconds=1)
    drain(polled.rt)

    [run] = polled.deal_runs()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.flow_id == polled.flow_id
    [invoice] = polled.invoices()
    with polled.rt.sessions() as s:
        invoice = s.get_one(Invoice, invoice.id)
        assert (invoice.source, invoice.status) == ("zoho@connection:zoho", "draft")
        assert invoice.customer.tax_id == NIF
        assert [li.sku for li in invoice.lines] == ["CONS-H", "LIC-ERP", "FORM"]
    deal = polled.zoho.deals[polled.deal_id]
    assert deal["puente_invoice_url"].endswith(f"/ui/invoices/{invoice.id}")
    assert datetime.fromisoformat(polled.state()["cursor"]) == datetime.fromisoformat(won_at)

    # The invoice link written back changed the deal; it is invoiced, so nothing more.
    assert polled.poll() == []
    assert datetime.fromisoformat(polled.state()["cursor"]) == datetime.fromisoformat(
        deal["Modified_Time"]
    )
    assert polled.poll() == []
    drain(polled.rt)
    assert len(polled.invoices()) == 1
    assert len(polled.deal_runs()) == 1


def test_nothing_modified_is_zoho_s_304_and_keeps_the_cursor(polled):
    polled.poll()
    cursor = polled.state()["cursor"]

    assert polled.poll() == []

    assert polled.state()["cursor"] == cursor
    assert polled.state()["error"] is None
    assert len(polled.lists()) == 2  # the 304 is one call, no further pages


def test_a_deal_changed_to_a_stage_that_is_not_won_stops_its_run(polled):
    polled.poll()
    polled.zoho.touch_deal(polled.deal_id, Stage="Qualification")

    assert len(polled.poll()) == 1
    drain(polled.rt)

    [run] = polled.deal_runs()
    assert run.status == RunStatus.STOPPED
    assert polled.invoices() == []
    assert polled.poll() == []  # the same change is not read twice


def test_a_deal_both_polled_and_notified_is_invoiced_once(polled):
    polled.poll()
    polled.zoho.touch_deal(polled.deal_id, Stage="Cerrado ganado")

    assert len(polled.poll()) == 1
    assert polled.crm.notify(polled.deal_id).status_code == 202
    drain(polled.rt)

    runs = polled.deal_runs()
    assert sorted(r.flow_id for r in runs) == sorted([polled.flow_id, polled.webhook_flow_id])
    assert all(r.status == RunStatus.SUCCEEDED for r in runs), [r.error for r in runs]
    assert len(polled.invoices()) == 1


def test_zoho_answering_429_to_the_list_loses_nothing(polled):
    polled.poll()
    cursor = polled.state()["cursor"]
    polled.zoho.touch_deal(polled.deal_id, Stage="Cerrado ganado")
    polled.zoho.fail_next("GET", "/crm/v2/Deals?", 429, **{"Retry-After": "1"})

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
    ids = [polled.zoho.add_deal(f"D{n}", "Qualification", None) for n in range(5)]
    stamps = [polled.zoho.touch_deal(i) for i in ids]
    invoiced = polled.zoho.add_deal("Ya facturada", "Cerrado ganado", None)
    polled.zoho.touch_deal(invoiced, puente_invoice_url="https://puente.example/ui/invoices/1")
    monkeypatch.setattr(triggers.zoho, "POLL_PAGE", 2)
    monkeypatch.setattr(triggers.zoho, "POLL_PAGES", 2)

    first = polled.poll()

    assert len(first) == 4  # two pages of two
    assert datetime.fromisoformat(polled.state()["cursor"]) == datetime.fromisoformat(stamps[3])
    assert ["page=1" in c.path for c in polled.lists()[-2:]] == [True, False]
    assert "page=2" in polled.lists()[-1].path

    second = polled.poll()  # from the fourth on: the fourth again (seen), the fifth, the rest

    assert len(second) == 1  # the invoiced deal is left out, yet the cursor passes it
    cursor = datetime.fromisoformat(polled.state()["cursor"])
    assert cursor == datetime.fromisoformat(polled.zoho.deals[invoiced]["Modified_Time"])
    with polled.rt.sessions() as s:
        polled_runs = s.scalars(select(Run).where(Run.id.in_(first + second))).all()
        assert sorted(r.key("deal_ref") for r in polled_runs) == sorted(ids)


def test_an_account_with_no_deals_yet_polls_from_its_beginning(local_rt, zoho):  # noqa: F811
    Crm(local_rt, zoho).connect()
    ctx = PollContext(local_rt.http, "zoho", {}, logging.getLogger("test"))

    first = triggers.zoho.poll(ctx, None)
    deal_id = zoho.add_deal("Primera", "Cerrado ganado", None)
    zoho.touch_deal(deal_id)
    later = triggers.zoho.poll(ctx, first.cursor)

    assert first.items == [] and first.cursor == triggers.zoho.SINCE_EVER
    assert [i.data["deal_id"] for i in later.items] == [deal_id]
    assert later.items[0].data["stage"] == "Cerrado ganado"
    assert datetime.fromisoformat(later.cursor) == datetime.fromisoformat(
        zoho.deals[deal_id]["Modified_Time"]
    )
