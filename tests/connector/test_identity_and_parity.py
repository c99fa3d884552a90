"""What a record is unique by is the trigger's, not a mapping's; a corrected replay corrects
what our database keeps; a dry run fails where and as a real run does."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from sqlalchemy import select

from connector import runner
from connector.dryrun import dry_run
from connector.models import Run, RunStatus, RunStep
from invoicing.models import Deal, Invoice
from tests.conftest import drain
from tests.factories import deal, make_api_key, make_hook, post_deal
from web.demo import DEMO_FLOW


def with_invoice_input(**changes: Any) -> dict[str, Any]:
    flow = copy.deepcopy(DEMO_FLOW)
    flow["steps"][1]["input"].update(changes)
    return flow


def test_two_deals_through_a_flow_mapping_one_reference_get_an_invoice_each(rt, client):
    """A new user typed the deal reference as a literal: both deals map the same text."""
    flow = with_invoice_input(external_ref="trigger.deal_id", source="crm")
    hook = make_hook(rt, flow, checked=False)  # the check refuses it; the runner must hold too
    first, second = deal(deal_id="D-A"), deal(deal_id="D-B")

    for payload in (first, second):
        post_deal(client, hook, payload)
    drain(rt)

    with rt.sessions() as s:
        runs = list(s.scalars(select(Run).order_by(Run.id)))
        invoices = list(s.scalars(select(Invoice).order_by(Invoice.id)))
        assert [r.status for r in runs] == [RunStatus.SUCCEEDED] * 2
        assert [i.external_ref for i in invoices] == ["D-A", "D-B"]
        assert [r.key("invoice_ref") for r in runs] == [str(i.id) for i in invoices]


def test_a_replay_with_a_corrected_trigger_corrects_the_deal_record_and_bills_once(rt, client):
    hook = make_hook(rt)
    payload = deal(amount="1.00", title="Importe mal tecleado")
    [run_id] = post_deal(client, hook, payload).json["run_ids"]
    drain(rt)
    corrected = {**payload, "amount": "2480.50", "title": "Implantación ERP Acme"}

    answer = client.post(
        f"/api/v1/runs/{run_id}/replay",
        headers={"Authorization": f"Bearer {make_api_key(rt)}"},
        json={"trigger": corrected},
    )
    assert answer.status_code == 202
    drain(rt)

    with rt.sessions() as s:
        [record] = s.scalars(select(Deal)).all()
        assert (str(record.amount), record.title) == ("2480.50", "Implantación ERP Acme")
        assert len(s.scalars(select(Invoice)).all()) == 1  # the draft is not made again
        steps = {st.step_id: st for st in s.scalars(select(RunStep))}
        assert steps["deal"].attempts == 2 and steps["deal"].input["amount"] == "2480.50"
        assert steps["invoice"].attempts == 1
        assert s.get_one(Run, run_id).status == RunStatus.SUCCEEDED


def test_a_replay_with_the_same_trigger_performs_no_finished_step_again(rt, client):
    hook = make_hook(rt)
    payload = deal()
    [run_id] = post_deal(client, hook, payload).json["run_ids"]
    drain(rt)

    client.post(
        f"/api/v1/runs/{run_id}/replay",
        headers={"Authorization": f"Bearer {make_api_key(rt)}"},
        json={"trigger": payload},
    )
    drain(rt)

    with rt.sessions() as s:
        assert [st.attempts for st in s.scalars(select(RunStep).order_by(RunStep.id))] == [1, 1]


# Each kind of mapping users get wrong, on the invoice step (or a filter before it).
BAD_MAPPINGS = {
    "a path to nothing": with_invoice_input(customer={"$expr": "trigger.cliente"}),
    "a text where a list goes": with_invoice_input(lines="trigger.lines"),
    "a function that fails on the data": with_invoice_input(
        notes={"$expr": "to_string(decimal(trigger.title))"}
    ),
    "a wrong type": with_invoice_input(discount_percent="diez"),
    "a filter on an impossible value": {
        **DEMO_FLOW,
        "steps": [
            {
                "id": "gate",
                "filter": {"$expr": "decimal(trigger.title) > `0`"},
                "explain": "sin importe",
            },
            *DEMO_FLOW["steps"],
        ],
    },
}


@pytest.mark.parametrize("kind", list(BAD_MAPPINGS))
def test_a_dry_run_fails_at_the_same_step_with_the_same_message_as_a_real_run(rt, client, kind):
    flow = BAD_MAPPINGS[kind]
    payload = deal()
    hook = make_hook(rt, flow, checked=False)
    [run_id] = post_deal(client, hook, payload).json["run_ids"]

    real = runner.execute_run(rt.sessions, rt.registry, run_id, tools=rt.tools)
    dry = dry_run(rt.sessions, rt.registry, flow, payload, rt.tools)

    assert real.status == "failed" and dry.status == "failed"
    with rt.sessions() as s:
        [failed] = s.scalars(select(RunStep).where(RunStep.status == "failed")).all()
        run_error = s.get_one(Run, run_id).error
    assert dry.steps[-1].id == failed.step_id
    assert dry.steps[-1].error == failed.error == run_error


def test_a_filter_on_zero_lets_the_run_go_on_as_jmespath_says(rt, client):
    flow = {
        **DEMO_FLOW,
        "steps": [
            {"id": "gate", "filter": {"$expr": "`0`"}, "explain": "nunca"},
            *DEMO_FLOW["steps"],
        ],
    }
    hook = make_hook(rt, flow)
    [run_id] = post_deal(client, hook, deal()).json["run_ids"]

    drain(rt)

    with rt.sessions() as s:
        assert s.get_one(Run, run_id).status == RunStatus.SUCCEEDED
    assert dry_run(rt.sessions, rt.registry, flow, deal(), rt.tools).status == "succeeded"


def test_a_second_webhook_cannot_take_another_integrations_deal(rt, client):
    """The source a payload names proves nothing: only the subscription it arrived on does."""
    real, other = make_hook(rt), make_hook(rt)
    cheap_line = {"description": "Nada", "quantity": 1, "unit_price": "0.01", "tax_rate": 21}
    forged = deal(deal_id="SHARED-77", source="webhook", amount="0.01", lines=[cheap_line])
    post_deal(client, other, forged)
    drain(rt)

    [run_id] = post_deal(client, real, deal(deal_id="SHARED-77")).json["run_ids"]
    drain(rt)

    with rt.sessions() as s:
        run = s.get_one(Run, run_id)
        assert run.status == RunStatus.SUCCEEDED, run.error
        invoices = {i.id: i for i in s.scalars(select(Invoice))}
        assert len(invoices) == 2  # the real deal got an invoice of its own
        mine = invoices[int(run.key("invoice_ref"))]
        assert str(mine.total) != "0.01" and len(mine.lines) == 2
        assert mine.source == f"webhook@subscription:{real.subscription_id}"
        assert len(s.scalars(select(Deal)).all()) == 2  # and a won-deal record of its own


def test_a_webhook_naming_a_crm_as_its_source_is_still_only_that_webhooks_deal(rt, client):
    hook = make_hook(rt)
    post_deal(client, hook, deal(deal_id="19283746501", source="hubspot"))
    drain(rt)

    with rt.sessions() as s:
        [invoice] = s.scalars(select(Invoice))
        assert invoice.source == f"hubspot@subscription:{hook.subscription_id}"
        assert invoice.source != "hubspot"  # what a HubSpot connection's deals are never keyed as
