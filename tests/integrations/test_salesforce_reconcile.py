"""Salesforce reconciliation: the opportunities won since a day, by a SOQL query to a local
Salesforce (tests/fakes/salesforce.py), compared with what reached Puente. A won one that
never arrived is recorded for the never-billed report, once; with `reconcile_runs`, it is
invoiced through its flow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import actions
from actions.crm import reconcile
from invoicing.models import Deal, Invoice
from tests.conftest import drain
from tests.fakes.salesforce import API
from tests.integrations.test_salesforce import connect, crm, env  # noqa: F401

SINCE = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def queries(org) -> list[str]:
    """The SOQL queries the local Salesforce was sent."""
    return [
        parse_qs(urlsplit(path).query)["q"][0]
        for method, path in org.seen
        if method == "GET" and urlsplit(path).path == f"{API}/query"
    ]


def won(org, account: str, stage: str = "Closed Won", close: str = "2026-12-01") -> str:
    line = {"name": "Licencia ERP anual", "code": "LIC-ERP", "quantity": 1.0, "price": 770.5}
    return org.add_opportunity(account, [line], StageName=stage, CloseDate=close)


def test_a_won_opportunity_that_never_reached_us_is_in_the_never_billed_report_once(env):  # noqa: F811
    missing = reconcile(env.rt, actions.CRM_APIS, SINCE)

    assert missing == {"sf": [env.deal]}
    assert queries(env.crm)[0] == (
        "SELECT Id FROM Opportunity WHERE IsWon = true AND CloseDate >= 2026-11-20"
    )
    with env.rt.sessions() as s:
        [deal] = s.query(Deal).all()
        assert (deal.source, deal.external_ref) == ("salesforce@connection:sf", env.deal)
        assert (deal.customer_tax_id, deal.customer_name) == ("B12345674", "Acme Soluciones SL")
        assert deal.won_at.date().isoformat() == "2026-12-04"  # its CloseDate
        assert s.query(Invoice).count() == 0
    report = env.client.get("/api/v1/reports/never-billed", headers=env.headers).json
    assert [d["external_ref"] for d in report["items"]] == [env.deal]

    assert reconcile(env.rt, actions.CRM_APIS, SINCE) == {}  # now known: not again
    report = env.client.get("/api/v1/reports/never-billed", headers=env.headers).json
    assert report["total"] == 1


def test_opportunities_won_before_the_window_or_not_won_are_left_alone(env):  # noqa: F811
    won(env.crm, env.account, close="2026-11-19")  # won the day before the window
    won(env.crm, env.account, stage="Negotiation/Review", close="2026-12-10")  # open

    assert reconcile(env.rt, actions.CRM_APIS, SINCE + timedelta(days=30)) == {}
    assert reconcile(env.rt, actions.CRM_APIS, SINCE) == {"sf": [env.deal]}
    with env.rt.sessions() as s:
        assert [d.external_ref for d in s.query(Deal).all()] == [env.deal]


def test_every_page_of_the_answer_is_read(env):  # noqa: F811
    more = [won(env.crm, env.account) for _ in range(4)]  # 5 won: 3 pages of 2

    missing = reconcile(env.rt, actions.CRM_APIS, SINCE)

    assert sorted(missing["sf"]) == sorted([env.deal, *more])
    assert len([p for m, p in env.crm.seen if m == "GET" and f"{API}/query/" in p]) >= 2


def test_with_won_stages_the_query_asks_for_those_stages_escaped(env):  # noqa: F811
    stage = "Firmado (cliente's OK) \\ 2026"
    answer = connect(env.client, env.headers, env.crm, won_stages=[stage, "Ganada"])
    assert answer.status_code == 200, answer.json
    signed = won(env.crm, env.account, stage=stage)  # not IsWon in Salesforce's eyes

    missing = reconcile(env.rt, actions.CRM_APIS, SINCE)

    assert missing == {"sf": [signed]}  # the "Closed Won" one is not a won stage here
    assert queries(env.crm)[0] == (
        "SELECT Id FROM Opportunity WHERE StageName IN "
        "('Firmado (cliente\\'s OK) \\\\ 2026', 'Ganada') AND CloseDate >= 2026-11-20"
    )


def test_with_reconcile_runs_the_lost_opportunity_is_invoiced_once_through_its_flow(env):  # noqa: F811
    answer = connect(env.client, env.headers, env.crm, reconcile_runs=True)
    assert answer.status_code == 200, answer.json

    assert reconcile(env.rt, actions.CRM_APIS, SINCE) == {"sf": [env.deal]}
    drain(env.rt)
    assert reconcile(env.rt, actions.CRM_APIS, SINCE) == {}  # it has reached us now
    drain(env.rt)

    [invoice] = env.invoices()
    with env.rt.sessions() as s:
        invoice = s.get_one(Invoice, invoice.id)
        assert (invoice.source, invoice.external_ref) == ("salesforce@connection:sf", env.deal)
        assert (invoice.customer.tax_id, invoice.customer.name) == (
            "B12345674",
            "Acme Soluciones SL",
        )
        assert len(invoice.lines) == 3
    link = env.deal_field("Puente_Invoice_URL__c")
    assert link and link.endswith(f"/ui/invoices/{invoice.id}")


def test_an_opportunity_that_reached_us_by_its_outbound_message_is_not_reported(env):  # noqa: F811
    assert env.send("04l7F000008aeAyQAI").status_code == 200
    drain(env.rt)
    assert len(env.invoices()) == 1

    assert reconcile(env.rt, actions.CRM_APIS, SINCE) == {}
    assert queries(env.crm)  # it did ask Salesforce
    assert len(env.invoices()) == 1
