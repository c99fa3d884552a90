"""The Make app (integrations/make): every module's, the connection's and the webhook's HTTP
calls, made as Make makes them from the app's JSON (IML templates resolved), against a live
Puente on 127.0.0.1."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server

from connector import admin, events, rest_hooks
from connector.settings import PROJECT_ROOT
from tests.conftest import drain
from tests.factories import make_issuer
from tests.web.test_rest_hooks import Receiver
from web import create_app

APP_DIR = PROJECT_ROOT / "integrations" / "make"


def load(path: str) -> Any:
    return json.loads((APP_DIR / path).read_text())


# --- the part of IML (Make's template language) the app uses -----------------------------

FUNCTIONS = {
    "ifempty": lambda a, b: b if a in (None, "", []) else a,
    "if": lambda cond, a, b: a if cond not in (None, "", False, 0) else b,
    "formatDate": lambda value, fmt: (
        None if value in (None, "") else date.fromisoformat(str(value)[:10]).isoformat()
    ),
}


def evaluate(expr: str, ctx: dict[str, Any]) -> Any:
    expr = expr.strip()
    call = re.fullmatch(r"([A-Za-z]+)\((.*)\)", expr)
    if call:
        assert call.group(1) in FUNCTIONS, f"IML function {call.group(1)} is not modelled"
        args = [evaluate(a, ctx) for a in call.group(2).split(";")]
        if call.group(1) == "formatDate":
            assert args[1] == "YYYY-MM-DD", args
        return FUNCTIONS[call.group(1)](*args)
    if expr.startswith("'") and expr.endswith("'"):
        return expr[1:-1]
    if expr == "null":
        return None
    if re.fullmatch(r"-?[0-9]+", expr):
        return int(expr)
    value: Any = ctx
    for part in expr.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def resolve(template: Any, ctx: dict[str, Any]) -> Any:
    """Templates in strings, collections and arrays; empty values are left out, as Make
    leaves out parameters a user did not fill."""
    if isinstance(template, str):
        whole = re.fullmatch(r"\{\{(.*)\}\}", template)
        if whole and "{{" not in whole.group(1):
            return evaluate(whole.group(1), ctx)
        return re.sub(r"\{\{(.*?)\}\}", lambda m: str(evaluate(m.group(1), ctx) or ""), template)
    if isinstance(template, dict):
        resolved = {k: resolve(v, ctx) for k, v in template.items()}
        return {k: v for k, v in resolved.items() if v not in (None, "")}
    if isinstance(template, list):
        return [resolve(v, ctx) for v in template]
    return template


class MakeError(Exception):
    pass


def call(communication: dict[str, Any], ctx: dict[str, Any], use_base: bool = True) -> Any:
    """One request as Make sends it: the base's URL and headers, then the module's."""
    base = load("base.imljson") if use_base else {}
    url = resolve(communication["url"], ctx)
    if url.startswith("/"):
        url = resolve(base["baseUrl"], ctx) + url
    headers = {
        **resolve(base.get("headers", {}), ctx),
        **resolve(communication.get("headers", {}), ctx),
    }
    method = communication.get("method", "GET")
    body = resolve(communication["body"], ctx) if "body" in communication else None
    answer = requests.request(
        method,
        url,
        headers=headers,
        params=resolve(communication.get("qs", {}), ctx),
        json=body if method != "GET" else None,
        timeout=30,
    )
    payload = (
        answer.json()
        if answer.content and "json" in answer.headers.get("content-type", "")
        else None
    )
    result_ctx = {**ctx, "body": payload, "statusCode": answer.status_code}
    response = communication.get("response", {})
    if answer.status_code >= 400:
        error = response.get("error") or base["response"]["error"]
        raise MakeError(resolve(error["message"], result_ctx))
    if "iterate" in response:
        return [
            resolve(response["output"], {**result_ctx, "item": item})
            for item in resolve(response["iterate"], result_ctx)
        ]
    if "data" in response:
        return resolve(response["data"], result_ctx)
    if "output" in response:
        return resolve(response["output"], result_ctx)
    return payload


def run_module(name: str, ctx: dict[str, Any], ran: set[str]) -> Any:
    module = load(f"modules/{name}.json")
    ran.add(name)
    return call(module["communication"], ctx)


# --- the scenario ----------------------------------------------------------------------------


@pytest.fixture
def puente(local_rt) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, create_app(runtime=local_rt), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def work(rt) -> None:
    """What the sweeper and a worker do between two scenario steps."""
    for _ in range(3):
        events.dispatch(rt)
        rest_hooks.claim_due(rt)
        drain(rt)


CUSTOMER = {
    "name": "Talleres Make SL",
    "tax_id": "B10000016",
    "email": "facturas@make.example",
    "address": {
        "street": "Calle Mayor 3",
        "postal_code": "28013",
        "city": "Madrid",
        "province": "Madrid",
        "country": "ES",
    },
}
LINES = [{"description": "Consultoría", "quantity": "2", "unit_price": "100.00", "tax_rate": 21}]


def test_the_app_lists_its_components_and_every_module_names_its_connection():
    app = load("app.json")
    listed = {Path(p).stem for p in app["components"]["modules"]}
    assert listed == {p.stem for p in (APP_DIR / "modules").glob("*.json")}
    for name in listed:
        module = load(f"modules/{name}.json")
        assert module["name"] == name and module["connection"] == "puente"
        assert module["type"] in ("action", "search", "trigger", "instant_trigger")
        assert module["label"] and module["description"] and "samples" in module


def test_every_module_of_the_make_app_works_against_a_live_puente(local_rt, puente, receiver):
    make_issuer(local_rt)
    with local_rt.sessions.begin() as s:
        key = admin.create_api_key(s, "make", scopes=["read", "write"])
    connection = {"baseUrl": puente, "apiKey": key}
    ran: set[str] = set()

    # The connection's test, with the key and with a wrong one (the error in Spanish).
    test = load("connections/puente.json")["communication"]
    assert "items" in call(test, {"parameters": connection}, use_base=False)
    with pytest.raises(MakeError, match="clave de API"):
        call(test, {"parameters": {**connection, "apiKey": "pk_wrong"}}, use_base=False)

    # The instant trigger: attach the webhook, an event arrives, the module outputs it.
    hook = load("webhooks/puente_event.json")
    url = receiver.url("/make")
    webhook = call(
        hook["attach"],
        {
            "connection": connection,
            "parameters": {"event": "customer.created"},
            "webhook": {"url": url},
        },
    )
    assert webhook["externalHookId"] and webhook["secret"].startswith("whsec_")
    made = run_module(
        "find_or_create_customer",
        {"connection": connection, "parameters": {"customer": CUSTOMER}},
        ran,
    )
    assert made["created"] is True and made["tax_id"] == "B10000016"
    work(local_rt)
    [(_, delivered, _)] = receiver.at("/make")
    body = resolve(hook["communication"]["output"], {"body": delivered})
    ran.add("watch_events_instant")
    item = resolve(
        load("modules/watch_events_instant.json")["communication"]["output"], {"body": body}
    )
    assert item["type"] == "customer.created" and item["data"]["customer_id"] == made["id"]

    # The polling trigger lists the same event, newest first.
    listed = run_module(
        "watch_events", {"connection": connection, "parameters": {"event": "customer.created"}}, ran
    )
    assert listed[0]["id"] == item["id"]

    call(hook["detach"], {"connection": connection, "webhook": webhook})
    run_module(
        "find_or_create_customer",
        {
            "connection": connection,
            "parameters": {"customer": {**CUSTOMER, "tax_id": "B10000024", "name": "Otra SL"}},
        },
        ran,
    )
    work(local_rt)
    assert len(receiver.at("/make")) == 1  # detached: nothing more arrives

    # Actions and searches.
    reported = run_module(
        "report_won_deal",
        {
            "connection": connection,
            "parameters": {
                "deal_id": "MAKE-1",
                "title": "Proyecto",
                "won_at": "2026-12-01T10:00:00Z",
                "customer": CUSTOMER,
                "lines": LINES,
            },
        },
        ran,
    )
    assert reported["duplicate"] is False and len(reported["event_ids"]) == 1
    draft = run_module(
        "create_draft_invoice",
        {
            "connection": connection,
            "parameters": {"customer": CUSTOMER, "lines": LINES, "external_ref": "MAKE-2"},
        },
        ran,
    )
    assert draft["status"] == "draft" and draft["totals"]["total"] == "242.00"
    assert draft["source"] == "make"
    issued = run_module(
        "issue_invoice", {"connection": connection, "parameters": {"invoice_id": draft["id"]}}, ran
    )
    assert issued["status"] == "issued" and issued["number"]
    paid = run_module(
        "record_payment",
        {
            "connection": connection,
            "parameters": {
                "invoice_id": draft["id"],
                "amount": "242.00",
                "paid_on": "2026-12-03T09:00:00Z",
            },
        },
        ran,
    )
    assert paid["status"] == "paid" and paid["payment_id"]
    by_number = run_module(
        "find_invoice", {"connection": connection, "parameters": {"number": issued["number"]}}, ran
    )
    assert [i["id"] for i in by_number] == [draft["id"]]
    by_ref = run_module(
        "find_invoice", {"connection": connection, "parameters": {"external_ref": "MAKE-2"}}, ran
    )
    assert [i["id"] for i in by_ref] == [draft["id"]]
    found = run_module(
        "find_customer", {"connection": connection, "parameters": {"tax_id": "B10000016"}}, ran
    )
    assert found[0]["name"] == "Talleres Make SL"

    # A refusal reaches the scenario with Puente's words.
    with pytest.raises(MakeError, match="999999"):
        run_module(
            "issue_invoice", {"connection": connection, "parameters": {"invoice_id": 999999}}, ran
        )

    every = {Path(p).stem for p in load("app.json")["components"]["modules"]}
    assert ran == every
