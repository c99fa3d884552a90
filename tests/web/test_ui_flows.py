"""The flow editor: problems named by field, a preview, drafts that stay off, a dry run."""

from __future__ import annotations

import copy
import html
import json
import re

from sqlalchemy import func, select

from connector import admin
from connector.models import Flow, FlowVersion
from invoicing.models import Invoice
from tests.factories import csrf, make_hook, signed_in
from web.demo import DEMO_FLOW


def post(client, flow_id, document, do):
    return client.post(
        f"/ui/flows/{flow_id}",
        data={
            "document": document if isinstance(document, str) else json.dumps(document),
            "do": do,
            "csrf_token": csrf(client),
        },
        follow_redirects=True,
    )


def test_checking_a_flow_names_each_problem_and_previews_the_mapped_inputs(rt, client):
    signed_in(rt, client)
    hook = make_hook(rt)
    broken = copy.deepcopy(DEMO_FLOW)
    broken["steps"][1]["input"]["customer"] = {"$expr": "trigger.cliente"}

    good = post(client, hook.flow_id, DEMO_FLOW, "check").get_data(as_text=True)
    assert "Sin problemas: se puede activar." in good
    assert "Vista previa con los datos de ejemplo" in good and "B12345674" in good

    bad = post(client, hook.flow_id, broken, "check")
    assert bad.status_code == 200
    assert "steps[1].input.customer" in bad.get_data(as_text=True)
    assert "lee &#39;cliente&#39;, que no existe ahí" in bad.get_data(as_text=True)
    client.get("/ui/flows?lang=en")  # the same problem in English
    english = post(client, hook.flow_id, broken, "check").get_data(as_text=True)
    assert "reads &#39;cliente&#39;, which does not exist there" in english
    client.get("/ui/flows?lang=es")
    not_json = post(client, hook.flow_id, "{oops", "check")
    assert not_json.status_code == 422 and "JSON:" in not_json.get_data(as_text=True)


def test_an_enabled_flow_refuses_a_broken_version_and_a_draft_cannot_be_enabled(rt, client):
    signed_in(rt, client)
    hook = make_hook(rt)
    broken = copy.deepcopy(DEMO_FLOW)
    broken["steps"][1]["input"]["customer"] = {"$expr": "trigger.cliente"}

    refused = post(client, hook.flow_id, broken, "save")
    assert refused.status_code == 422
    assert "No se ha guardado: el flujo está activo" in refused.get_data(as_text=True)
    assert "lee &#39;cliente&#39;" in refused.get_data(as_text=True)  # the problem, listed
    client.post(f"/ui/flows/{hook.flow_id}/disable", data={"csrf_token": csrf(client)})
    saved = post(client, hook.flow_id, broken, "save").get_data(as_text=True)
    assert "Guardado como borrador" in saved
    enable = client.post(
        f"/ui/flows/{hook.flow_id}/enable", data={"csrf_token": csrf(client)}, follow_redirects=True
    ).get_data(as_text=True)
    assert "El flujo sigue inactivo: tiene problemas" in enable
    assert "lee &#39;cliente&#39;" in enable
    with rt.sessions() as s:
        assert s.get_one(Flow, hook.flow_id).enabled is False
        assert s.scalar(select(func.count()).select_from(FlowVersion)) == 2


def test_a_dry_run_from_the_editor_shows_each_step_and_leaves_nothing(rt, client):
    signed_in(rt, client)
    hook = make_hook(rt)
    page = post(client, hook.flow_id, DEMO_FLOW, "dry_run").get_data(as_text=True)
    assert "Probar sin efectos" in page and "Correcta" in page
    assert "invoicing.create_draft_invoice" in page and "3001.41" in page
    with rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Invoice)) == 0


def test_versions_show_what_changed_and_an_old_one_is_restored(rt, client):
    signed_in(rt, client, "editor")
    first = copy.deepcopy(DEMO_FLOW)
    second = copy.deepcopy(DEMO_FLOW)
    second["steps"][1]["input"]["notes"] = "Gracias por su confianza"
    with rt.sessions.begin() as s:
        flow = admin.save_flow(s, rt.registry, first).flow
        admin.save_flow(s, rt.registry, second, flow=flow)
        flow_id = flow.id

    page = html.unescape(client.get(f"/ui/flows/{flow_id}/versions").text)
    assert re.search(r'<span class="added">\+ +"notes": "Gracias por su confianza"', page)
    assert re.search(r'<span class="removed">- +"notes": \{', page)
    assert page.count("Restaurar esta versión") == 1  # not on the one in use

    restored = client.post(
        f"/ui/flows/{flow_id}/versions/1/restore", data={"csrf_token": csrf(client)}
    )
    assert restored.status_code == 302
    with rt.sessions() as s:
        row = s.get_one(Flow, flow_id)
        assert row.current_version.version == 3 and row.current_version.document == first


def test_a_costly_expression_is_named_in_spanish_and_reading_the_page_never_evaluates_it(
    rt, client, monkeypatch
):
    from connector import mapping

    signed_in(rt, client)
    hook = make_hook(rt)
    costly = copy.deepcopy(DEMO_FLOW)
    costly["steps"][1]["input"]["notes"] = {"$expr": "decimal('1E+10000000')"}

    checked = html.unescape(post(client, hook.flow_id, costly, "check").get_data(as_text=True))
    assert "steps[1].input.notes" in checked
    assert "genera un valor demasiado grande: más de 40 cifras" in checked

    def evaluated(*args, **kwargs):
        raise AssertionError("reading the flow's page evaluated an expression")

    monkeypatch.setattr(mapping, "evaluate", evaluated)
    page = client.get(f"/ui/flows/{hook.flow_id}")
    assert page.status_code == 200
    assert "«Comprobar» lo prueba con los datos de ejemplo" in html.unescape(page.text)
