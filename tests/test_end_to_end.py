"""A signed 'deal won' becomes exactly one draft invoice, through Redis and a real worker."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import requests
from sqlalchemy import func, select
from werkzeug.serving import make_server

from connector.models import Event, Run, RunStatus
from connector.runtime import Runtime
from invoicing.models import Deal, Invoice
from tests.conftest import drain
from tests.factories import deal, make_hook, post_deal, signed


def count(rt: Runtime, model: type) -> int:
    with rt.sessions() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def test_a_signed_deal_won_becomes_a_draft_invoice_and_a_succeeded_run(rt, client):
    hook = make_hook(rt)
    payload = deal(deal_id="D-42")

    response = post_deal(client, hook, payload)

    assert response.status_code == 202
    [run_id] = response.json["run_ids"]
    with rt.sessions() as s:
        assert s.get_one(Run, run_id).status == RunStatus.QUEUED  # nothing heavy in the request
    assert rt.queue.count == 1

    drain(rt)

    with rt.sessions() as s:
        run = s.get_one(Run, run_id)
        assert run.status == RunStatus.SUCCEEDED, run.error
        assert run.key("deal_ref") == "D-42"
        deal_step, step = run.steps
        assert (deal_step.step_id, deal_step.status) == ("deal", "succeeded")
        assert deal_step.output["external_ref"] == "D-42"
        assert step.status == "succeeded"
        assert step.input["customer"]["tax_id"] == "B12345674"
        invoice = s.get_one(Invoice, step.output["invoice_id"])
        assert invoice.status == "draft"
        assert invoice.number is None
        assert invoice.external_ref == "D-42"
        assert invoice.customer.tax_id == "B12345674"
        # 20 h × 95.00 − 10 % = 1,710.00; + 770.50 → base 2,480.50; IVA 21 % = 520.905 → 520.91
        assert [line.base for line in invoice.lines] == [Decimal("1710.00"), Decimal("770.50")]
        assert (invoice.base_total, invoice.tax_total, invoice.total) == (
            Decimal("2480.50"),
            Decimal("520.91"),
            Decimal("3001.41"),
        )


def test_the_same_delivery_ten_times_makes_one_event_one_run_and_one_invoice(rt, client):
    hook = make_hook(rt)
    body = json.dumps(deal()).encode()
    headers = signed(hook.secret, body, msg_id="msg_same")

    answers = [client.post(hook.path, data=body, headers=headers) for _ in range(10)]
    drain(rt)
    answers += [client.post(hook.path, data=body, headers=headers)]  # after it has run, too

    assert answers[0].status_code == 202
    assert {a.status_code for a in answers[1:]} == {200}
    assert all(a.json["duplicate"] for a in answers[1:])
    assert {tuple(a.json["run_ids"]) for a in answers} == {tuple(answers[0].json["run_ids"])}
    assert (count(rt, Event), count(rt, Run), count(rt, Invoice)) == (1, 1, 1)


def test_concurrent_deliveries_of_one_event_make_one_invoice(rt, app):
    hook = make_hook(rt)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}{hook.path}"
    body = json.dumps(deal()).encode()
    headers = signed(hook.secret, body, msg_id="msg_concurrent")
    try:
        with ThreadPoolExecutor(max_workers=10) as pool:
            answers = list(
                pool.map(
                    lambda _: requests.post(url, data=body, headers=headers, timeout=30), range(10)
                )
            )
    finally:
        server.shutdown()
        thread.join(timeout=5)

    assert sorted(a.status_code for a in answers) == [200] * 9 + [202]
    assert len({tuple(a.json()["run_ids"]) for a in answers}) == 1
    drain(rt)
    assert (count(rt, Event), count(rt, Run), count(rt, Invoice)) == (1, 1, 1)


def test_the_same_deal_in_two_different_deliveries_is_billed_once(rt, client):
    hook = make_hook(rt)
    payload = deal()
    first = post_deal(client, hook, payload, msg_id="msg_a")
    second = post_deal(client, hook, payload, msg_id="msg_b")  # e.g. the deal was re-won
    drain(rt)

    assert first.status_code == second.status_code == 202
    assert count(rt, Run) == 2
    assert count(rt, Invoice) == 1
    with rt.sessions() as s:
        outputs = [r.steps[1].output for r in s.scalars(select(Run).order_by(Run.id))]
    assert [o["created"] for o in outputs] == [True, False]
    assert outputs[0]["invoice_id"] == outputs[1]["invoice_id"]


def test_a_bad_tax_id_fails_the_run_with_a_clear_message_and_no_invoice(rt, client):
    hook = make_hook(rt)
    payload = deal()
    payload["customer"]["tax_id"] = "12345678A"  # wrong control letter (should be Z)

    [run_id] = post_deal(client, hook, payload).json["run_ids"]
    drain(rt)

    with rt.sessions() as s:
        run = s.get_one(Run, run_id)
        assert run.status == RunStatus.FAILED
        assert run.error["class"] == "validation"
        assert run.error["errors"][0]["path"] == "customer.tax_id"
        assert "not a valid Spanish NIF/CIF/NIE" in run.error["errors"][0]["message"]
        # The won deal is still recorded, so the reports list it as never billed.
        assert [(st.step_id, st.status) for st in run.steps] == [
            ("deal", "succeeded"),
            ("invoice", "failed"),
        ]
    assert count(rt, Invoice) == 0
    assert count(rt, Deal) == 1
