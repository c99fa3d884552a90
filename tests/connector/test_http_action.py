"""http.request in a flow: a downstream API answering 500 and 429 ends with one call that
counts, one invoice per deal, and the credentials never in the run log."""

from __future__ import annotations

from sqlalchemy import func, select

from connector import runner
from connector.http_client import HttpClient, save_connection
from connector.models import Run, RunStatus, RunStep
from connector.outbound import Allowed
from invoicing.models import Invoice
from tests.factories import deal, make_api_key, make_hook, post_deal
from tests.fake_api import fake_api
from web.demo import DEMO_FLOW

NOTIFY_FLOW = {
    **DEMO_FLOW,
    "steps": [
        *DEMO_FLOW["steps"],
        {
            "id": "notify",
            "action": "http.request",
            "input": {
                "connection": "crm",
                "method": "PATCH",
                "url": {"$expr": "concat('/deals/', trigger.deal_id)"},
                "body": {"stage": "Facturado", "invoice": {"$expr": "steps.invoice.invoice_id"}},
            },
        },
    ],
}


def test_a_flaky_api_is_retried_until_it_answers_and_nothing_is_done_twice(rt, client):
    with fake_api() as api:
        api.script = [(500, {}), (429, {"Retry-After": "3"})]
        with rt.sessions.begin() as s:
            save_connection(
                s,
                rt.secrets,
                name="crm",
                base_url=api.url,
                auth="bearer",
                secret={"token": "s3cr3t-t0k3n"},
            )
        http = HttpClient(rt.sessions, rt.secrets, Allowed.parse("127.0.0.1"))
        hook = make_hook(rt, NOTIFY_FLOW)
        payload = deal()
        [run_id] = post_deal(client, hook, payload).json["run_ids"]

        outcomes = []
        for _ in range(3):
            outcome = runner.execute_run(
                rt.sessions, rt.registry, run_id, tools=runner.Tools(rt.services, http)
            )
            outcomes.append(outcome)
        assert [o.status for o in outcomes] == ["retry", "retry", "succeeded"]
        assert outcomes[1].retry_in >= 3.0  # the server's Retry-After is honoured

        assert [s.method for s in api.seen] == ["PATCH"] * 3
        assert {s.headers["Idempotency-Key"] for s in api.seen} == {
            runner.idempotency_key(1, 1, "notify")
        }
        assert api.seen[-1].path == f"/deals/{payload['deal_id']}"
        assert api.seen[-1].body == {"stage": "Facturado", "invoice": 1}

    with rt.sessions() as s:
        assert s.get_one(Run, run_id).status == RunStatus.SUCCEEDED
        assert s.scalar(select(func.count()).select_from(Invoice)) == 1
        steps = {st.step_id: st for st in s.scalars(select(RunStep))}
        assert (steps["invoice"].attempts, steps["notify"].attempts) == (1, 3)
        assert "s3cr3t-t0k3n" not in str(steps["notify"].input) + str(steps["notify"].output)


def test_connections_are_saved_without_showing_their_secret(rt, client):
    headers = {"Authorization": f"Bearer {make_api_key(rt)}"}
    saved = client.put(
        "/api/v1/connections/crm",
        headers=headers,
        json={
            "base_url": "https://api.example.com",
            "auth": "bearer",
            "secret": {"token": "abc"},
            "rate_limit_per_second": 5,
        },
    )
    assert saved.status_code == 200
    assert saved.json["has_secret"] is True and "abc" not in saved.get_data(as_text=True)
    missing = client.put(
        "/api/v1/connections/crm",
        headers=headers,
        json={"base_url": "https://api.example.com", "auth": "basic", "secret": {"username": "u"}},
    )
    assert missing.status_code == 422 and "password" in missing.json["message"]
