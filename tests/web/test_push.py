"""Push triggers (what Zapier and Make call) and starting a flow by hand: the signed
webhook's answers and guarantees, with an API key and an Idempotency-Key."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from sqlalchemy import func, select

from connector import admin
from connector.models import Event, Run
from invoicing.models import Invoice
from tests.conftest import drain
from tests.factories import deal, make_api_key
from web import demo


def bearer(key: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **headers}


def flow_on(rt, trigger: str, steps: list[dict[str, Any]] | None = None, enabled=True) -> int:
    document = {**demo.DEMO_FLOW, "trigger": {"key": trigger}}
    if steps is not None:
        document["steps"] = steps
    with rt.sessions.begin() as s:
        return admin.save_flow(s, rt.registry, document, enabled=enabled).flow.id


def count(rt, model) -> int:
    with rt.sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


def failing_run(rt, client, key: str) -> int:
    """A run that fails for good: its step issues an invoice that does not exist."""
    steps = [
        {
            "id": "issue",
            "action": "invoicing.issue_invoice",
            "input": {"invoice_id": 999999},
        }
    ]
    flow_on(rt, "api.customer_created", steps)
    answer = client.post(
        "/api/v1/triggers/customer_created/events",
        json={"customer": {"name": "Acme Soluciones SL", "tax_id": "B12345674"}},
        headers=bearer(key),
    )
    assert answer.status_code == 202, answer.json
    drain(rt)
    [run_id] = answer.json["run_ids"]
    with rt.sessions() as s:
        assert s.get(Run, run_id).status == "failed"
    return run_id


def test_a_pushed_deal_runs_every_flow_on_the_trigger_and_drafts_its_invoice(rt, client):
    flow_on(rt, "api.deal_won")
    key = make_api_key(rt)
    answer = client.post("/api/v1/triggers/deal_won/events", json=deal(), headers=bearer(key))
    assert answer.status_code == 202, answer.json
    assert answer.json["duplicate"] is False
    assert len(answer.json["run_ids"]) == 1 and len(answer.json["event_ids"]) == 1
    drain(rt)
    with rt.sessions() as s:
        assert s.get(Run, answer.json["run_ids"][0]).status == "succeeded"
        assert s.scalar(select(func.count()).select_from(Invoice)) == 1


def test_a_list_of_deals_makes_one_run_each(rt, client):
    flow_on(rt, "api.deal_won")
    answer = client.post(
        "/api/v1/triggers/deal_won/events",
        json=[deal(), deal()],
        headers=bearer(make_api_key(rt)),
    )
    assert answer.status_code == 202 and len(answer.json["run_ids"]) == 2
    drain(rt)
    assert count(rt, Invoice) == 2


def test_a_repeated_idempotency_key_is_a_no_op_answering_the_first_ids(rt, client):
    flow_on(rt, "api.deal_won")
    key = make_api_key(rt)
    headers = bearer(key, **{"Idempotency-Key": "zap-123"})
    first = client.post("/api/v1/triggers/deal_won/events", json=deal(), headers=headers)
    again = client.post("/api/v1/triggers/deal_won/events", json=deal(), headers=headers)
    assert first.status_code == 202 and again.status_code == 200
    assert again.json["duplicate"] is True
    assert again.json["run_ids"] == first.json["run_ids"]
    assert again.json["event_ids"] == first.json["event_ids"]
    other = make_api_key(rt, "other")  # another key's same Idempotency-Key is its own
    third = client.post(
        "/api/v1/triggers/deal_won/events",
        json=deal(),
        headers=bearer(other, **{"Idempotency-Key": "zap-123"}),
    )
    assert third.status_code == 202 and third.json["run_ids"] != first.json["run_ids"]


def test_an_idempotency_key_sent_20_times_at_once_makes_one_run(rt, live_server):
    flow_on(rt, "api.deal_won")
    key = make_api_key(rt)
    body = deal()

    def push(_: int) -> requests.Response:
        return requests.post(
            f"{live_server}/api/v1/triggers/deal_won/events",
            json=body,
            headers=bearer(key, **{"Idempotency-Key": "same-deal"}),
            timeout=30,
        )

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(push, range(20)))
    assert {a.status_code for a in answers} <= {200, 202}
    assert sum(a.status_code == 202 for a in answers) == 1
    assert len({tuple(a.json()["run_ids"]) for a in answers}) == 1
    assert count(rt, Run) == 1 and count(rt, Event) == 1


def test_a_push_with_schema_errors_is_refused_naming_each_and_kept(rt, client):
    flow_on(rt, "api.deal_won")
    bad = deal(currency="euros")
    bad.pop("lines")
    answer = client.post(
        "/api/v1/triggers/deal_won/events", json=bad, headers=bearer(make_api_key(rt))
    )
    assert answer.status_code == 422
    fields = {e["field"] for e in answer.json["errors"]}
    assert {"currency", "lines"} <= fields
    with rt.sessions() as s:
        [event] = s.scalars(select(Event)).all()
        assert event.status == "rejected" and event.source == "api"
    assert count(rt, Run) == 0


def test_a_body_that_is_not_items_is_refused_with_400(rt, client):
    key = make_api_key(rt)
    for body in ([], [1, 2], "deal"):
        answer = client.post("/api/v1/triggers/deal_won/events", json=body, headers=bearer(key))
        assert answer.status_code == 400, body
    answer = client.post(
        "/api/v1/triggers/deal_won/events",
        data="{",
        headers=bearer(key),
        content_type="application/json",
    )
    assert answer.status_code == 400 and answer.json["error"] == "invalid_json"


def test_an_unknown_push_trigger_is_404_naming_the_known_ones(rt, client):
    answer = client.post(
        "/api/v1/triggers/invoice_paid/events", json={}, headers=bearer(make_api_key(rt))
    )
    assert answer.status_code == 404
    assert "deal_won" in answer.json["message"] and "customer_created" in answer.json["message"]


def test_a_pushed_customer_starts_the_flows_on_customer_created(rt, client):
    steps = [
        {
            "id": "customer",
            "action": "invoicing.find_or_create_customer",
            "input": {"$expr": "trigger.customer"},
        }
    ]
    flow_on(rt, "api.customer_created", steps)
    answer = client.post(
        "/api/v1/triggers/customer_created/events",
        json={"customer_id": "C-1", "customer": {"name": "Acme SL", "tax_id": "B12345674"}},
        headers=bearer(make_api_key(rt)),
    )
    assert answer.status_code == 202, answer.json
    drain(rt)
    with rt.sessions() as s:
        assert s.get(Run, answer.json["run_ids"][0]).status == "succeeded"


def test_a_flow_started_by_hand_runs_once_with_the_item_given(rt, client):
    flow_id = flow_on(rt, "webhook.deal_won")
    key = make_api_key(rt)
    answer = client.post(f"/api/v1/flows/{flow_id}/trigger", json=deal(), headers=bearer(key))
    assert answer.status_code == 202, answer.json
    drain(rt)
    with rt.sessions() as s:
        run = s.get(Run, answer.json["run_ids"][0])
        assert run.flow_id == flow_id and run.status == "succeeded"
        assert run.event.source == f"manual:{flow_id}"
    bad = client.post(f"/api/v1/flows/{flow_id}/trigger", json={"deal_id": 5}, headers=bearer(key))
    assert bad.status_code == 422 and bad.json["errors"]


def test_a_disabled_or_missing_flow_cannot_be_started_by_hand(rt, client):
    flow_id = flow_on(rt, "webhook.deal_won", enabled=False)
    key = make_api_key(rt)
    answer = client.post(f"/api/v1/flows/{flow_id}/trigger", json=deal(), headers=bearer(key))
    assert answer.status_code == 409 and "dry-run" in answer.json["message"]
    missing = client.post("/api/v1/flows/999/trigger", json=deal(), headers=bearer(key))
    assert missing.status_code == 404
    assert count(rt, Run) == 0
