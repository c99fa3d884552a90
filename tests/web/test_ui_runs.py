"""The run log for people: find runs by deal, invoice or tax id; replay with corrected data."""

from __future__ import annotations

import copy
import json
import re
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import select

from connector.models import Event, Flow, Run, RunKey
from connector.runtime import Runtime
from tests.conftest import drain
from tests.factories import csrf, deal, make_hook, post_deal, signed, signed_in
from web.demo import DEMO_FLOW
from web.ui import runs as runs_page


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


def listed(page: str) -> list[int]:
    """The runs a list page shows, in its order."""
    return [int(i) for i in re.findall(r'<a href="/ui/runs/(\d+)">', page)]


def add_runs(rt: Runtime, flow_id: int, created: list[datetime]) -> list[int]:
    """One run (and its event) per time, created in that order: ids ascend along the list."""
    with rt.sessions.begin() as s:
        version = s.scalar(select(Flow.current_version_id).where(Flow.id == flow_id))
        ids = []
        for moment in created:
            event = Event(source="test", trigger_key="webhook.deal_won", dedup_key=uuid.uuid4().hex)
            event.payload = {}
            s.add(event)
            s.flush()
            run = Run(
                event_id=event.id,
                flow_id=flow_id,
                flow_version_id=version,
                status="succeeded",
                created_at=moment,
            )
            s.add(run)
            s.flush()
            ids.append(run.id)
        return ids


def test_the_search_finds_a_run_by_every_key_name_a_trigger_or_action_declares(rt, client):
    signed_in(rt, client)
    hook = make_hook(rt)
    [run_id] = post_deal(client, hook, deal(deal_id="D-keys")).json["run_ids"]
    drain(rt)
    names = runs_page.key_names(rt.registry)
    with rt.sessions.begin() as s:
        written = set(s.scalars(select(RunKey.name).where(RunKey.run_id == run_id)))
        s.add_all(
            RunKey(run_id=run_id, name=name, value=f"REF-{i}-ABC") for i, name in enumerate(names)
        )

    assert written and written <= set(names)  # what the intake and the runner wrote
    assert {"deal_ref", "invoice_ref", "customer_tax_id", "company_ref"} <= set(names)
    for i, _ in enumerate(names):
        for typed in (f"REF-{i}-ABC", f"ref-{i}-abc"):  # as stored, or typed in lowercase
            assert listed(client.get(f"/ui/runs?q={typed}").get_data(as_text=True)) == [run_id]
    assert listed(client.get("/ui/runs?q=REF-99-ABC").get_data(as_text=True)) == []


def test_a_days_runs_are_listed_newest_first_by_creation_time_in_pages_that_never_overlap(
    rt, client, monkeypatch
):
    signed_in(rt, client)
    flow_id = make_hook(rt).flow_id

    def at(text: str) -> datetime:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)

    # 10 March 2026 in Madrid (UTC+1) runs from 9 March 23:00 UTC to 10 March 23:00 UTC. Two
    # runs share an instant and one was written after a later one (two intakes at once).
    before, first, noon_a, noon_b, morning, last, after = add_runs(
        rt,
        flow_id,
        [
            at("2026-03-09 22:59:59"),
            at("2026-03-09 23:00:00"),
            at("2026-03-10 11:00:00"),
            at("2026-03-10 11:00:00"),
            at("2026-03-10 08:00:00"),
            at("2026-03-10 22:59:59"),
            at("2026-03-10 23:00:00"),
        ],
    )
    monkeypatch.setattr(runs_page, "PAGE", 2)
    day = "/ui/runs?since=2026-03-10&until=2026-03-10"

    pages = [client.get(f"{day}&page={n}").get_data(as_text=True) for n in (1, 2, 3, 4)]

    assert [listed(p) for p in pages] == [[last, noon_b], [noon_a, morning], [first], []]
    assert ["page=2" in pages[0], "page=3" in pages[1], "page=4" in pages[2]] == [1, 1, 0]
    assert listed(client.get("/ui/runs?until=2026-03-09").get_data(as_text=True)) == [before]
    monkeypatch.setattr(runs_page, "PAGE", 5)  # a page exactly full: no next page offered
    whole = client.get(day).get_data(as_text=True)
    assert listed(whole) == [last, noon_b, noon_a, morning, first] and "page=2" not in whole
    assert listed(client.get("/ui/runs?since=2026-03-11").get_data(as_text=True)) == [after]


def test_the_run_list_pages_without_counting_the_whole_log(rt, client, monkeypatch):
    signed_in(rt, client)
    ids = add_runs(rt, make_hook(rt).flow_id, [datetime.now(UTC)] * 3)
    monkeypatch.setattr(runs_page, "PAGE", 2)
    seen: list[str] = []

    def record(conn, cursor, sql, *_):
        seen.append(sql)

    sa.event.listen(rt.engine, "before_cursor_execute", record)
    try:
        first = client.get("/ui/runs").get_data(as_text=True)
        second = client.get("/ui/runs?page=2").get_data(as_text=True)
    finally:
        sa.event.remove(rt.engine, "before_cursor_execute", record)

    assert (listed(first), listed(second)) == (ids[:0:-1], ids[:1])
    assert "page=2" in first and "page=3" not in second
    assert not [sql for sql in seen if "count(" in sql.lower()]
