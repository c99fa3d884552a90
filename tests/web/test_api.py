"""JSON API /api/v1 with bearer API keys, the bootstrap key, and /healthz."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select, update

from connector.admin import bootstrap_api_key, hash_api_key
from connector.models import ApiKey
from connector.runtime import Runtime, build_runtime
from database import utcnow
from tests.conftest import drain
from tests.factories import deal, make_api_key, make_hook, post_deal
from web import create_app

ENDPOINTS = ["/api/v1/runs", "/api/v1/runs/1", "/api/v1/invoices", "/api/v1/invoices/1"]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def bad_deal(deal_id: str) -> dict:
    payload = deal(deal_id=deal_id)
    payload["customer"]["tax_id"] = "12345678A"  # wrong control letter: the run fails
    return payload


def process(rt: Runtime, client, *payloads: dict) -> list[int]:
    """Post each deal to a fresh hook, run the queue, return the run ids in order."""
    hook = make_hook(rt)
    run_ids = []
    for payload in payloads:
        response = post_deal(client, hook, payload)
        assert response.status_code == 202, response.json
        run_ids += response.json["run_ids"]
    drain(rt)
    return run_ids


def assert_unauthorized(response, *words: str) -> None:
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json["error"] == "unauthorized"
    for word in words:
        assert word in response.json["message"]


# --- authentication ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ENDPOINTS)
def test_without_authorization_the_api_answers_401_saying_what_header_to_send(rt, client, path):
    make_api_key(rt)

    assert_unauthorized(client.get(path), "Authorization: Bearer")


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_non_bearer_scheme_is_refused_with_401(rt, client, path):
    key = make_api_key(rt)

    assert_unauthorized(
        client.get(path, headers={"Authorization": f"Basic {key}"}), "Authorization: Bearer"
    )


@pytest.mark.parametrize("path", ENDPOINTS)
def test_an_unknown_key_is_refused_with_401(rt, client, path):
    make_api_key(rt)

    assert_unauthorized(client.get(path, headers=bearer("pk_not-a-real-key")), "unknown or revoked")


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_revoked_key_is_refused_with_401(rt, client, path):
    key = make_api_key(rt)
    assert client.get("/api/v1/runs", headers=bearer(key)).status_code == 200
    with rt.sessions.begin() as s:
        s.execute(
            update(ApiKey).where(ApiKey.key_hash == hash_api_key(key)).values(revoked_at=utcnow())
        )

    assert_unauthorized(client.get(path, headers=bearer(key)), "unknown or revoked")


def test_an_empty_bearer_token_is_refused_with_401(rt, client):
    make_api_key(rt)

    assert_unauthorized(client.get("/api/v1/runs", headers={"Authorization": "Bearer "}))


def test_the_bearer_scheme_is_case_insensitive(rt, client):
    key = make_api_key(rt)

    response = client.get("/api/v1/runs", headers={"Authorization": f"bearer {key}"})

    assert response.status_code == 200


def test_a_successful_call_records_when_the_key_was_last_used(rt, client):
    key = make_api_key(rt)

    assert client.get("/api/v1/runs", headers=bearer(key)).status_code == 200

    with rt.sessions() as s:
        row = s.scalars(select(ApiKey).where(ApiKey.key_hash == hash_api_key(key))).one()
        assert row.last_used_at is not None


# --- runs ----------------------------------------------------------------------------------


def test_runs_are_listed_newest_first_with_total_limit_and_offset(rt, client):
    key = make_api_key(rt)
    first, second, third = process(rt, client, deal(), deal(), deal())

    response = client.get("/api/v1/runs", headers=bearer(key))

    assert response.status_code == 200
    body = response.json
    assert [r["id"] for r in body["items"]] == [third, second, first]
    assert (body["total"], body["limit"], body["offset"]) == (3, 50, 0)
    item = body["items"][0]
    assert item["status"] == "succeeded"
    assert item["flow"]["version"] == 1
    assert "steps" not in item


def test_runs_can_be_paged_with_limit_and_offset(rt, client):
    key = make_api_key(rt)
    first, second, _third = process(rt, client, deal(), deal(), deal())

    body = client.get("/api/v1/runs?limit=2&offset=1", headers=bearer(key)).json

    assert [r["id"] for r in body["items"]] == [second, first]
    assert (body["total"], body["limit"], body["offset"]) == (3, 2, 1)


def test_the_total_is_exact_and_counted_only_when_the_page_does_not_tell_it(rt, client):
    key = make_api_key(rt)
    process(rt, client, deal(), deal(), deal())
    counts: list[str] = []

    def record(conn, cursor, sql, *_):
        if "count(" in sql.lower():
            counts.append(sql)

    def total(path: str) -> tuple[int, int]:
        before = len(counts)
        body = client.get(path, headers=bearer(key)).json
        return body["total"], len(counts) - before

    sa.event.listen(rt.engine, "before_cursor_execute", record)
    try:
        short = total("/api/v1/runs")  # 3 of at most 50: the total is on the page
        last = total("/api/v1/runs?limit=2&offset=2")  # 1 of at most 2: the last page
        full = total("/api/v1/runs?limit=2")  # a full page: more may follow
        past = total("/api/v1/runs?offset=10")  # nothing there: counted
    finally:
        sa.event.remove(rt.engine, "before_cursor_execute", record)

    assert [short, last, full, past] == [(3, 0), (3, 0), (3, 1), (3, 1)]


def test_runs_can_be_filtered_by_status(rt, client):
    key = make_api_key(rt)
    good, bad = process(rt, client, deal(), bad_deal("D-bad"))

    failed = client.get("/api/v1/runs?status=failed", headers=bearer(key)).json
    succeeded = client.get("/api/v1/runs?status=succeeded", headers=bearer(key)).json

    assert ([r["id"] for r in failed["items"]], failed["total"]) == ([bad], 1)
    assert failed["items"][0]["error"]["class"] == "validation"
    assert ([r["id"] for r in succeeded["items"]], succeeded["total"]) == ([good], 1)


def test_runs_can_be_filtered_by_deal_ref(rt, client):
    key = make_api_key(rt)
    _, wanted, _ = process(
        rt, client, deal(deal_id="D-1"), deal(deal_id="D-2"), deal(deal_id="D-3")
    )

    body = client.get("/api/v1/runs?deal_ref=D-2", headers=bearer(key)).json

    assert [r["id"] for r in body["items"]] == [wanted]
    assert body["items"][0]["deal_ref"] == "D-2"
    assert body["total"] == 1


def test_an_unknown_run_status_filter_is_refused_with_400_naming_the_field(rt, client):
    key = make_api_key(rt)

    response = client.get("/api/v1/runs?status=exploded", headers=bearer(key))

    assert response.status_code == 400
    assert response.json["field"] == "status"
    assert "succeeded" in response.json["message"]


@pytest.mark.parametrize("path", ["/api/v1/runs", "/api/v1/invoices"])
@pytest.mark.parametrize("limit", ["abc", "0", "-5", "1.5"])
def test_a_bad_limit_is_refused_with_400_naming_the_field(rt, client, path, limit):
    key = make_api_key(rt)

    response = client.get(f"{path}?limit={limit}", headers=bearer(key))

    assert response.status_code == 400
    assert response.json["error"] == "bad_request"
    assert response.json["field"] == "limit"
    assert "limit" in response.json["message"]


@pytest.mark.parametrize("offset", ["abc", "-1", "100000000000000000000"])
def test_a_bad_offset_is_refused_with_400_naming_offset_not_limit(rt, client, offset):
    key = make_api_key(rt)

    response = client.get(f"/api/v1/runs?offset={offset}", headers=bearer(key))

    assert response.status_code == 400
    assert response.json["field"] == "offset"


def test_a_limit_above_the_maximum_is_capped_at_200(rt, client):
    key = make_api_key(rt)

    body = client.get("/api/v1/runs?limit=5000", headers=bearer(key)).json

    assert body["limit"] == 200


def test_a_run_shows_its_steps_with_input_and_output_and_the_trigger_payload(rt, client):
    key = make_api_key(rt)
    payload = deal(deal_id="D-77")
    [run_id] = process(rt, client, payload)

    response = client.get(f"/api/v1/runs/{run_id}", headers=bearer(key))

    assert response.status_code == 200
    run = response.json
    assert (run["id"], run["status"], run["deal_ref"], run["error"]) == (
        run_id,
        "succeeded",
        "D-77",
        None,
    )
    assert run["trigger"] == payload
    assert [st["step_id"] for st in run["steps"]] == ["deal", "invoice"]
    step = run["steps"][1]
    assert (step["step_id"], step["action"], step["status"]) == (
        "invoice",
        "invoicing.create_draft_invoice",
        "succeeded",
    )
    assert step["input"]["customer"]["tax_id"] == "B12345674"
    assert step["input"]["external_ref"] == "D-77"
    assert isinstance(step["output"]["invoice_id"], int)
    assert step["output"]["created"] is True
    assert step["started_at"] and step["finished_at"]


def test_a_failed_run_shows_the_field_that_failed(rt, client):
    key = make_api_key(rt)
    [run_id] = process(rt, client, bad_deal("D-bad"))

    run = client.get(f"/api/v1/runs/{run_id}", headers=bearer(key)).json

    assert run["status"] == "failed"
    assert run["error"]["errors"][0]["path"] == "customer.tax_id"
    assert run["steps"][1]["status"] == "failed"
    assert run["steps"][1]["output"] is None


def test_an_unknown_run_answers_404_with_a_message(rt, client):
    key = make_api_key(rt)

    response = client.get("/api/v1/runs/4242", headers=bearer(key))

    assert response.status_code == 404
    assert response.json == {"error": "not_found", "message": "run 4242 does not exist"}


# --- invoices ------------------------------------------------------------------------------


def test_invoices_are_listed_newest_first_with_totals_as_strings(rt, client):
    key = make_api_key(rt)
    process(rt, client, deal(deal_id="D-1"), deal(deal_id="D-2"))

    body = client.get("/api/v1/invoices", headers=bearer(key)).json

    assert [i["external_ref"] for i in body["items"]] == ["D-2", "D-1"]
    assert body["items"][0]["id"] > body["items"][1]["id"]
    assert (body["total"], body["limit"], body["offset"]) == (2, 50, 0)
    assert body["items"][0]["totals"] == {
        "base": "2480.50",
        "tax": "520.91",
        "total": "3001.41",
        "paid": "0.00",
        "outstanding": "3001.41",
    }
    assert body["items"][0]["status"] == "draft"
    assert "lines" not in body["items"][0]


def test_invoices_can_be_filtered_by_external_ref(rt, client):
    key = make_api_key(rt)
    process(rt, client, deal(deal_id="D-1"), deal(deal_id="D-2"))

    body = client.get("/api/v1/invoices?external_ref=D-1", headers=bearer(key)).json
    none = client.get("/api/v1/invoices?external_ref=D-9", headers=bearer(key)).json

    assert [i["external_ref"] for i in body["items"]] == ["D-1"]
    assert body["total"] == 1
    assert (none["items"], none["total"]) == ([], 0)


def test_an_invoice_shows_its_customer_lines_taxes_and_totals_with_two_decimals(rt, client):
    key = make_api_key(rt)
    [run_id] = process(rt, client, deal(deal_id="D-42"))
    run = client.get(f"/api/v1/runs/{run_id}", headers=bearer(key)).json
    invoice_id = run["steps"][1]["output"]["invoice_id"]

    response = client.get(f"/api/v1/invoices/{invoice_id}", headers=bearer(key))

    assert response.status_code == 200
    invoice = response.json
    assert (invoice["id"], invoice["status"], invoice["number"], invoice["external_ref"]) == (
        invoice_id,
        "draft",
        None,
        "D-42",
    )
    assert invoice["customer"]["name"] == "Acme Soluciones SL"
    assert invoice["customer"]["tax_id"] == "B12345674"
    assert invoice["customer"]["address"]["city"] == "Madrid"
    assert [
        (
            line["sku"],
            line["quantity"],
            line["unit_price"],
            line["discount_percent"],
            line["gross"],
            line["discount"],
            line["base"],
        )
        for line in invoice["lines"]
    ] == [
        ("CONS-H", "20", "95", "10", "1900.00", "190.00", "1710.00"),
        ("LIC-ERP", "1", "770.5", "0", "770.50", "0.00", "770.50"),
    ]
    assert invoice["taxes"] == [{"rate": "21", "base": "2480.50", "amount": "520.91"}]
    assert invoice["totals"] == {
        "base": "2480.50",
        "tax": "520.91",
        "total": "3001.41",
        "paid": "0.00",
        "outstanding": "3001.41",
    }
    assert invoice["payments"] == []


def test_an_unknown_invoice_answers_404_with_a_message(rt, client):
    key = make_api_key(rt)

    response = client.get("/api/v1/invoices/4242", headers=bearer(key))

    assert response.status_code == 404
    assert response.json == {"error": "not_found", "message": "invoice 4242 does not exist"}


# --- the bootstrap key ---------------------------------------------------------------------


def test_the_bootstrap_key_is_registered_when_no_key_exists_and_works_against_the_api(rt, client):
    key = "bootstrap-key-for-the-first-admin-0001"

    with rt.sessions.begin() as s:
        assert bootstrap_api_key(s, key) is True

    response = client.get("/api/v1/runs", headers=bearer(key))
    assert response.status_code == 200
    assert response.json["total"] == 0


def test_the_bootstrap_key_is_not_registered_a_second_time(rt, client):
    first = "bootstrap-key-for-the-first-admin-0001"
    second = "bootstrap-key-for-the-first-admin-0002"
    with rt.sessions.begin() as s:
        assert bootstrap_api_key(s, first) is True
    with rt.sessions.begin() as s:
        assert bootstrap_api_key(s, first) is False
        assert bootstrap_api_key(s, second) is False

    with rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(ApiKey)) == 1
    assert client.get("/api/v1/runs", headers=bearer(first)).status_code == 200
    assert client.get("/api/v1/runs", headers=bearer(second)).status_code == 401


def test_the_bootstrap_key_is_ignored_once_any_other_key_exists(rt, client):
    make_api_key(rt)
    key = "bootstrap-key-for-the-first-admin-0001"

    with rt.sessions.begin() as s:
        assert bootstrap_api_key(s, key) is False

    assert client.get("/api/v1/runs", headers=bearer(key)).status_code == 401


def test_a_bootstrap_key_shorter_than_24_characters_raises_value_error(rt):
    with rt.sessions.begin() as s, pytest.raises(ValueError, match="at least 24 characters"):
        bootstrap_api_key(s, "x" * 23)
    with rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(ApiKey)) == 0


# --- health --------------------------------------------------------------------------------


def test_healthz_says_only_up_to_anyone_and_the_details_to_an_api_key(rt, client):
    anyone = client.get("/healthz")
    assert (anyone.status_code, anyone.json) == (200, {"status": "ok"})
    wrong = client.get("/healthz", headers=bearer("pk_not_a_key"))
    assert wrong.json == {"status": "ok"}

    response = client.get("/healthz", headers=bearer(make_api_key(rt)))

    assert response.status_code == 200
    body = response.json
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True
    assert body["database"]["dialect"] == rt.engine.dialect.name
    assert body["redis"] == {"ok": True, "queued_jobs": 0}


def test_a_json_body_with_what_no_database_keeps_is_refused_with_400(rt, client):
    key = make_api_key(rt)
    for body in ('{"document": NaN}', '{"document": 1e400}', '{"document": "\\u0000"}'):
        response = client.post(
            "/api/v1/flows/check",
            data=body,
            headers={**bearer(key), "Content-Type": "application/json"},
        )
        assert response.status_code == 400, (body, response.get_data(as_text=True))
        assert response.json["error"] == "invalid_json"


def test_an_error_answer_keeps_the_headers_that_explain_it(rt, client):
    response = client.delete("/api/v1/runs", headers=bearer(make_api_key(rt)))

    assert response.status_code == 405 and response.is_json
    assert "GET" in response.headers["Allow"]


def test_healthz_says_what_is_down_without_telling_anyone_where_or_who(rt, settings):
    key = make_api_key(rt)
    down = build_runtime(settings.with_(redis_url="redis://:s3cret@127.0.0.1:1/0"))
    try:
        web = create_app(runtime=down).test_client()
        anyone = web.get("/healthz")
        body = web.get("/healthz", headers=bearer(key)).json
    finally:
        down.close()
    assert (anyone.status_code, anyone.json) == (503, {"status": "down"})
    assert body["redis"] == {"ok": False, "error": "ConnectionError"}
    assert "s3cret" not in json.dumps(body) and "127.0.0.1" not in json.dumps(body)


def test_true_is_not_an_id(rt, client):
    key = make_api_key(rt)
    answer = client.post(
        "/api/v1/invoices/from-delivery-notes",
        headers=bearer(key),
        json={"delivery_note_ids": [True]},
    )
    assert (answer.status_code, answer.json["field"]) == (422, "delivery_note_ids")
    replay = client.post(
        "/api/v1/runs/replay", headers=bearer(key), json={"status": "dead", "flow_id": "x"}
    )
    assert (replay.status_code, replay.json["field"]) == (422, "flow_id")


def test_a_bootstrap_key_keeps_all_of_its_characters_secret(rt):
    chosen = "my-own-bootstrap-key-0123456789"
    with rt.sessions.begin() as s:
        assert bootstrap_api_key(s, chosen)
    with rt.sessions() as s:
        row = s.scalars(select(ApiKey)).one()
    assert row.prefix == "(given)" and chosen[:4] not in row.prefix
