"""Webhooks registered at the source follow the flows: registered (once) while an enabled flow
uses them, renewed before they expire, removed with the last flow. The source is a local API
that records what it is asked, as Pipedrive's and Zoho's webhook endpoints would be."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

import actions
import triggers
from connector import admin, lifecycle, runtime
from connector.errors import ConfigurationError
from connector.http_client import save_connection
from connector.models import Connection, Flow, TriggerState
from connector.registry import Registry
from connector.runtime import Runtime, build_runtime
from connector.spec import PollContext
from database import utcnow
from tests.connector.test_connection_hooks import EXAMPLE_WON
from tests.fake_api import FakeApi, fake_api
from web.demo import DEMO_FLOW

EXPIRES = utcnow() + timedelta(days=7)


def subscribe(ctx: PollContext, url: str) -> dict[str, Any]:
    answer = ctx.http.request("POST", "/webhooks", connection=ctx.connection, payload={"url": url})
    if answer.status >= 400:
        raise ConfigurationError(f"POST /webhooks answered {answer.status}")
    return {"webhook_id": "wh-1", "expires_at": EXPIRES.isoformat()}


def renew(ctx: PollContext, state: dict[str, Any]) -> dict[str, Any]:
    ctx.http.request("PUT", f"/webhooks/{state['webhook_id']}", connection=ctx.connection)
    return {"expires_at": (EXPIRES + timedelta(days=7)).isoformat()}


def unsubscribe(ctx: PollContext, state: dict[str, Any]) -> None:
    ctx.http.request("DELETE", f"/webhooks/{state['webhook_id']}", connection=ctx.connection)


MANAGED = dataclasses.replace(
    EXAMPLE_WON, subscribe=subscribe, unsubscribe=unsubscribe, renew=renew
)


@pytest.fixture
def api() -> Iterator[FakeApi]:
    with fake_api() as server:
        yield server


@pytest.fixture
def crm_rt(settings, rt, api) -> Iterator[Runtime]:
    built = build_runtime(
        settings.with_(http_allow="127.0.0.1"),
        Registry.build([*triggers.ALL, MANAGED], actions.ALL, actions.SERVICES),
    )
    runtime.install(built)
    with built.sessions.begin() as s:
        save_connection(s, built.secrets, name="crm", base_url=api.url)
        s.execute(update(Connection).values(inbound_token="tok" * 8))
    yield built
    runtime.install(rt)
    built.close()


def add_flow(rt: Runtime, name: str) -> int:
    flow = {**DEMO_FLOW, "name": name, "trigger": {"key": MANAGED.key, "connection": "crm"}}
    with rt.sessions.begin() as s:
        return admin.save_flow(s, rt.registry, flow, enabled=True).flow.id


def disable(rt: Runtime, flow_id: int) -> None:
    with rt.sessions.begin() as s:
        s.execute(update(Flow).where(Flow.id == flow_id).values(enabled=False))


def calls(api: FakeApi) -> list[tuple[str, str]]:
    return [(seen.method, seen.path) for seen in api.seen]


def test_the_webhook_is_registered_once_for_all_flows_and_removed_with_the_last(crm_rt, api):
    first, second = add_flow(crm_rt, "A"), add_flow(crm_rt, "B")

    lifecycle.sync(crm_rt)
    lifecycle.sync(crm_rt)  # nothing new to do
    assert calls(api) == [("POST", "/webhooks")]
    assert api.seen[0].body == {"url": f"{crm_rt.settings.public_url}/hooks/{'tok' * 8}"}

    disable(crm_rt, first)
    lifecycle.sync(crm_rt)
    assert len(api.seen) == 1  # one flow still uses it
    disable(crm_rt, second)
    lifecycle.sync(crm_rt)

    assert calls(api) == [("POST", "/webhooks"), ("DELETE", "/webhooks/wh-1")]
    with crm_rt.sessions() as s:
        assert s.scalars(select(TriggerState)).all() == []


def test_a_subscription_about_to_expire_is_renewed_and_not_before(crm_rt, api):
    add_flow(crm_rt, "A")
    lifecycle.sync(crm_rt)

    assert lifecycle.sync(crm_rt, now=EXPIRES - timedelta(days=3))["renewed"] == []
    done = lifecycle.sync(crm_rt, now=EXPIRES - timedelta(hours=12))

    assert len(done["renewed"]) == 1
    assert calls(api)[-1] == ("PUT", "/webhooks/wh-1")
    assert lifecycle.sync(crm_rt, now=EXPIRES - timedelta(hours=12))["renewed"] == []


def test_a_source_that_fails_is_asked_again_at_the_next_turn(crm_rt, api):
    add_flow(crm_rt, "A")
    api.script = [(403, {})]  # say, the CRM user lacks the right for a moment

    assert lifecycle.sync(crm_rt)["subscribed"] == []
    assert len(lifecycle.sync(crm_rt)["subscribed"]) == 1

    assert calls(api) == [("POST", "/webhooks"), ("POST", "/webhooks")]
