"""Salesforce without Outbound Messages: the polled flow (`salesforce.deal_won_to_invoice_polled`)
reads the opportunities changed since its cursor through a SOQL query on SystemModstamp (oldest
first, page after page) and invoices the won ones, once each, however many ways an opportunity
arrives. Against the local Salesforce (tests/fakes/salesforce.py), through the real app, Redis
and both databases."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

import triggers.salesforce
from connector import polling
from connector.models import Event, Run, RunStatus, TriggerState
from connector.runtime import Runtime
from connector.spec import PollContext
from invoicing.models import Invoice
from tests.conftest import drain
from tests.factories import make_api_key
from tests.fakes.salesforce import API, FakeSalesforce
from tests.integrations.test_salesforce import Env, connect, crm, seed  # noqa: F401
from web import create_app


@dataclass
class Polled:
    env: Env
    flow_id: int
    webhook_flow_id: int

    @property
    def crm(self) -> FakeSalesforce:
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

    def queries(self) -> list[str]:
        """The SOQL of every query (first pages) the org was asked, in order."""
        found = []
        for method, path in self.crm.seen:
            parts = urlsplit(path)
            if method == "GET" and parts.path == f"{API}/query":
                found.append(parse_qs(parts.query)["q"][0])
        return found

    def deal_runs(self) -> list[Run]:
        return [r for r in self.env.runs() if r.key("deal_ref") is not None]


def install(env: Env, key: str) -> int:
    answer = env.client.post(
        f"/api/v1/templates/{key}/install", headers=env.headers, json={"connection": "sf"}
    )
    assert answer.status_code == 201, answer.json
    return int(answer.json["flow_id"])


@pytest.fixture
def polled(local_rt: Runtime, crm: FakeSalesforce) -> Polled:  # noqa: F811
    deal, account = seed(crm)
    # The seeded opportunity is still being negotiated when the flow is switched on.
    crm.touch_opportunity(deal, "Negotiation/Review")
    client = create_app(runtime=local_rt).test_client()
    headers = {"Authorization": f"Bearer {make_api_key(local_rt)}"}
    answer = connect(client, headers, crm)
    assert answer.status_code == 200, answer.json
    hook = answer.json["webhook_url"].removeprefix(local_rt.settings.public_url)
    env = Env(local_rt, client, headers, crm, hook, deal, account)
    flow_id = install(env, "salesforce.deal_won_to_invoice_polled")
    webhook_flow_id = install(env, "salesforce.deal_won_to_invoice")  # the Outbound Message's
    return Polled(env, flow_id, webhook_flow_id)


def test_the_first_poll_fires_nothing_then_an_opportunity_won_is_invoiced_once(polled):
    primed_at = polled.env.deal_field("SystemModstamp")  # 2026-12-04T10:00:01.000+0000

    assert polled.poll() == []

    assert primed_at == "2026-12-04T10:00:01.000+0000"
    assert polled.state()["primed"] is True
    assert polled.state()["cursor"] == "2026-12-04T10:00:02Z"  # just past the newest change
    assert polled.deal_runs() == []
    assert polled.queries() == [
        "SELECT SystemModstamp FROM Opportunity ORDER BY SystemModstamp DESC LIMIT 1"
    ]

    won_at = polled.crm.touch_opportunity(polled.env.deal, "Closed Won")
    run_ids = polled.poll()

    assert len(run_ids) == 1
    assert polled.queries()[-1] == (
        "SELECT Id, StageName, IsWon, SystemModstamp FROM Opportunity WHERE SystemModstamp >= "
        "2026-12-04T10:00:02Z AND Puente_Invoice_URL__c = null ORDER BY SystemModstamp ASC"
    )
    drain(polled.rt)

    [run] = polled.deal_runs()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.flow_id == polled.flow_id
    [invoice] = polled.env.invoices()
    with polled.rt.sessions() as s:
        invoice = s.get_one(Invoice, invoice.id)
        assert (invoice.source, invoice.external_ref, invoice.status) == (
            "salesforce@connection:sf",
            polled.env.deal,
            "draft",
        )
        assert invoice.customer.tax_id == "B12345674"
        assert [li.sku for li in invoice.lines] == ["CONS-H", "LIC-ERP", "FORM-1"]
    assert polled.env.deal_field("Puente_Invoice_URL__c").endswith(f"/ui/invoices/{invoice.id}")
    assert won_at == "2026-12-04T10:00:02.000+0000"
    assert polled.state()["cursor"] == "2026-12-04T10:00:02Z"

    # The invoice link written back changed the opportunity; it is invoiced, so nothing more.
    assert polled.env.deal_field("SystemModstamp") > won_at
    assert polled.poll() == []
    assert polled.poll() == []
    drain(polled.rt)
    assert len(polled.env.invoices()) == 1
    assert len(polled.deal_runs()) == 1


def test_an_opportunity_changed_to_a_stage_that_is_not_won_stops_its_run(polled):
    polled.poll()
    polled.crm.touch_opportunity(polled.env.deal, "Proposal/Price Quote")

    assert len(polled.poll()) == 1
    drain(polled.rt)

    [run] = polled.deal_runs()
    assert run.status == RunStatus.STOPPED
    assert polled.env.invoices() == []
    assert polled.poll() == []  # the same change is not read twice


def test_an_opportunity_both_polled_and_sent_by_outbound_message_is_invoiced_once(polled):
    polled.poll()
    polled.crm.touch_opportunity(polled.env.deal, "Closed Won")

    assert len(polled.poll()) == 1
    assert polled.env.send("04l7F000008aeAyQAI").status_code == 200
    drain(polled.rt)

    runs = polled.deal_runs()
    assert sorted(r.flow_id for r in runs) == sorted([polled.flow_id, polled.webhook_flow_id])
    assert all(r.status == RunStatus.SUCCEEDED for r in runs), [r.error for r in runs]
    assert len(polled.env.invoices()) == 1

    assert polled.env.send("04l7F000008aeAzQAI").status_code == 200  # won again, later
    drain(polled.rt)
    assert len(polled.env.invoices()) == 1


def test_salesforce_answering_503_to_the_query_loses_nothing(polled):
    polled.poll()
    cursor = polled.state()["cursor"]
    polled.crm.touch_opportunity(polled.env.deal, "Closed Won")
    polled.crm.fail_once("GET", f"{API}/query", 503)

    assert polled.poll() == []

    assert polled.state()["cursor"] == cursor
    assert "503" in polled.state()["error"]
    with polled.rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 0

    assert len(polled.poll()) == 1
    drain(polled.rt)
    assert len(polled.env.invoices()) == 1
    assert polled.state()["error"] is None


def test_the_org_s_api_limit_spent_keeps_the_cursor_and_says_so(polled):
    polled.poll()
    cursor = polled.state()["cursor"]
    polled.crm.touch_opportunity(polled.env.deal, "Closed Won")
    polled.crm.fail_once("GET", f"{API}/query", 403)

    assert polled.poll() == []

    assert polled.state()["cursor"] == cursor
    assert "request limit" in polled.state()["error"]
    assert len(polled.poll()) == 1


def test_many_changed_opportunities_are_read_page_by_page_and_a_bounded_poll_goes_on_next_time(
    polled, monkeypatch
):
    polled.poll()
    ids = [polled.crm.add_opportunity(polled.env.account, [], Name=f"O{n}") for n in range(5)]
    stamps = [polled.crm.opportunities[i]["SystemModstamp"] for i in ids]
    monkeypatch.setattr(triggers.salesforce, "POLL_PAGES", 2)  # the fake's pages hold two

    first = polled.poll()

    assert len(first) == 4  # two pages of two
    assert polled.state()["cursor"] == stamps[3].replace(".000+0000", "Z")
    assert sum("/query/" in path for _, path in polled.crm.seen) == 1  # one nextRecordsUrl

    second = polled.poll()  # from the fourth on: the fourth again (seen), then the fifth

    assert len(second) == 1
    assert polled.state()["cursor"] == stamps[4].replace(".000+0000", "Z")
    with polled.rt.sessions() as s:
        polled_runs = s.scalars(select(Run).where(Run.id.in_(first + second))).all()
        assert sorted(r.key("deal_ref") for r in polled_runs) == sorted(ids)


def test_an_org_with_no_opportunities_yet_polls_from_its_beginning(local_rt, crm):  # noqa: F811
    connect(
        create_app(runtime=local_rt).test_client(),
        {"Authorization": f"Bearer {make_api_key(local_rt)}"},
        crm,
    )
    ctx = PollContext(local_rt.http, "sf", {}, logging.getLogger("test"))

    first = triggers.salesforce.poll(ctx, None)
    deal = crm.add_opportunity(None, [], StageName="Closed Won")
    later = triggers.salesforce.poll(ctx, first.cursor)

    assert first.items == [] and first.cursor == triggers.salesforce.SINCE_EVER
    assert [i.data["deal_id"] for i in later.items] == [deal]
    assert later.items[0].data["stage"] == "Closed Won"
    assert later.items[0].data["event_id"] == f"{deal}@2026-12-04T10:00:00Z"
    assert later.cursor == "2026-12-04T10:00:00Z"


def test_an_invoice_link_field_that_is_not_an_api_name_is_refused_before_querying(
    local_rt,
    crm,  # noqa: F811
):
    client = create_app(runtime=local_rt).test_client()
    headers = {"Authorization": f"Bearer {make_api_key(local_rt)}"}
    connect(client, headers, crm, invoice_url_field="x = null OR Id")
    ctx = PollContext(local_rt.http, "sf", {}, logging.getLogger("test"))

    with pytest.raises(triggers.salesforce.ConfigurationError, match="API name"):
        triggers.salesforce.poll(ctx, "2026-12-04T10:00:00Z")
    assert not any("/query" in path for _, path in crm.seen)
