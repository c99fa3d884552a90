"""Flows API: versions, design-time checks that keep broken flows disabled, export/import."""

from __future__ import annotations

import copy
import json

from sqlalchemy import select

from connector.models import FlowVersion, Run
from tests.conftest import drain
from tests.factories import deal, make_api_key, signed
from web.demo import DEMO_FLOW


def auth(rt) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_api_key(rt)}"}


def broken() -> dict:
    flow = copy.deepcopy(DEMO_FLOW)
    flow["steps"][1]["input"]["customer"] = {"$expr": "trigger.cliente"}
    return flow


def test_a_new_flow_gets_a_webhook_and_runs_what_it_receives(rt, client):
    headers = auth(rt)
    created = client.post(
        "/api/v1/flows", headers=headers, json={"document": DEMO_FLOW, "enabled": True}
    )
    assert created.status_code == 201, created.json
    assert created.json["enabled"] is True and created.json["check"]["ok"] is True
    assert created.json["webhook_secret"].startswith("whsec_")

    path = created.json["webhook_url"].split("5000", 1)[1]
    body = json.dumps(deal()).encode()
    answer = client.post(path, data=body, headers=signed(created.json["webhook_secret"], body))
    assert answer.status_code == 202
    drain(rt)
    with rt.sessions() as s:
        assert [r.status for r in s.scalars(select(Run))] == ["succeeded"]


def test_a_flow_with_problems_is_saved_as_a_draft_but_not_enabled(rt, client):
    headers = auth(rt)
    refused = client.post(
        "/api/v1/flows", headers=headers, json={"document": broken(), "enabled": True}
    )
    assert refused.status_code == 422
    assert refused.json["field"] == "steps[1].input.customer"
    assert "reads 'cliente'" in refused.json["message"]

    draft = client.post("/api/v1/flows", headers=headers, json={"document": broken()})
    assert draft.status_code == 201
    assert draft.json["enabled"] is False and draft.json["check"]["ok"] is False
    flow_id = draft.json["id"]
    enable = client.post(f"/api/v1/flows/{flow_id}/enable", headers=headers)
    assert enable.status_code == 422 and enable.json["field"] == "steps[1].input.customer"

    fixed = client.put(f"/api/v1/flows/{flow_id}", headers=headers, json={"document": DEMO_FLOW})
    assert fixed.json["version"] == 2 and fixed.json["check"]["ok"] is True
    assert client.post(f"/api/v1/flows/{flow_id}/enable", headers=headers).json["enabled"]
    # An enabled flow never takes a version with problems.
    again = client.put(f"/api/v1/flows/{flow_id}", headers=headers, json={"document": broken()})
    assert again.status_code == 422
    with rt.sessions() as s:
        assert s.scalar(select(FlowVersion.version).order_by(FlowVersion.id.desc())) == 2
    versions = client.get(f"/api/v1/flows/{flow_id}/versions", headers=headers).json["items"]
    assert [v["version"] for v in versions] == [2, 1]


def test_checking_without_saving_returns_problems_and_the_preview(rt, client):
    headers = auth(rt)
    answer = client.post("/api/v1/flows/check", headers=headers, json={"document": DEMO_FLOW})
    assert answer.json["ok"] is True
    assert answer.json["preview"]["invoice"]["customer"]["name"] == "Acme Soluciones SL"
    sample = {**deal(), "deal_id": "D-77"}
    with_sample = client.post(
        "/api/v1/flows/check", headers=headers, json={"document": DEMO_FLOW, "sample": sample}
    )
    assert with_sample.json["preview"]["invoice"]["external_ref"] == "D-77"
    bad = client.post("/api/v1/flows/check", headers=headers, json={"document": broken()})
    assert bad.json["errors"][0]["field"] == "steps[1].input.customer"


def test_export_carries_no_secret_and_import_starts_disabled(rt, client):
    headers = auth(rt)
    flow_id = client.post(
        "/api/v1/flows", headers=headers, json={"document": DEMO_FLOW, "enabled": True}
    ).json["id"]
    exported = client.get(f"/api/v1/flows/{flow_id}/export", headers=headers).json
    assert exported["format"] == "puente.flow/1"
    assert "whsec_" not in json.dumps(exported)

    imported = client.post("/api/v1/flows/import", headers=headers, json=exported)
    assert imported.status_code == 201
    assert imported.json["enabled"] is False and imported.json["id"] != flow_id
    assert imported.json["document"] == DEMO_FLOW
    smuggled = client.post(
        "/api/v1/flows/import", headers=headers, json={**exported, "webhook_secret": "whsec_x"}
    )
    assert (smuggled.status_code, smuggled.json["field"]) == (422, "webhook_secret")
    wrong = client.post("/api/v1/flows/import", headers=headers, json={"document": DEMO_FLOW})
    assert (wrong.status_code, wrong.json["field"]) == (422, "format")


def test_a_flow_on_an_internal_event_gets_no_webhook_and_runs_when_the_event_happens(rt, client):
    from connector import events
    from tests.factories import make_issued

    document = {
        "name": "Cobrada → volver a emitir (sin efecto)",
        "trigger": {"key": "invoicing.invoice_paid"},
        "steps": [
            {
                "id": "again",
                "action": "invoicing.issue_invoice",
                "input": {"invoice_id": {"$expr": "trigger.invoice_id"}},
            }
        ],
    }
    created = client.post(
        "/api/v1/flows", headers=auth(rt), json={"document": document, "enabled": True}
    )
    assert created.status_code == 201 and created.json["enabled"] is True
    assert "webhook_secret" not in created.json and "webhook_url" not in created.json
    invoice_id = make_issued(rt)
    paid = client.post(
        f"/api/v1/invoices/{invoice_id}/payments",
        headers=auth(rt),
        json={"amount": "3001.41", "paid_on": "2026-12-04"},
    )
    assert paid.status_code == 201 and paid.json["status"] == "paid"

    [run_id] = events.dispatch(rt)
    drain(rt)

    run = client.get(f"/api/v1/runs/{run_id}", headers=auth(rt)).json
    assert run["status"] == "succeeded" and run["flow"]["id"] == created.json["id"]


def test_flows_are_listed_a_page_at_a_time(rt, client):
    headers = auth(rt)
    ids = []
    for n in range(3):
        flow = {**copy.deepcopy(DEMO_FLOW), "name": f"Flujo {n}"}
        ids.append(
            client.post("/api/v1/flows", headers=headers, json={"document": flow}).json["id"]
        )

    first = client.get("/api/v1/flows?limit=2", headers=headers).json
    rest = client.get("/api/v1/flows?limit=2&offset=2", headers=headers).json
    bad = client.get("/api/v1/flows?limit=0", headers=headers)

    assert [f["id"] for f in first["items"]] == ids[:2]
    assert [f["id"] for f in rest["items"]] == ids[2:]
    assert (first["total"], first["limit"], rest["offset"]) == (3, 2, 2)
    assert (bad.status_code, bad.json["field"]) == (400, "limit")


def costly() -> dict:
    """A flow whose notes are a 22-character expression that writes ten million digits."""
    flow = copy.deepcopy(DEMO_FLOW)
    flow["steps"][1]["input"]["notes"] = {"$expr": "decimal('1E+10000000')"}
    return flow


def test_checking_and_trying_a_costly_expression_name_its_field(rt, client):
    headers = auth(rt)
    checked = client.post("/api/v1/flows/check", headers=headers, json={"document": costly()})
    assert checked.status_code == 200 and checked.json["ok"] is False
    [error] = checked.json["errors"]
    assert (error["field"], error["code"]) == ("steps[1].input.notes", "expression_too_big")
    assert "more than 40 digits" in error["message"]

    tried = client.post("/api/v1/flows/dry-run", headers=headers, json={"document": costly()})
    assert tried.status_code == 200 and tried.json["status"] == "failed"
    [failure] = tried.json["steps"][-1]["error"]["errors"]
    assert (failure["path"], failure["code"]) == ("notes", "expression_too_big")


def test_reading_a_flow_never_evaluates_its_expressions(rt, client, monkeypatch):
    from connector import mapping

    headers = auth(rt)
    draft = client.post("/api/v1/flows", headers=headers, json={"document": costly()})
    assert draft.status_code == 201 and draft.json["check"]["ok"] is False  # found on saving

    def evaluated(*args, **kwargs):
        raise AssertionError("reading a flow evaluated an expression")

    monkeypatch.setattr(mapping, "evaluate", evaluated)
    read = client.get(f"/api/v1/flows/{draft.json['id']}", headers=headers)
    assert read.status_code == 200
    assert read.json["document"] == costly() and read.json["check"]["preview"] == {}
    listed = client.get("/api/v1/flows", headers=headers)
    assert listed.status_code == 200
