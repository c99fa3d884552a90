"""One integration sending a lot cannot starve the others: a cap on items per delivery, a
budget of items per minute per subscription or connection, and a bulk queue for the busy."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import func, select

from connector.models import Event, Run
from tests.conftest import drain
from tests.factories import deal, make_hook, post_deal
from web import create_app


def client_with(rt, **settings):
    paced = replace(rt, settings=rt.settings.with_(**settings))
    return create_app(runtime=paced).test_client()


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
