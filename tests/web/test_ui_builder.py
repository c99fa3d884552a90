"""The flow builder's server side: the catalog its forms are made from, checks and trials of a
document as it is built, and "Nuevo flujo"."""

from __future__ import annotations

import copy
import json

from connector.models import Flow
from invoicing.models import Invoice
from tests.conftest import drain
from tests.factories import csrf, deal, make_hook, post_deal, signed_in
from web.demo import DEMO_FLOW


def ask(client, path: str, body: dict):
    return client.post(path, json=body, headers={"X-CSRF-Token": csrf(client)})


def test_the_catalog_names_every_trigger_and_action_in_spanish_with_forms_and_samples(rt, client):
    signed_in(rt, client, "viewer")
    catalog = client.get("/ui/builder/catalog.json").json

    assert {t["key"] for t in catalog["triggers"]} == set(rt.registry.triggers)
    assert {a["key"] for a in catalog["actions"]} == set(rt.registry.actions)
    draft = next(a for a in catalog["actions"] if a["key"] == "invoicing.create_draft_invoice")
    assert draft["title"] == "Crear factura en borrador"
    assert draft["app"] == {"key": "invoicing", "name": "Facturación de Puente"}
    customer = draft["input"]["properties"]["customer"]  # $refs inlined for the form
    assert customer["x-title-es"] == "Cliente" and "tax_id" in customer["properties"]
    hubspot = next(t for t in catalog["triggers"] if t["key"] == "hubspot.deal_won")
    won = next(t for t in catalog["triggers"] if t["key"] == "webhook.deal_won")
    assert hubspot["provider"] == "hubspot" and won["provider"] is None
    assert won["sample"]["customer"]["tax_id"] == "B12345674"  # what the field picker shows
    english = client.get("/ui/builder/catalog.json?lang=en").json
    assert (
        next(a["title"] for a in english["actions"] if a["key"] == draft["key"]) != draft["title"]
    )


def test_checking_names_each_problem_in_spanish_and_previews_the_inputs(rt, client):
    signed_in(rt, client, "editor")
    flow = copy.deepcopy(DEMO_FLOW)
    flow["steps"][1]["input"]["external_ref"] = "trigger.deal_id"  # a path typed as text

    answer = ask(client, "/ui/builder/check", {"document": flow})

    assert answer.status_code == 200 and answer.json["ok"] is False
    [problem] = answer.json["errors"]
    assert problem["path"] == "steps[1].input.external_ref"
    assert "Tomar de un campo" in problem["message"]
    assert answer.json["preview"]["invoice"]["customer"]["tax_id"] == "B12345674"
    fine = ask(client, "/ui/builder/check", {"document": DEMO_FLOW}).json
    assert fine["ok"] is True and fine["errors"] == []


def test_a_trial_runs_the_flow_on_the_sample_and_leaves_nothing(rt, client):
    signed_in(rt, client, "editor")

    whole = ask(client, "/ui/builder/dry-run", {"document": DEMO_FLOW}).json
    first = ask(client, "/ui/builder/dry-run", {"document": DEMO_FLOW, "until": "deal"}).json
    broken = ask(client, "/ui/builder/dry-run", {"document": {"name": "x"}})

    assert whole["status"] == "succeeded" and [s["id"] for s in whole["steps"]] == [
        "deal",
        "invoice",
    ]
    assert [s["id"] for s in first["steps"]] == ["deal"]
    assert broken.status_code == 422 and broken.json["errors"]
    with rt.sessions() as s:
        assert s.query(Invoice).count() == 0


def test_a_script_without_the_form_token_is_refused(rt, client):
    signed_in(rt, client, "editor")
    answer = client.post("/ui/builder/check", json={"document": DEMO_FLOW})
    assert answer.status_code == 400


def test_nuevo_flujo_creates_a_disabled_flow_and_shows_its_webhook_secret_once(rt, client):
    signed_in(rt, client, "editor")
    page = client.get("/ui/flows/new")
    assert page.status_code == 200 and "Nuevo flujo" in page.text

    created = client.post(
        "/ui/flows/new", data={"document": json.dumps(DEMO_FLOW), "csrf_token": csrf(client)}
    )
    flow_page = client.get(created.headers["Location"])
    again = client.get(created.headers["Location"])

    assert created.status_code == 302
    assert "whsec_" in flow_page.text and "whsec_" not in again.text
    with rt.sessions() as s:
        flow = s.query(Flow).one()
        assert not flow.enabled and flow.current_version.document["name"] == DEMO_FLOW["name"]
    nothing = client.post("/ui/flows/new", data={"document": "", "csrf_token": csrf(client)})
    assert nothing.status_code == 422 and "No ha llegado ningún flujo" in nothing.text


def test_a_real_example_is_the_latest_item_received_and_checks_run_on_it(rt, client):
    signed_in(rt, client, "editor")
    none_yet = client.get("/ui/builder/sample.json?trigger=webhook.deal_won")
    assert none_yet.status_code == 404 and "Aún no ha llegado nada" in none_yet.json["error"]
    hook = make_hook(rt)
    real = deal(deal_id="D-REAL")
    real["customer"]["tax_id"] = "A58818501"
    post_deal(client, hook, real)
    drain(rt)

    loaded = client.get("/ui/builder/sample.json?trigger=webhook.deal_won").json
    checked = ask(client, "/ui/builder/check", {"document": DEMO_FLOW, "sample": loaded["sample"]})
    tried = ask(client, "/ui/builder/dry-run", {"document": DEMO_FLOW, "sample": loaded["sample"]})

    assert loaded["sample"]["deal_id"] == "D-REAL"
    assert checked.json["preview"]["invoice"]["customer"]["tax_id"] == "A58818501"
    assert tried.json["steps"][1]["input"]["external_ref"] == "D-REAL"


def test_a_costly_expression_is_named_in_spanish_by_the_check_and_the_trial(rt, client):
    signed_in(rt, client, "editor")
    flow = copy.deepcopy(DEMO_FLOW)
    flow["steps"][1]["input"]["notes"] = {"$expr": "`1` | [@, @]" + " | [@, @]" * 29}

    checked = ask(client, "/ui/builder/check", {"document": flow}).json
    tried = ask(client, "/ui/builder/dry-run", {"document": flow}).json

    [problem] = checked["errors"]
    assert problem["path"] == "steps[1].input.notes"
    assert "genera un valor demasiado grande: más de 1000000 caracteres" in problem["message"]
    assert tried["status"] == "failed"
    assert "genera un valor demasiado grande" in tried["steps"][-1]["error"]
