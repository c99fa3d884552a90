"""REST hooks: a receiver on 127.0.0.1 subscribed to each event type gets one correctly
signed delivery per event; 5xx then 2xx delivers once; 410 ends the subscription; private
targets are refused; one subject's events arrive in order; every attempt is listed."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import func, select, update

from connector import events, public_events, rest_hooks, schemas, standard_webhooks
from connector.models import HookDelivery, HookSubscription, PublicEvent
from database import utcnow
from invoicing.deals import DealData
from invoicing.service import Invoicing
from tests.conftest import drain
from tests.factories import make_api_key, make_draft, make_issuer
from tests.openapi_check import CheckedClient
from tests.web.test_push import failing_run
from web import create_app

EVENT_TYPES = (
    "deal.won",
    "customer.created",
    "invoice.drafted",
    "invoice.issued",
    "invoice.paid",
    "invoice.cancelled",
    "run.failed",
)


class Receiver:
    """A target on 127.0.0.1: records each POST, answers the next status of `answers`."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self.answers: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append(
                    (self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def at(self, path: str) -> list[tuple[dict[str, str], dict[str, Any], bytes]]:
        return [(h, json.loads(b), b) for p, h, b in self.received if p == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def api(local_rt):
    """A client of the app whose outbound HTTP may reach 127.0.0.1 (the receiver)."""
    app = create_app(runtime=local_rt)
    app.config["TESTING"] = True
    app.test_client_class = CheckedClient
    return app.test_client()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def subscribe(api, key: str, event: str, url: str) -> dict[str, Any]:
    answer = api.post(
        "/api/v1/webhooks", json={"event": event, "target_url": url}, headers=bearer(key)
    )
    assert answer.status_code == 201, answer.json
    return answer.json


def deliveries(api, key: str, sub: dict[str, Any]) -> list[dict[str, Any]]:
    answer = api.get(f"/api/v1/webhooks/{sub['id']}/deliveries", headers=bearer(key))
    assert answer.status_code == 200, answer.json
    return list(answer.json["items"])


def deliver(rt, now=None, rounds: int = 5) -> None:
    """What the sweeper does each tick: outbox → public events, claim what is due, work it."""
    for _ in range(rounds):
        events.dispatch(rt)
        if not rest_hooks.claim_due(rt, now=now):
            return
        drain(rt)


def every_event(rt, api, key: str) -> None:
    """Make one event of each type happen, through the core and the API."""
    make_issuer(rt)
    with rt.sessions.begin() as s:
        Invoicing(s).record_deal(
            DealData(
                source="hubspot",
                external_ref="D-77",
                won_at=utcnow(),
                title="Licencias",
                amount=Decimal("121.00"),
                customer_name="Acme",
                customer_tax_id="B12345674",
            )
        )
    paid = make_draft(rt)  # customer.created and invoice.drafted
    issued = api.post(f"/api/v1/invoices/{paid}/issue", json={}, headers=bearer(key))
    assert issued.status_code == 200, issued.json
    payment = api.post(
        f"/api/v1/invoices/{paid}/payments",
        json={"amount": issued.json["totals"]["total"]},
        headers=bearer(key),
    )
    assert payment.status_code in (200, 201), payment.json
    cancelled = make_draft(rt)
    issued = api.post(f"/api/v1/invoices/{cancelled}/issue", json={}, headers=bearer(key))
    assert issued.status_code == 200, issued.json
    answer = api.post(
        f"/api/v1/invoices/{cancelled}/cancel",
        json={"reason": "emitida por error"},
        headers=bearer(key),
    )
    assert answer.status_code == 200, answer.json
    failing_run(rt, api, key)


def test_each_event_type_reaches_its_subscriber_once_signed_and_valid(rt, local_rt, api, receiver):
    key = make_api_key(rt)
    subs = {event: subscribe(api, key, event, receiver.url(f"/{event}")) for event in EVENT_TYPES}
    assert all(sub["secret"].startswith("whsec_") for sub in subs.values())
    every_event(local_rt, api, key)
    deliver(local_rt)
    deliver(local_rt, now=utcnow() + timedelta(hours=1))  # nothing is sent twice
    types = public_events.event_types(local_rt.registry)
    with local_rt.sessions() as s:
        published = {
            t: n
            for t, n in s.execute(select(PublicEvent.type, func.count()).group_by(PublicEvent.type))
        }
    assert set(published) == set(EVENT_TYPES)
    for event, sub in subs.items():
        got = receiver.at(f"/{event}")
        ids = [body["id"] for _, body, _ in got]
        assert len(ids) == len(set(ids)) == published[event], (event, ids)  # once each
        for headers, body, raw in got:
            msg_id = standard_webhooks.verify(sub["secret"], headers, raw, int(time.time()), 300)
            assert msg_id == body["id"] and body["id"].startswith("evt_")
            assert body["type"] == event and set(body) == {"id", "type", "created_at", "data"}
            assert schemas.validate(types[event], body["data"]) == [], (event, body["data"])
            assert headers["content-type"] == "application/json"
    assert receiver.at("/deal.won")[0][1]["data"]["deal_id"] == "D-77"
    failed = receiver.at("/run.failed")[0][1]["data"]
    assert failed["url"].endswith(f"/ui/runs/{failed['run_id']}")
    with local_rt.sessions() as s:
        statuses = set(s.scalars(select(HookDelivery.status)))
    assert statuses == {"delivered"}


def test_a_5xx_is_retried_later_and_then_delivered_once(rt, local_rt, api, receiver):
    key = make_api_key(rt)
    sub = subscribe(api, key, "invoice.drafted", receiver.url("/hook"))
    receiver.answers = [503]
    make_draft(local_rt)
    deliver(local_rt)
    assert len(receiver.at("/hook")) == 1
    deliver(local_rt)  # not due yet: backoff
    assert len(receiver.at("/hook")) == 1
    deliver(local_rt, now=utcnow() + timedelta(hours=1))
    deliver(local_rt, now=utcnow() + timedelta(hours=2))
    got = receiver.at("/hook")
    assert len(got) == 2 and got[0][0]["webhook-id"] == got[1][0]["webhook-id"]
    [delivery] = deliveries(api, key, sub)
    assert delivery["status"] == "delivered" and delivery["event_type"] == "invoice.drafted"
    assert [a["status_code"] for a in delivery["attempts"]] == [503, 200]
    assert "503" in delivery["attempts"][0]["error"] and delivery["attempts"][1]["error"] is None
    assert all(a["attempted_at"] for a in delivery["attempts"])


def test_a_target_that_answers_410_ends_the_subscription(rt, local_rt, api, receiver):
    key = make_api_key(rt)
    sub = subscribe(api, key, "invoice.drafted", receiver.url("/gone"))
    receiver.answers = [410]
    make_draft(local_rt)
    deliver(local_rt)
    listed = api.get("/api/v1/webhooks", headers=bearer(key)).json["items"]
    [shown] = [item for item in listed if item["id"] == sub["id"]]
    assert shown["active"] is False and shown["ended_reason"] == "gone"
    make_draft(local_rt)
    deliver(local_rt, now=utcnow() + timedelta(hours=1))
    assert len(receiver.at("/gone")) == 1


def test_retries_stop_a_day_after_the_event_and_the_delivery_fails(rt, local_rt, api, receiver):
    key = make_api_key(rt)
    sub = subscribe(api, key, "invoice.drafted", receiver.url("/down"))
    receiver.answers = [500] * 10
    make_draft(local_rt)
    deliver(local_rt)
    deliver(local_rt, now=utcnow() + timedelta(hours=1))
    [delivery] = deliveries(api, key, sub)
    assert delivery["status"] == "pending" and delivery["next_attempt_at"]
    with local_rt.sessions.begin() as s:  # the event is now almost a day old
        s.execute(
            update(HookDelivery).values(created_at=utcnow() - timedelta(hours=23, minutes=59))
        )
    deliver(local_rt, now=utcnow() + timedelta(hours=2))
    [delivery] = deliveries(api, key, sub)
    assert delivery["status"] == "failed" and delivery["next_attempt_at"] is None
    codes = [a["status_code"] for a in delivery["attempts"]]
    assert len(codes) >= 3 and set(codes) == {500}
    deliver(local_rt, now=utcnow() + timedelta(hours=5))
    assert len(receiver.at("/down")) == len(codes)  # a failed delivery is never sent again


def test_a_4xx_answer_is_final(rt, local_rt, api, receiver):
    key = make_api_key(rt)
    sub = subscribe(api, key, "invoice.drafted", receiver.url("/bad"))
    receiver.answers = [400]
    make_draft(local_rt)
    deliver(local_rt)
    deliver(local_rt, now=utcnow() + timedelta(hours=3))
    [delivery] = deliveries(api, key, sub)
    assert delivery["status"] == "failed" and len(delivery["attempts"]) == 1


def test_one_subjects_events_wait_for_the_earlier_one(rt, local_rt, api, receiver):
    key = make_api_key(rt)
    subscribe(api, key, "run.failed", receiver.url("/runs"))
    receiver.answers = [503]
    with local_rt.sessions.begin() as s:
        for n in (1, 2):
            public_events.publish(s, "run.failed", "run:9", f"test:{n}", {"run_id": 9, "n": n})
        public_events.publish(s, "run.failed", "run:10", "test:3", {"run_id": 10, "n": 3})
    deliver(local_rt)
    assert sorted(b["data"]["n"] for _, b, _ in receiver.at("/runs")) == [1, 3]
    deliver(local_rt, now=utcnow() + timedelta(hours=1))
    deliver(local_rt, now=utcnow() + timedelta(hours=2))
    assert [b["data"]["n"] for _, b, _ in receiver.at("/runs")] == [1, 3, 1, 2]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://10.0.0.7/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest",
        "ftp://example.com/hook",
    ],
)
def test_a_target_on_a_private_address_is_refused(rt, client, url):
    key = make_api_key(rt)
    answer = client.post(
        "/api/v1/webhooks", json={"event": "invoice.paid", "target_url": url}, headers=bearer(key)
    )
    assert answer.status_code == 422 and answer.json["field"] == "target_url"
    with rt.sessions() as s:
        assert s.scalar(select(HookSubscription.id)) is None


def test_an_unknown_event_type_is_refused_naming_the_known_ones(rt, client):
    answer = client.post(
        "/api/v1/webhooks",
        json={"event": "invoice.sent", "target_url": "https://example.com/h"},
        headers=bearer(make_api_key(rt)),
    )
    assert answer.status_code == 422 and answer.json["field"] == "event"
    assert "invoice.paid" in answer.json["message"]


def test_unsubscribing_stops_deliveries_and_repeats_answer_204(rt, local_rt, api, receiver):
    key = make_api_key(rt)
    sub = subscribe(api, key, "invoice.drafted", receiver.url("/off"))
    assert api.delete(f"/api/v1/webhooks/{sub['id']}", headers=bearer(key)).status_code == 204
    assert api.delete(f"/api/v1/webhooks/{sub['id']}", headers=bearer(key)).status_code == 204
    make_draft(local_rt)
    deliver(local_rt)
    assert receiver.at("/off") == []
    [shown] = api.get("/api/v1/webhooks", headers=bearer(key)).json["items"]
    assert shown["active"] is False and shown["ended_reason"] == "removed"
    assert "secret" not in shown
