"""Poll triggers: a JSON API without webhooks, read through a connection with a cursor kept in
the database. The first poll fires nothing; later polls start one run per new deal, once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import func, select

from connector import admin, polling
from connector.http_client import save_connection
from connector.models import Run, RunStatus, TriggerState
from connector.runtime import Runtime
from invoicing.models import Invoice
from tests.conftest import drain
from tests.factories import deal


class DealsApi:
    """A CRM-like list of won deals on 127.0.0.1: GET /deals?since=<won_at> answers the
    deals won after `since`, as a real list endpoint filters by its cursor."""

    def __init__(self) -> None:
        self.deals: list[dict[str, Any]] = []
        self.asked: list[str | None] = []
        self.fail_with: int | None = None
        self.url = ""

    def handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                query = parse_qs(urlparse(self.path).query)
                since = query.get("since", [None])[0]
                api.asked.append(since)
                if api.fail_with:
                    self.send_response(api.fail_with)
                    self.end_headers()
                    return
                rows = [d for d in api.deals if since is None or d["won_at"] > since]
                body = json.dumps({"items": rows}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


@pytest.fixture
def crm() -> Iterator[DealsApi]:
    api = DealsApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), api.handler())
    api.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield api
    server.shutdown()
    thread.join(5)


def polled_flow() -> dict[str, Any]:
    from web.demo import DEMO_FLOW

    return {
        **DEMO_FLOW,
        "name": "API sin webhooks → borrador",
        "trigger": {
            "key": "http.deals_polled",
            "connection": "crm",
            "config": {"path": "/deals", "items_field": "items", "cursor_field": "won_at"},
        },
    }


def setup(rt: Runtime, crm: DealsApi) -> int:
    with rt.sessions.begin() as s:
        save_connection(s, rt.secrets, name="crm", base_url=crm.url)
        saved = admin.save_flow(s, rt.registry, polled_flow(), enabled=True)
        assert saved.report.errors == []
        return saved.flow.id


def won(deal_id: str, at: str) -> dict[str, Any]:
    return deal(deal_id=deal_id, won_at=at, source="api")


def invoices(rt: Runtime) -> int:
    with rt.sessions() as s:
        return s.scalar(select(func.count()).select_from(Invoice)) or 0


def test_the_first_poll_records_what_exists_and_fires_nothing(local_rt, crm):
    crm.deals = [won("OLD-1", "2026-11-01T10:00:00+01:00")]
    flow_id = setup(local_rt, crm)

    assert polling.due(local_rt) == [flow_id]
    assert polling.poll_flow(local_rt, flow_id) == []

    assert polling.due(local_rt) == []  # not again before its interval
    with local_rt.sessions() as s:
        state = s.scalar(select(TriggerState).where(TriggerState.name == f"poll:flow:{flow_id}"))
        assert state is not None and state.state["cursor"] == "2026-11-01T10:00:00+01:00"
    assert invoices(local_rt) == 0


def test_later_polls_start_one_run_per_new_deal_and_read_past_the_cursor(local_rt, crm):
    crm.deals = [won("OLD-1", "2026-11-01T10:00:00+01:00")]
    flow_id = setup(local_rt, crm)
    polling.poll_flow(local_rt, flow_id)
    crm.deals += [
        won("NEW-1", "2026-12-01T10:00:00+01:00"),
        won("NEW-2", "2026-12-02T10:00:00+01:00"),
    ]

    run_ids = polling.poll_flow(local_rt, flow_id)
    again = polling.poll_flow(local_rt, flow_id)
    drain(local_rt)

    assert len(run_ids) == 2 and again == []
    assert crm.asked == [None, "2026-11-01T10:00:00+01:00", "2026-12-02T10:00:00+01:00"]
    with local_rt.sessions() as s:
        runs = list(s.scalars(select(Run).order_by(Run.id)))
        assert [r.status for r in runs] == [RunStatus.SUCCEEDED] * 2
        assert [r.key("deal_ref") for r in runs] == ["NEW-1", "NEW-2"]
    assert invoices(local_rt) == 2


def test_a_deal_listed_again_by_a_source_that_ignores_the_cursor_starts_nothing(local_rt, crm):
    flow_id = setup(local_rt, crm)
    polling.poll_flow(local_rt, flow_id)
    crm.deals = [won("NEW-1", "2026-12-01T10:00:00+01:00")]
    assert len(polling.poll_flow(local_rt, flow_id)) == 1
    with local_rt.sessions.begin() as s:  # as if the cursor were lost: the list is read anew
        s.query(TriggerState).update({TriggerState.state: {"cursor": None, "primed": True}})

    assert polling.poll_flow(local_rt, flow_id) == []


def test_a_failing_source_is_tried_again_at_the_next_turn_and_loses_nothing(local_rt, crm):
    flow_id = setup(local_rt, crm)
    polling.poll_flow(local_rt, flow_id)
    crm.deals = [won("NEW-1", "2026-12-01T10:00:00+01:00")]
    crm.fail_with = 503

    assert polling.poll_flow(local_rt, flow_id) == []
    crm.fail_with = None
    assert len(polling.poll_flow(local_rt, flow_id)) == 1


def test_a_flow_on_a_poll_trigger_needs_a_valid_config(local_rt):
    bad = {**polled_flow(), "trigger": {"key": "http.deals_polled", "config": {"path": "deals"}}}
    with local_rt.sessions.begin() as s:
        saved = admin.save_flow(s, local_rt.registry, bad)

    [error] = [e for e in saved.report.errors if e.path.startswith("trigger.config")]
    assert error.path == "trigger.config.path"
