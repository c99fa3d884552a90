"""The run log for people: find runs by deal, invoice or tax id; replay with corrected data."""

from __future__ import annotations

import copy
import json

from sqlalchemy import select

from connector.models import Run
from tests.conftest import drain
from tests.factories import csrf, deal, make_hook, post_deal, signed, signed_in
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


def test_runs_are_filtered_by_flow_and_day_and_failed_ones_replayed_together(rt, client):
    signed_in(rt, client, "operator")
    good = make_hook(rt)
    broken = copy.deepcopy(DEMO_FLOW)
    broken["name"] = "Flujo roto"
    broken["steps"][1]["input"]["currency"] = "USD"
    bad = make_hook(rt, broken, checked=False)
    [ok_run] = post_deal(client, good, deal()).json["run_ids"]
    failed = [post_deal(client, bad, deal()).json["run_ids"][0] for _ in range(2)]
    drain(rt)
    with rt.sessions() as s:
        assert {s.get_one(Run, i).status for i in failed} == {"failed"}

    by_flow = client.get(f"/ui/runs?flow={bad.flow_id}").get_data(as_text=True)
    today = client.get("/ui/runs?since=2026-01-01").get_data(as_text=True)
    before = client.get("/ui/runs?until=2020-01-01").get_data(as_text=True)
    assert all(f'href="/ui/runs/{i}"' in by_flow for i in failed)
    assert f'href="/ui/runs/{ok_run}"' not in by_flow
    assert f'href="/ui/runs/{ok_run}"' in today
    assert not any(f'href="/ui/runs/{i}"' in before for i in [ok_run, *failed])
    assert f'name="run_id" value="{failed[0]}"' in by_flow  # failed ones can be ticked…
    assert f'name="run_id" value="{ok_run}"' not in today  # …a succeeded one cannot

    none = client.post("/ui/runs/replay", data={"csrf_token": csrf(client)}, follow_redirects=True)
    assert "Marca primero las ejecuciones fallidas" in none.get_data(as_text=True)
    done = client.post(
        "/ui/runs/replay",
        data={"csrf_token": csrf(client), "run_id": [str(i) for i in [*failed, ok_run]]},
        follow_redirects=True,
    )
    assert "2 ejecuciones en cola de nuevo" in done.get_data(as_text=True)
    with rt.sessions() as s:
        assert [s.get_one(Run, i).replays for i in failed] == [1, 1]
        assert s.get_one(Run, ok_run).replays == 0  # a succeeded run is left alone


def test_refused_deliveries_are_listed_with_their_reason_in_spanish(rt, client):
    signed_in(rt, client, "viewer")
    hook = make_hook(rt)
    body = json.dumps(deal()).encode()
    forged = client.post(
        hook.path, data=body, headers=signed("whsec_" + "A" * 32, body)
    )  # signed with another secret
    no_customer = {k: v for k, v in deal(deal_id="D-BAD").items() if k != "customer"}
    unfit = post_deal(client, hook, no_customer)
    assert (forged.status_code, unfit.status_code) == (401, 422)

    page = client.get("/ui/runs/refused").get_data(as_text=True)

    assert "La firma no es válida o ha caducado" in page
    assert "Los datos no tienen el formato esperado" in page and "D-BAD" in page
    assert "test hook" in page  # the address, by its name
    assert "invalid_signature" not in page  # no internal key
