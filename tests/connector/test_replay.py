"""Recovery: a replay after a fix resumes without repeating; edited payloads; paced bulk
replays; runs for the same deal never interleave."""

from __future__ import annotations

from datetime import timedelta

from rq.registry import ScheduledJobRegistry
from sqlalchemy import func, select, update

from connector import jobs, retention
from connector.models import Event, Run, RunStatus
from database import utcnow
from invoicing.models import Invoice
from tests.conftest import drain
from tests.factories import deal, make_api_key, make_hook, make_issuer, post_deal
from web.demo import DEMO_FLOW

ISSUING_FLOW = {
    **DEMO_FLOW,
    "steps": [
        *DEMO_FLOW["steps"],
        {
            "id": "issue",
            "action": "invoicing.issue_invoice",
            "input": {"invoice_id": {"$expr": "steps.invoice.invoice_id"}},
        },
    ],
}


def headers(rt) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_api_key(rt)}"}


def run_of(rt, run_id: int) -> Run:
    with rt.sessions() as s:
        run = s.get_one(Run, run_id)
        _ = run.steps, run.attempts_log
        s.expunge_all()
        return run


def test_a_replay_after_a_fix_resumes_at_the_failed_step_without_repeating(rt, client):
    hook = make_hook(rt, ISSUING_FLOW)
    [run_id] = post_deal(client, hook, deal()).json["run_ids"]
    drain(rt)
    failed = run_of(rt, run_id)
    assert (
        failed.status == RunStatus.FAILED and "no issuer is configured" in failed.error["message"]
    )

    make_issuer(rt)  # the fix
    answer = client.post(f"/api/v1/runs/{run_id}/replay", headers=headers(rt))
    assert answer.status_code == 202
    drain(rt)

    run = run_of(rt, run_id)
    assert run.status == RunStatus.SUCCEEDED and run.replays == 1
    assert {s.step_id: s.attempts for s in run.steps} == {"deal": 1, "invoice": 1, "issue": 2}
    assert [a.status for a in run.attempts_log] == ["failed", "succeeded"]
    with rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Invoice)) == 1
        assert s.scalars(select(Invoice)).one().status == "issued"
    assert (run.key("invoice_ref") or "").startswith("F")
    listed = client.get(f"/api/v1/runs?invoice_ref={run.key('invoice_ref')}", headers=headers(rt))
    assert [r["id"] for r in listed.json["items"]] == [run_id]


def test_a_replay_with_an_edited_payload_keeps_what_was_received(rt, client):
    hook = make_hook(rt)
    payload = deal()
    payload["customer"]["tax_id"] = "12345678A"  # wrong control letter
    [run_id] = post_deal(client, hook, payload).json["run_ids"]
    drain(rt)
    edited = {**payload, "customer": {**payload["customer"], "tax_id": "12345678Z"}}

    bad = client.post(
        f"/api/v1/runs/{run_id}/replay",
        headers=headers(rt),
        json={"trigger": {**edited, "currency": "euros"}},
    )
    assert bad.status_code == 422 and bad.json["field"] == "currency"
    answer = client.post(
        f"/api/v1/runs/{run_id}/replay", headers=headers(rt), json={"trigger": edited}
    )
    assert answer.status_code == 202
    drain(rt)

    run = run_of(rt, run_id)
    assert run.status == RunStatus.SUCCEEDED
    assert [a.edited_trigger for a in run.attempts_log] == [False, True]
    with rt.sessions() as s:
        assert s.scalars(select(Event)).one().payload["customer"]["tax_id"] == "12345678A"
        assert s.scalars(select(Invoice)).one().customer.tax_id == "12345678Z"


def test_only_finished_runs_are_replayed(rt, client):
    hook = make_hook(rt)
    [run_id] = post_deal(client, hook, deal()).json["run_ids"]  # still queued
    answer = client.post(f"/api/v1/runs/{run_id}/replay", headers=headers(rt))
    assert answer.status_code == 409 and "only finished runs" in answer.json["message"]


def test_dead_runs_are_replayed_in_bulk_at_a_steady_pace(rt, client):
    hook = make_hook(rt)
    ids = [post_deal(client, hook, deal()).json["run_ids"][0] for _ in range(3)]
    drain(rt)
    with rt.sessions.begin() as s:  # as if their retries had run out
        for run in s.scalars(select(Run)):
            run.status = RunStatus.DEAD

    answer = client.post(
        "/api/v1/runs/replay", headers=headers(rt), json={"status": "dead", "per_second": 2}
    )

    assert answer.status_code == 202
    assert answer.json == {"replayed": ids, "seconds": 1.0}
    assert rt.queue.count == 1  # the first now, the others on the scheduler
    scheduled = ScheduledJobRegistry(queue=rt.queue).get_job_ids()
    assert sorted(scheduled) == [jobs.job_id(i, replay=1) for i in ids[1:]]
    with rt.sessions() as s:  # each run names its job: where the sweeper looks for it
        named = {run_id: job for run_id, job in s.execute(select(Run.id, Run.job_id))}
    assert [named[i] for i in ids] == [None, *(jobs.job_id(i, replay=1) for i in ids[1:])]
    with rt.sessions.begin() as s:
        s.execute(update(Run).values(deadline_at=utcnow() - timedelta(seconds=1)))
    assert jobs.sweep(rt) == []  # all waiting their turn: none is queued twice
    assert rt.queue.count == 1
    refused = client.post("/api/v1/runs/replay", headers=headers(rt), json={"per_second": 0})
    assert (refused.status_code, refused.json["field"]) == (422, "per_second")


def test_runs_for_the_same_deal_never_run_at_the_same_time(rt, client):
    hook = make_hook(rt)
    payload = deal()
    [run_id] = post_deal(client, hook, payload).json["run_ids"]
    with rt.sessions() as s:  # the deal as the hook it arrived on knows it
        entity = s.get_one(Run, run_id).entity_key
    assert entity == f"webhook@subscription:{hook.subscription_id}:{payload['deal_id']}"
    busy = rt.redis.lock(f"{jobs.ENTITY_LOCK_PREFIX}{entity}", timeout=30)
    assert busy.acquire(blocking=False)  # another worker is on this deal

    drain(rt)

    assert run_of(rt, run_id).status == RunStatus.QUEUED  # it waited its turn
    assert len(ScheduledJobRegistry(queue=rt.queue).get_job_ids()) == 1
    busy.release()
    jobs.execute_run(run_id)
    assert run_of(rt, run_id).status == RunStatus.SUCCEEDED


def test_a_run_whose_data_retention_deleted_cannot_be_replayed(rt, client):
    hook = make_hook(rt)
    [run_id] = post_deal(client, hook, deal()).json["run_ids"]
    drain(rt)
    with rt.sessions.begin() as s:
        retention.prune(s, days=1, now=utcnow() + timedelta(days=2))

    answer = client.post(f"/api/v1/runs/{run_id}/replay", headers=headers(rt))

    assert answer.status_code == 409
    assert "deleted by the retention policy" in answer.json["message"]
    assert run_of(rt, run_id).status == RunStatus.SUCCEEDED  # left as it was
