"""Zoho CRM reconciliation: the deals closed since a day, by Zoho's search API at a local Zoho
(tests/fakes/zoho.py), kept when their stage is won, compared with what reached Puente. A won
one that never arrived is recorded for the never-billed report, once; with `reconcile_runs`,
it is invoiced through its flow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import actions
from actions.crm import reconcile
from invoicing.models import Deal, Invoice
from tests.conftest import drain
from tests.integrations.test_zoho import NIF, crm, won_deal, zoho  # noqa: F401

SINCE = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def searches(zoho) -> list[dict[str, str]]:  # noqa: F811
    """The query of each search the local Zoho was sent."""
    return [
        {k: v[0] for k, v in parse_qs(urlsplit(seen.path).query).items()}
        for seen in zoho.calls("GET", "/crm/v2/Deals/search")
    ]


def test_a_won_deal_that_never_reached_us_is_in_the_never_billed_report_once(crm):  # noqa: F811
    deal_id = won_deal(crm.zoho)

    missing = reconcile(crm.rt, actions.CRM_APIS, SINCE)

    assert missing == {"zoho": [deal_id]}
    [search] = searches(crm.zoho)
    assert search == {
        "criteria": "((Closing_Date:greater_equal:2026-11-20))",
        "page": "1",
        "per_page": "200",
    }
    with crm.rt.sessions() as s:
        [deal] = s.query(Deal).all()
        assert (deal.source, deal.external_ref) == ("zoho@connection:zoho", deal_id)
        assert (deal.customer_tax_id, deal.customer_name) == (NIF, "Acme Soluciones SL")
        assert deal.won_at.date().isoformat() == "2026-11-27"  # its closing date
        assert s.query(Invoice).count() == 0
    report = crm.client.get("/api/v1/reports/never-billed", headers=crm.headers).json
    assert [d["external_ref"] for d in report["items"]] == [deal_id]

    assert reconcile(crm.rt, actions.CRM_APIS, SINCE) == {}  # now known: not again
    report = crm.client.get("/api/v1/reports/never-billed", headers=crm.headers).json
    assert report["total"] == 1


def test_deals_closed_before_the_window_or_not_won_are_left_alone(crm):  # noqa: F811
    deal_id = won_deal(crm.zoho)
    won_deal_too = won_deal(crm.zoho)
    early = won_deal(crm.zoho)
    crm.zoho.deals[early]["Closing_Date"] = "2026-11-19"  # the day before the window
    account = crm.zoho.add_account("Beta Servicios SL", "B87654321")
    crm.zoho.add_deal("Soporte", "Negotiation/Review", account, Closing_Date="2026-12-10")

    assert reconcile(crm.rt, actions.CRM_APIS, SINCE) == {"zoho": [deal_id, won_deal_too]}
    # The pipeline read once for the three deals the search found, then by read_deal for each
    # one recorded.
    assert len(crm.zoho.calls("GET", "/settings/pipeline")) == 1 + 2
    with crm.rt.sessions() as s:
        assert sorted(d.external_ref for d in s.query(Deal).all()) == [deal_id, won_deal_too]


def test_nothing_closed_since_is_zoho_s_204_and_nothing_to_report(crm):  # noqa: F811
    won_deal(crm.zoho)

    assert reconcile(crm.rt, actions.CRM_APIS, SINCE + timedelta(days=30)) == {}
    assert len(searches(crm.zoho)) == 1  # it did ask, and Zoho had nothing (204)
    with crm.rt.sessions() as s:
        assert s.query(Deal).count() == 0


def test_every_page_of_the_search_is_read(crm):  # noqa: F811
    crm.zoho.per_page_max = 2
    deals = [won_deal(crm.zoho) for _ in range(5)]  # 3 pages of 2

    assert reconcile(crm.rt, actions.CRM_APIS, SINCE) == {"zoho": deals}
    assert [s["page"] for s in searches(crm.zoho)] == ["1", "2", "3"]


def test_with_won_stages_those_stages_are_the_won_ones(crm):  # noqa: F811
    crm.connect(won_stages=["Firmado"])
    won_deal(crm.zoho)  # "Cerrado ganado": Closed Won in the pipeline, not listed here
    account = crm.zoho.add_account("Beta Servicios SL", "B87654321")
    signed = crm.zoho.add_deal("Soporte", "Firmado", account, Closing_Date="2026-12-01")

    assert reconcile(crm.rt, actions.CRM_APIS, SINCE) == {"zoho": [signed]}
    assert crm.zoho.calls("GET", "/settings/pipeline") == []  # no need for the pipeline


def test_with_reconcile_runs_the_lost_deal_is_invoiced_once_through_its_flow(crm):  # noqa: F811
    crm.connect(reconcile_runs=True)
    deal_id = won_deal(crm.zoho)

    assert reconcile(crm.rt, actions.CRM_APIS, SINCE) == {"zoho": [deal_id]}
    drain(crm.rt)
    assert reconcile(crm.rt, actions.CRM_APIS, SINCE) == {}  # it has reached us now
    drain(crm.rt)

    [invoice] = crm.invoices(deal_id)
    with crm.rt.sessions() as s:
        assert s.query(Invoice).count() == 1
        invoice = s.get_one(Invoice, invoice.id)
        assert invoice.source == "zoho@connection:zoho"
        assert (invoice.customer.tax_id, invoice.customer.name) == (NIF, "Acme Soluciones SL")
        assert len(invoice.lines) == 3
    assert crm.zoho.deals[deal_id]["puente_invoice_url"].endswith(f"/ui/invoices/{invoice.id}")


def test_a_deal_that_reached_us_by_its_notification_is_not_reported(crm):  # noqa: F811
    deal_id = won_deal(crm.zoho)
    assert crm.notify(deal_id).status_code == 202
    drain(crm.rt)
    assert len(crm.invoices(deal_id)) == 1

    assert reconcile(crm.rt, actions.CRM_APIS, SINCE) == {}
    assert searches(crm.zoho)  # it did ask Zoho
    assert len(crm.invoices(deal_id)) == 1
