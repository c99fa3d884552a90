"""run.failed: a run that ends failed or dead is published once per failure, with what an
admin needs to find and fix it, in the transaction that records the failure."""

from __future__ import annotations

from sqlalchemy import select

from connector import jobs, public_events, schemas
from connector.models import PublicEvent
from tests.connector.test_sweep import running
from tests.factories import deal, make_api_key, make_hook, post_deal
from tests.web.test_push import failing_run


def published(rt, type_: str = "run.failed") -> list[PublicEvent]:
    with rt.sessions() as s:
        return list(s.scalars(select(PublicEvent).where(PublicEvent.type == type_)))


def test_a_failed_run_is_published_once_with_its_flow_error_and_keys(rt, client):
    run_id = failing_run(rt, client, make_api_key(rt))
    [event] = published(rt)
    data = event.data
    assert data["run_id"] == run_id and data["status"] == "failed"
    assert data["flow_name"] and data["trigger"] == "api.customer_created"
    assert data["error"]["message"] and data["error"]["class"] == "configuration"
    assert data["keys"]["customer_tax_id"] == "B12345674"
    assert event.subject == f"run:{run_id}"
    shown = public_events.message(event, "https://puente.example.es")
    assert shown["data"]["url"] == f"https://puente.example.es/ui/runs/{run_id}"
    assert schemas.validate(public_events.RUN_FAILED_SCHEMA, shown["data"]) == []


def test_a_replay_that_fails_again_is_a_second_event(rt, client):
    from tests.conftest import drain

    key = make_api_key(rt)
    run_id = failing_run(rt, client, key)
    again = client.post(
        f"/api/v1/runs/{run_id}/replay", json={}, headers={"Authorization": f"Bearer {key}"}
    )
    assert again.status_code == 202, again.json
    drain(rt)
    events = published(rt)
    assert [e.data["run_id"] for e in events] == [run_id, run_id]
    assert len({e.origin for e in events}) == 2


def test_a_run_the_sweeper_gives_up_on_is_published_as_dead(rt, client):
    hook = make_hook(rt)
    [run_id] = post_deal(client, hook, deal()).json["run_ids"]
    rt.redis.flushdb()
    last = max(action.max_attempts for action in rt.registry.actions.values())
    running(rt, run_id, attempts=last, overdue_by=1)
    assert jobs.sweep(rt) == [run_id]
    [event] = published(rt)
    assert event.data["run_id"] == run_id and event.data["status"] == "dead"
    assert event.data["error"]["message"] == jobs.GAVE_UP


def test_a_run_that_succeeds_publishes_nothing(rt, client):
    from tests.conftest import drain

    hook = make_hook(rt)
    post_deal(client, hook, deal())
    drain(rt)
    assert published(rt) == []
