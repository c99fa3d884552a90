"""http.request in a flow: a downstream API answering 500 and 429 ends with one call that
counts, one invoice per deal, and the credentials never in the run log."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from connector import runner
from connector.errors import ConfigurationError
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


TOKEN = "s3cr3t-t0k3n-0123456789"


def _notify_run(rt, client, api, step_input=None):
    """A won deal whose flow ends calling the fake API with connection "crm" (bearer TOKEN)."""
    with rt.sessions.begin() as s:
        save_connection(
            s, rt.secrets, name="crm", base_url=api.url, auth="bearer", secret={"token": TOKEN}
        )
    notify = {**NOTIFY_FLOW["steps"][-1], "input": {**NOTIFY_FLOW["steps"][-1]["input"]}}
    notify["input"].update(step_input or {})
    hook = make_hook(rt, {**NOTIFY_FLOW, "steps": [*NOTIFY_FLOW["steps"][:-1], notify]})
    [run_id] = post_deal(client, hook, deal()).json["run_ids"]
    http = HttpClient(rt.sessions, rt.secrets, Allowed.parse("127.0.0.1"))
    outcome = runner.execute_run(
        rt.sessions, rt.registry, run_id, tools=runner.Tools(rt.services, http, rt.secrets)
    )
    return run_id, outcome


def test_a_connection_secret_the_api_echoes_is_masked_in_the_run_log(rt, client):
    # An API that says back what it received (as httpbin does), under names no rule knows.
    with fake_api() as api:
        api.answer = lambda seen: {
            "received": {"h": seen.headers["Authorization"]},
            "debug": f"caller identified by {seen.headers['Authorization'][7:]} (ok)",
        }
        _, outcome = _notify_run(
            rt, client, api, {"url": "/deals/D-1?client_secret=cs-literal-1&page=2"}
        )
    assert outcome.status == "succeeded"
    assert api.seen[-1].path == "/deals/D-1?client_secret=cs-literal-1&page=2"
    with rt.sessions() as s:
        notify = s.scalar(select(RunStep).where(RunStep.step_id == "notify"))
        logged = str(notify.input) + str(notify.output)
    assert TOKEN not in logged and "cs-literal-1" not in logged
    assert notify.output["body"] == {
        "received": {"h": "••••••"},  # "Bearer <token>": a credential as a whole
        "debug": "caller identified by •••••• (ok)",
    }
    assert notify.input["url"] == "/deals/D-1?client_secret=••••••&page=2"
    assert notify.resume_sealed is not None  # the real answer is kept, sealed, for a retry


def test_a_connection_secret_quoted_by_a_refusal_is_masked_in_the_step_and_run_errors(rt, client):
    with fake_api() as api:
        api.script = [(401, {})]
        api.answer = lambda seen: {"message": f"{seen.headers['Authorization']} has expired"}
        run_id, outcome = _notify_run(rt, client, api)
    assert outcome.status == "failed"
    with rt.sessions() as s:
        notify = s.scalar(select(RunStep).where(RunStep.step_id == "notify"))
        run = s.get_one(Run, run_id)
        assert "answered 401" in notify.error["message"]
        assert TOKEN not in str(notify.error) and TOKEN not in str(run.error)
        assert "•••••• has expired" in run.error["message"]


def test_a_url_whose_host_cannot_be_read_fails_the_run_at_once_as_configuration(rt, client):
    flow = {
        **DEMO_FLOW,
        "steps": [
            *DEMO_FLOW["steps"],
            {
                "id": "notify",
                "action": "http.request",
                "input": {"method": "GET", "url": "http://[::1/x"},
            },
        ],
    }
    http = HttpClient(rt.sessions, rt.secrets, Allowed())
    [run_id] = post_deal(client, make_hook(rt, flow), deal()).json["run_ids"]

    outcome = runner.execute_run(
        rt.sessions, rt.registry, run_id, tools=runner.Tools(rt.services, http)
    )

    assert outcome.status == "failed"  # not retried, not an internal error
    with rt.sessions() as s:
        run = s.get_one(Run, run_id)
        assert run.error["class"] == "configuration"
        assert "'http://[::1/x' is not a valid URL" in run.error["message"]


def test_a_url_under_a_connection_whose_host_cannot_be_read_says_so(rt):
    with rt.sessions.begin() as s:
        save_connection(s, rt.secrets, name="crm", base_url="https://api.crm.example/v1")
    http = HttpClient(rt.sessions, rt.secrets, Allowed())

    with pytest.raises(ConfigurationError, match="is not a valid URL"):
        http.request("GET", "https://api.crm.example:99999/v1/deals", connection="crm")
