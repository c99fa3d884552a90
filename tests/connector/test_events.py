"""Internal events as triggers: an invoice paid in the core starts its flows exactly once per
payment, also when the dispatcher is killed mid-delivery and when Redis is flushed."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

import actions
import triggers
from connector import admin, events, jobs
from connector.models import Event, Run, RunStatus
from connector.registry import Registry
from connector.runtime import Runtime, build_runtime
from connector.spec import DomainEvent, ParsedItem
from invoicing.models import Invoice
from invoicing.service import Invoicing
from tests.conftest import drain
from tests.connector.test_sweep import overdue
from tests.factories import make_issued
from tests.fake_api import FakeApi, fake_api
from tests.processes import wait_for
from triggers.invoicing import INVOICE_PAID


def paid_flow(api_url: str) -> dict[str, Any]:
    """Invoice paid → tell the CRM (a local API) the invoice's number and "Cobrado"."""
    return {
        "name": "Factura cobrada → CRM",
        "trigger": {"key": "invoicing.invoice_paid"},
        "steps": [
            {
                "id": "crm",
                "action": "http.request",
                "input": {
                    "method": "POST",
                    "url": f"{api_url}/deals/status",
                    "body": {
                        "deal": {"$expr": "trigger.external_ref"},
                        "invoice": {"$expr": "trigger.number"},
                        "status": "Cobrado",
                    },
                },
            }
        ],
    }


@pytest.fixture
def api() -> Iterator[FakeApi]:
    with fake_api() as server:
        yield server


def add_flow(rt: Runtime, flow: dict[str, Any]) -> int:
    with rt.sessions.begin() as s:
        saved = admin.save_flow(s, rt.registry, flow, enabled=True)
        assert saved.report.errors == []
        return saved.flow.id


def pay(rt: Runtime, invoice_id: int, amount: str) -> None:
    with rt.sessions.begin() as s:
        Invoicing(s).record_payment(invoice_id, Decimal(amount), date(2026, 12, 20))


def paid_invoice(rt: Runtime) -> int:
    invoice_id = make_issued(rt)
    with rt.sessions() as s:
        total = s.get_one(Invoice, invoice_id).amount_due
    pay(rt, invoice_id, str(total))
    return invoice_id


def count(rt: Runtime, model: Any) -> int:
    with rt.sessions() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def test_an_invoice_paid_starts_its_flow_once_and_the_crm_hears_of_it(local_rt, api):
    add_flow(local_rt, paid_flow(api.url))
    invoice_id = paid_invoice(local_rt)

    run_ids = events.dispatch(local_rt)
    assert events.dispatch(local_rt) == []  # handed on once
    drain(local_rt)

    assert len(run_ids) == 1
    with local_rt.sessions() as s:
        run = s.get_one(Run, run_ids[0])
        assert run.status == RunStatus.SUCCEEDED
        assert run.entity_key == f"invoice:{invoice_id}"
        assert (run.key("invoice_ref") or "").startswith("F")
    [call] = api.seen
    assert call.body["status"] == "Cobrado" and call.body["invoice"].startswith("F")


def test_events_with_no_flow_on_their_trigger_are_handed_on_without_runs(local_rt):
    paid_invoice(local_rt)

    assert events.dispatch(local_rt) == []

    assert (count(local_rt, Event), count(local_rt, Run)) == (0, 0)
    assert events.dispatch(local_rt) == []


def test_two_flows_on_the_event_each_run_once_and_a_disabled_one_not_at_all(local_rt, api):
    add_flow(local_rt, paid_flow(api.url))
    add_flow(local_rt, {**paid_flow(api.url), "name": "Otra"})
    with local_rt.sessions.begin() as s:
        admin.save_flow(s, local_rt.registry, {**paid_flow(api.url), "name": "Apagado"})
    paid_invoice(local_rt)

    assert len(events.dispatch(local_rt)) == 2
    drain(local_rt)

    assert len(api.seen) == 2


def test_runs_queued_by_the_dispatcher_survive_a_redis_flush(local_rt, api):
    add_flow(local_rt, paid_flow(api.url))
    paid_invoice(local_rt)
    run_ids = events.dispatch(local_rt)

    local_rt.redis.flushdb()  # the queued jobs are gone; the runs are in the database
    overdue(local_rt, *run_ids)
    assert jobs.sweep(local_rt) == run_ids
    drain(local_rt)
    assert events.dispatch(local_rt) == []
    assert jobs.sweep(local_rt) == []

    assert len(api.seen) == 1
    assert count(local_rt, Run) == 1


def _slow_dispatch(settings: Any, marker: str) -> None:
    """In a child process: dispatch with a trigger that stops mid-delivery, inside the
    transaction, until the parent kills it."""

    def stuck(event: DomainEvent) -> list[ParsedItem]:
        Path(marker).write_text("inside")
        time.sleep(60)
        return []

    slow = dataclasses.replace(INVOICE_PAID, from_event=stuck)
    others = [t for t in triggers.ALL if t.key != slow.key]
    registry = Registry.build([*others, slow], actions.ALL, actions.SERVICES)
    events.dispatch(build_runtime(settings, registry))


def test_a_dispatcher_killed_mid_delivery_leaves_the_event_to_the_next_one(
    local_rt, api, tmp_path, settings
):
    add_flow(local_rt, paid_flow(api.url))
    paid_invoice(local_rt)
    marker = tmp_path / "inside"
    child = multiprocessing.get_context("fork").Process(
        target=_slow_dispatch, args=(settings, str(marker))
    )
    child.start()
    try:
        wait_for(marker.exists, 20, "the child to be inside its transaction")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)

    # PostgreSQL notices the dead connection and releases its locks in a moment.
    run_ids = wait_for(lambda: events.dispatch(local_rt), 20, "the event to be handed on")
    drain(local_rt)

    assert len(run_ids) == 1
    assert events.dispatch(local_rt) == []
    assert len(api.seen) == 1


def test_each_payment_that_settles_an_invoice_is_its_own_event(local_rt, api):
    """Paid, then (after a rectification or refund in real life) paid again: two events."""
    add_flow(local_rt, paid_flow(api.url))
    first = paid_invoice(local_rt)
    second = paid_invoice(local_rt)

    run_ids = events.dispatch(local_rt)
    drain(local_rt)

    assert len(run_ids) == 2
    with local_rt.sessions() as s:
        entities = {s.get_one(Run, r).entity_key for r in run_ids}
    assert entities == {f"invoice:{first}", f"invoice:{second}"}
    assert len(api.seen) == 2


def test_the_invoice_status_trigger_says_pendiente_when_issued_and_cobrado_when_paid(local_rt):
    with local_rt.sessions.begin() as s:
        saved = admin.save_flow(
            s,
            local_rt.registry,
            {
                "name": "Estado",
                "trigger": {"key": "invoicing.invoice_status"},
                "steps": [
                    {
                        "id": "paid",
                        "filter": {"$expr": "trigger.payment_status == 'Cobrado'"},
                        "explain": "todavía no está cobrada",
                    }
                ],
            },
            enabled=True,
        )
        assert saved.report.errors == []
    invoice_id = make_issued(local_rt)  # issued: Pendiente
    issued = events.dispatch(local_rt)
    with local_rt.sessions() as s:
        total = s.get_one(Invoice, invoice_id).amount_due
    pay(local_rt, invoice_id, str(total))
    paid = events.dispatch(local_rt)
    drain(local_rt)

    with local_rt.sessions() as s:
        runs = [s.get_one(Run, run_id) for run_id in issued + paid]
        assert [r.event.payload["payment_status"] for r in runs] == ["Pendiente", "Cobrado"]
        assert [r.status for r in runs] == [RunStatus.STOPPED, RunStatus.SUCCEEDED]
