"""The run log for people: find runs by deal, invoice or tax id; replay with corrected data."""

from __future__ import annotations

import copy
import json

from sqlalchemy import select

from connector.models import Run
from tests.conftest import drain
from tests.factories import csrf, deal, make_hook, post_deal, signed_in
from web.demo import DEMO_FLOW


def test_a_failed_run_is_corrected_and_replayed_from_its_page(rt, client):
    signed_in(rt, client)
    hook = make_hook(rt)
    payload = deal(deal_id="D-fix")
    payload["customer"]["tax_id"] = "12345678A"
    [run_id] = post_deal(client, hook, payload).json["run_ids"]
    drain(rt)
    page = client.get(f"/ui/runs/{run_id}").get_data(as_text=True)
    assert "Reintentar" in page and "Historial de intentos" in page

    bad = client.post(
        f"/ui/runs/{run_id}/replay",
        data={"trigger": "{no", "csrf_token": csrf(client)},
        follow_redirects=True,
    )
    assert "no son un objeto JSON válido" in bad.get_data(as_text=True)
    fixed = {**payload, "customer": {**payload["customer"], "tax_id": "12345678Z"}}
    done = client.post(
        f"/ui/runs/{run_id}/replay",
        data={"trigger": json.dumps(fixed), "csrf_token": csrf(client)},
        follow_redirects=True,
    )
    assert "Ejecución en cola de nuevo." in done.get_data(as_text=True)
    drain(rt)

    with rt.sessions() as s:
        run = s.get_one(Run, run_id)
        assert run.status == "succeeded" and run.key("customer_tax_id") == "12345678Z"
    listed = client.get("/ui/runs?q=12345678z").get_data(as_text=True)
    assert f"/ui/runs/{run_id}" in listed
    assert f"/ui/runs/{run_id}" in client.get("/ui/runs?q=D-fix").get_data(as_text=True)
    assert f"/ui/runs/{run_id}" not in client.get("/ui/runs?q=D-other").get_data(as_text=True)
    with rt.sessions() as s:
        assert s.scalars(select(Run)).one().replays == 1


def test_a_run_refused_by_the_action_schema_explains_each_field_in_the_pages_language(rt, client):
    signed_in(rt, client)
    flow = copy.deepcopy(DEMO_FLOW)
    flow["steps"][1]["input"]["currency"] = "USD"  # the checks would refuse it: enabled anyway
    hook = make_hook(rt, flow, checked=False)
    [run_id] = post_deal(client, hook, deal()).json["run_ids"]
    drain(rt)

    page = client.get(f"/ui/runs/{run_id}").get_data(as_text=True)
    assert "<code>currency</code></td><td>debe ser uno de estos: EUR</td>" in page
    english = client.get(f"/ui/runs/{run_id}?lang=en").get_data(as_text=True)
    assert "<code>currency</code></td><td>must be one of: EUR</td>" in english
