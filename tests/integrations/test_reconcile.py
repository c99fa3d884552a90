"""Reconciliation: a deal won in the CRM whose webhook never reached us shows in the
never-billed report, and, when the connection asks for it, is run through its flow now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import actions
from actions.crm import reconcile
from invoicing.models import Deal, Invoice
from tests.conftest import drain
from tests.integrations.test_pipedrive import connect, crm, env, seed  # noqa: F401

SINCE = datetime(2026, 11, 20, tzinfo=UTC)


def test_a_won_deal_that_never_reached_us_is_recorded_for_the_never_billed_report(env):  # noqa: F811
    missing = reconcile(env.rt, actions.CRM_APIS, SINCE)

    assert missing == {"pd": [str(next(iter(env.crm.deals)))]}
    with env.rt.sessions() as s:
        [deal] = s.query(Deal).all()
        assert (deal.source, deal.customer_tax_id) == ("pipedrive@connection:pd", "B12345674")
        assert s.query(Invoice).count() == 0
    report = env.client.get("/api/v1/reports/never-billed", headers=env.headers).json
    assert [d["external_ref"] for d in report["items"]] == [deal.external_ref]
    assert reconcile(env.rt, actions.CRM_APIS, SINCE) == {}  # now known: not again


def test_deals_won_before_the_window_or_already_received_are_left_alone(env):  # noqa: F811
    assert reconcile(env.rt, actions.CRM_APIS, SINCE + timedelta(days=30)) == {}


def test_with_reconcile_runs_the_lost_deal_is_invoiced_once_through_its_flow(env):  # noqa: F811
    answer = connect(env.client, env.headers, env.crm, reconcile_runs=True)
    assert answer.status_code == 200, answer.json

    reconcile(env.rt, actions.CRM_APIS, SINCE)
    drain(env.rt)
    reconcile(env.rt, actions.CRM_APIS, SINCE)  # now it has reached us: nothing new
    drain(env.rt)

    with env.rt.sessions() as s:
        [invoice] = s.query(Invoice).all()
        assert (
            invoice.source == "pipedrive@connection:pd" and invoice.customer.tax_id == "B12345674"
        )
