"""Dry runs check and perform a flow on sample data, then leave no trace."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

from sqlalchemy import func, select

from connector.dryrun import dry_run
from connector.registry import default_registry
from invoicing.issuing import issue
from invoicing.models import Customer, Deal, Invoice, OutboxEvent, VerifactuRecord
from tests.factories import deal, make_api_key, make_draft, make_issuer
from web.demo import DEMO_FLOW

FULL_FLOW = {
    **DEMO_FLOW,
    "steps": [
        *DEMO_FLOW["steps"],
        {
            "id": "issue",
            "action": "invoicing.issue_invoice",
            "input": {"invoice_id": {"$expr": "steps.invoice.invoice_id"}},
        },
        {
            "id": "send",
            "action": "invoicing.send_invoice",
            "input": {"invoice_id": {"$expr": "steps.issue.invoice_id"}},
        },
    ],
}


def counts(rt) -> list[int]:
    with rt.sessions() as s:
        return [
            s.scalar(select(func.count()).select_from(model)) or 0
            for model in (Deal, Customer, Invoice, VerifactuRecord, OutboxEvent)
        ]


def test_a_dry_run_performs_database_steps_then_rolls_everything_back(rt):
    make_issuer(rt)
    before = counts(rt)

    result = dry_run(rt.sessions, default_registry(), FULL_FLOW, deal(deal_id="D-dry"), rt.tools)

    assert result.status == "succeeded"
    statuses = {step.id: step.status for step in result.steps}
    assert statuses == {
        "deal": "succeeded",
        "invoice": "succeeded",
        "issue": "succeeded",
        "send": "skipped",
    }
    issued = next(step for step in result.steps if step.id == "issue").output
    year = datetime.now(UTC).year
    assert issued["number"] == f"F{year}-00001" and len(issued["huella"]) == 64
    assert "not performed in a dry run" in next(s for s in result.steps if s.id == "send").note
    assert counts(rt) == before  # nothing stayed: no deal, customer, invoice, record, event

    with rt.sessions.begin() as s:  # the number the dry run used is still the next one
        assert issue(s, make_draft(rt)).invoice.number == f"F{year}-00001"


def test_a_dry_run_stops_at_the_first_failure_with_its_reason(rt):
    sample = deal()
    sample["customer"]["tax_id"] = "12345678A"
    result = dry_run(rt.sessions, default_registry(), DEMO_FLOW, sample, rt.tools)
    assert result.status == "failed"
    failed = result.steps[-1]
    assert failed.id == "invoice"
    assert failed.error["errors"][0]["path"] == "customer.tax_id"


def test_the_api_dry_runs_a_saved_flow_on_its_sample_or_given_data(rt, client):
    headers = {"Authorization": f"Bearer {make_api_key(rt)}"}
    flow_id = client.post("/api/v1/flows", headers=headers, json={"document": DEMO_FLOW}).json["id"]

    on_sample = client.post(f"/api/v1/flows/{flow_id}/dry-run", headers=headers)
    assert on_sample.status_code == 200, on_sample.json
    assert on_sample.json["status"] == "succeeded"
    assert on_sample.json["steps"][1]["output"]["external_ref"] == "D-1001"

    until = client.post(
        f"/api/v1/flows/{flow_id}/dry-run",
        headers=headers,
        json={"trigger": deal(deal_id="D-5"), "until": "deal"},
    ).json
    assert [s["id"] for s in until["steps"]] == ["deal"]

    bad = copy.deepcopy(deal())
    del bad["customer"]
    refused = client.post(
        "/api/v1/flows/dry-run", headers=headers, json={"document": DEMO_FLOW, "trigger": bad}
    )
    assert (refused.status_code, refused.json["field"]) == (422, "customer")
    assert counts(rt) == [0, 0, 0, 0, 0]


def test_a_dry_run_stops_an_expression_that_makes_too_big_a_value_at_its_step(rt):
    flow = copy.deepcopy(DEMO_FLOW)
    flow["steps"][1]["input"]["notes"] = {"$expr": "decimal('1E+10000000')"}
    result = dry_run(rt.sessions, default_registry(), flow, deal(), rt.tools)
    assert result.status == "failed"
    failed = result.steps[-1]
    assert failed.id == "invoice"
    [error] = failed.error["errors"]
    assert (error["path"], error["code"]) == ("notes", "expression_too_big")
    assert "more than 40 digits" in error["message"]
