"""One inbound address per connection, shared by its flows: a CRM sends every event to one URL
signed with the account's secret; each item fans out to every enabled flow on its trigger,
once each, and a redelivery starts nothing.

The trigger here is a small example of a CRM's webhook trigger, registered the way every
trigger is: a schema (the normalized deal), a module-level spec, one tuple.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from sqlalchemy import select, update

import actions
import triggers
from connector import admin, runtime
from connector.http_client import save_connection
from connector.models import Connection, Run
from connector.registry import Registry
from connector.runtime import build_runtime
from connector.spec import Answer, Delivery, Entity, ParsedItem, TriggerKind, TriggerSpec
from connector.standard_webhooks import headers_for
from connector.standard_webhooks import verify as verify_signature
from tests.factories import deal
from web import create_app
from web.demo import DEMO_FLOW


def verify(delivery: Delivery, secret: str, now: int, tolerance: int) -> str:
    """The account signs with a secret that is one of the connection's credentials."""
    key = json.loads(secret)["password"]
    return verify_signature(key, delivery.headers, delivery.body, now, tolerance)


def parse(payload: Any, delivery_id: str, _config: dict[str, Any]) -> list[ParsedItem]:
    """A batch of CRM events; only won deals are this trigger's, deduplicated by event id."""
    return [
        ParsedItem(f"evt:{event['id']}", event["deal"])
        for event in payload.get("events", [])
        if event.get("type") == "deal.won"
    ]


def acknowledge(_delivery: Delivery) -> Answer:
    return Answer(200, b"<Ack>true</Ack>", "text/xml")


EXAMPLE_WON = TriggerSpec(
    key="example.deal_won",
    title="Deal won (example CRM)",
    title_es="Oportunidad ganada (CRM de ejemplo)",
    description="A won deal from a CRM that posts all its events to one address.",
    kind=TriggerKind.WEBHOOK,
    output_schema="triggers/deal_won.json",
    entity=lambda data: Entity("example", str(data["deal_id"])),
    business_keys=(("deal_ref", "deal_id"),),
    provider="http",
    verify=verify,
    parse=parse,
    answer=acknowledge,
)
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def crm(settings, rt):
    """A runtime whose registry has the example trigger, an app on it, two connections."""
    built = build_runtime(
        settings, Registry.build([*triggers.ALL, EXAMPLE_WON], actions.ALL, actions.SERVICES)
    )
    runtime.install(built)
    with built.sessions.begin() as s:
        for name in ("crm", "other"):
            save_connection(
                s,
                built.secrets,
                name=name,
                base_url="https://api.example.com",
                auth="basic",
                secret={"username": "puente", "password": SECRET},
            )
            s.execute(
                update(Connection).where(Connection.name == name).values(inbound_token=name * 8)
            )
    yield built, create_app(runtime=built).test_client()
    runtime.install(rt)
    built.close()


def add_flow(rt, connection: str, name: str, enabled: bool = True) -> int:
    flow = {
        **DEMO_FLOW,
        "name": name,
        "trigger": {"key": EXAMPLE_WON.key, "connection": connection},
    }
    with rt.sessions.begin() as s:
        saved = admin.save_flow(s, rt.registry, flow, enabled=enabled)
        assert saved.report.errors == []
        return saved.flow.id


def send(client, token: str, body: dict[str, Any], msg_id: str, secret: str = SECRET):
    raw = json.dumps(body).encode()
    return client.post(
        f"/hooks/{token}", data=raw, headers=headers_for(secret, msg_id, int(time.time()), raw)
    )


def batch(*deals: dict[str, Any]) -> dict[str, Any]:
    events = [{"id": f"e-{d['deal_id']}", "type": "deal.won", "deal": d} for d in deals]
    return {"events": [*events, {"id": "e-x", "type": "deal.lost", "deal": {}}]}


def runs(rt) -> list[tuple[int, str | None]]:
    with rt.sessions() as s:
        return [(r.flow_id, r.key("deal_ref")) for r in s.scalars(select(Run).order_by(Run.id))]


def test_one_delivery_fans_out_to_every_enabled_flow_on_the_connection_once(crm):
    rt, client = crm
    first, second = add_flow(rt, "crm", "A"), add_flow(rt, "crm", "B")
    add_flow(rt, "crm", "apagado", enabled=False)
    add_flow(rt, "other", "otra cuenta")

    answer = send(client, "crm" * 8, batch(deal(deal_id="D-1"), deal(deal_id="D-2")), "m1")

    assert answer.status_code == 200 and answer.data == b"<Ack>true</Ack>"  # the CRM's own
    assert sorted(runs(rt)) == sorted(
        [(first, "D-1"), (second, "D-1"), (first, "D-2"), (second, "D-2")]
    )
    with rt.sessions() as s:
        assert {r.entity_key for r in s.scalars(select(Run))} == {
            "example@connection:crm:D-1",
            "example@connection:crm:D-2",
        }


def test_the_same_event_delivered_again_even_in_another_batch_starts_nothing(crm):
    rt, client = crm
    add_flow(rt, "crm", "A")
    send(client, "crm" * 8, batch(deal(deal_id="D-1")), "m1")

    send(client, "crm" * 8, batch(deal(deal_id="D-1")), "m1")  # a redelivery
    send(client, "crm" * 8, batch(deal(deal_id="D-1"), deal(deal_id="D-3")), "m2")

    assert [ref for _, ref in runs(rt)] == ["D-1", "D-3"]


def test_a_delivery_signed_with_another_secret_is_refused_and_nothing_is_stored(crm):
    rt, client = crm
    add_flow(rt, "crm", "A")
    wrong = "whsec_" + "c2VjcmV0LXRoYXQtaXMtbm90LXRoZS1jcm1zLTEyMzQ="

    answer = send(client, "crm" * 8, batch(deal(deal_id="D-1")), "m1", secret=wrong)

    assert answer.status_code == 401
    assert runs(rt) == []


def test_a_flow_on_a_crm_trigger_must_name_its_connection(crm):
    rt, _ = crm
    flow = {**DEMO_FLOW, "trigger": {"key": EXAMPLE_WON.key}}
    with rt.sessions.begin() as s:
        report = admin.save_flow(s, rt.registry, flow).report

    assert [e.path for e in report.errors] == ["trigger.connection"]
