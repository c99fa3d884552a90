"""One integration sending a lot cannot starve the others: a cap on items per delivery, a
budget of items per minute per subscription, connection or API key (the push API), and a bulk
queue for the busy."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import func, select

from connector import admin
from connector.models import Event, Run
from tests.conftest import drain
from tests.factories import deal, make_api_key, make_hook, post_deal
from tests.openapi_check import CheckedClient
from web import create_app, demo


def client_with(rt, **settings):
    paced = replace(rt, settings=rt.settings.with_(**settings))
    app = create_app(runtime=paced)
    app.test_client_class = CheckedClient  # API answers checked against the OpenAPI document
    return app.test_client()


def push(client, key: str, items) -> object:
    return client.post(
        "/api/v1/triggers/deal_won/events",
        json=items,
        headers={"Authorization": f"Bearer {key}"},
    )


def flow_on_pushed_deals(rt) -> int:
    document = {**demo.DEMO_FLOW, "trigger": {"key": "api.deal_won"}}
    with rt.sessions.begin() as s:
        return admin.save_flow(s, rt.registry, document, enabled=True).flow.id


def events(rt) -> int:
    with rt.sessions() as s:
        return s.scalar(select(func.count()).select_from(Event)) or 0


def test_a_delivery_with_more_items_than_allowed_is_refused_whole_and_says_how_to_send_it(rt):
    client = client_with(rt, max_items_per_delivery=3)
    hook = make_hook(rt)

    answer = post_deal(client, hook, [deal() for _ in range(4)])

    assert answer.status_code == 413
    assert answer.json["error"] == "too_many_items"
    assert "lotes más pequeños" in answer.json["message_es"]
    assert events(rt) == 0  # nothing half-stored
    assert post_deal(client, hook, [deal() for _ in range(3)]).status_code == 202


def test_past_its_budget_a_subscription_waits_and_the_others_do_not(rt):
    client = client_with(rt, items_per_minute=3, bulk_after_items=0)
    busy, quiet = make_hook(rt), make_hook(rt)
    assert post_deal(client, busy, [deal(), deal()]).status_code == 202
    assert post_deal(client, busy, deal()).status_code == 202

    refused = post_deal(client, busy, deal())
    other = post_deal(client, quiet, deal())

    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "vuelve a intentarlo" in refused.json["message_es"]
    assert other.status_code == 202  # another subscription's budget is its own
    assert events(rt) == 4  # the refused delivery stored nothing; its retry will
    assert post_deal(client, busy, deal()).status_code == 429  # a refusal spends no budget


def test_a_busy_subscriptions_runs_wait_behind_a_quiet_ones(rt):
    client = client_with(rt, bulk_after_items=2)
    busy, quiet = make_hook(rt), make_hook(rt)
    flood = [post_deal(client, busy, deal()).json["run_ids"][0] for _ in range(5)]

    [first_quiet] = post_deal(client, quiet, deal()).json["run_ids"]

    assert rt.queue.count == 3  # the busy one's first two, then the quiet one's
    assert rt.bulk_queue.count == 3  # the rest of the flood
    drain(rt)
    with rt.sessions() as s:
        started = {i: at for i, at in s.execute(select(Run.id, Run.started_at))}
    assert all(started[first_quiet] < started[run_id] for run_id in flood[2:])


def test_a_push_with_more_items_than_allowed_is_refused_whole_in_both_languages(rt):
    client = client_with(rt, max_items_per_delivery=3)
    flow_id = flow_on_pushed_deals(rt)
    key = make_api_key(rt)

    answer = push(client, key, [deal() for _ in range(4)])
    by_hand = client.post(
        f"/api/v1/flows/{flow_id}/trigger",
        json=[deal() for _ in range(4)],
        headers={"Authorization": f"Bearer {key}"},
    )

    assert answer.status_code == 413 and by_hand.status_code == 413
    assert answer.json["error"] == "too_many_items"
    assert "at most 3" in answer.json["message"] and "smaller batches" in answer.json["message"]
    assert "lotes más pequeños" in answer.json["message_es"]
    assert events(rt) == 0  # nothing half-stored, not even as a refused delivery
    assert push(client, key, [deal() for _ in range(3)]).status_code == 202


def test_past_its_budget_an_api_key_waits_and_the_others_do_not(rt):
    client = client_with(rt, items_per_minute=3, bulk_after_items=0)
    flow_on_pushed_deals(rt)
    busy, quiet = make_api_key(rt, "busy"), make_api_key(rt, "quiet")
    assert push(client, busy, [deal(), deal()]).status_code == 202
    assert push(client, busy, deal()).status_code == 202

    refused = push(client, busy, deal())
    other = push(client, quiet, deal())

    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.json["error"] == "rate_limited"
    assert "more than 3 items in a minute" in refused.json["message"]
    assert "Esta clave de API" in refused.json["message_es"]
    assert "vuelve a intentarlo" in refused.json["message_es"]
    assert other.status_code == 202  # another key's budget is its own
    assert events(rt) == 4  # the refused push stored nothing; its retry will
    assert push(client, busy, deal()).status_code == 429  # a refusal spends no budget


def test_a_busy_api_keys_runs_wait_behind_a_quiet_ones(rt):
    client = client_with(rt, bulk_after_items=2)
    flow_on_pushed_deals(rt)
    busy, quiet = make_api_key(rt, "busy"), make_api_key(rt, "quiet")
    flood = push(client, busy, [deal() for _ in range(5)]).json["run_ids"]

    [first_quiet] = push(client, quiet, deal()).json["run_ids"]

    assert rt.queue.count == 1 and rt.bulk_queue.count == 5
    drain(rt)
    with rt.sessions() as s:
        started = {i: at for i, at in s.execute(select(Run.id, Run.started_at))}
    assert all(started[first_quiet] < started[run_id] for run_id in flood)
