"""Connections page: an editor adds HubSpot with the guided form (against a local stand-in of
HubSpot's API), tests it, copies the webhook address with where to paste it, and installs the
ready-made flows in two clicks; secrets are never shown again."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest

from connector.models import Connection, Flow
from connector.runtime import Runtime
from tests.factories import csrf, signed_in
from tests.fakes.hubspot import FakeHubSpot, fake_hubspot
from web import create_app

CLIENT_SECRET = "5e1f7a9b-0000-4000-8000-00000000abcd"


@pytest.fixture
def crm() -> Iterator[FakeHubSpot]:
    with fake_hubspot() as api:
        yield api


@pytest.fixture
def ui(local_rt: Runtime):
    client = create_app(runtime=local_rt).test_client()
    signed_in(local_rt, client, "editor")
    return client


def text(answer) -> str:
    return html.unescape(answer.get_data(as_text=True))


def add_hubspot(ui, crm: FakeHubSpot, **changes: str):
    form = {
        "csrf_token": csrf(ui),
        "type": "hubspot",
        "name": "hubspot",
        "base_url": crm.url,
        "secret.access_token": crm.token,
        "secret.client_secret": CLIENT_SECRET,
        "settings.tax_id_field": "nif",
        "settings.won_stages": "closedwon, 1095783",
        **changes,
    }
    return ui.post("/ui/connections/new?type=hubspot", data=form)


def test_the_form_of_each_crm_says_in_spanish_where_to_find_each_value(local_rt, ui):
    listing = text(ui.get("/ui/connections"))
    for name in ("HubSpot", "Salesforce", "Zoho CRM", "Pipedrive"):
        assert name in listing
    form = text(ui.get("/ui/connections/new?type=hubspot"))
    assert "Configuración → Integraciones → Apps privadas" in form
    assert 'type="password" name="secret.access_token"' in form


def test_an_editor_adds_hubspot_tests_it_and_installs_its_flows(local_rt, ui, crm):
    saved = add_hubspot(ui, crm)
    assert saved.status_code == 302 and saved.headers["Location"] == "/ui/connections/hubspot"

    page = text(ui.get(saved.headers["Location"]))
    assert "Conexión guardada" in page
    [address] = re.findall(r'data-testid="webhook-url">([^<]+)<', page)
    assert address.startswith(f"{local_rt.settings.public_url}/hooks/")
    assert "URL de destino" in page  # where to paste it in HubSpot
    assert crm.token not in page and CLIENT_SECRET not in page  # secrets never shown again
    assert "guardado: déjalo vacío para conservarlo" in page

    tested = ui.post("/ui/connections/hubspot/test", data={"csrf_token": csrf(ui)})
    assert "Conexión correcta" in text(ui.get(tested.headers["Location"]))

    ui.post(
        "/ui/connections/hubspot/install/hubspot.deal_won_to_invoice",
        data={"csrf_token": csrf(ui)},
    )
    page = text(ui.get("/ui/connections/hubspot"))
    assert "Flujo instalado y activado" in page
    with local_rt.sessions() as s:
        [flow] = s.query(Flow).all()
        conn = s.query(Connection).one()
        assert flow.enabled and flow.current_version.document["trigger"]["connection"] == "hubspot"
        assert conn.settings["won_stages"] == ["closedwon", "1095783"]
    assert flow.name in page  # listed among the flows using it


def test_saving_again_without_secrets_keeps_them_and_a_wrong_token_is_said_plainly(
    local_rt, ui, crm
):
    add_hubspot(ui, crm)
    kept = ui.post(
        "/ui/connections/hubspot",
        data={"csrf_token": csrf(ui), "base_url": crm.url, "settings.tax_id_field": "cif"},
    )
    assert kept.status_code == 302
    tested = ui.post("/ui/connections/hubspot/test", data={"csrf_token": csrf(ui)})
    assert "Conexión correcta" in text(ui.get(tested.headers["Location"]))

    ui.post(
        "/ui/connections/hubspot",
        data={"csrf_token": csrf(ui), "base_url": crm.url, "secret.access_token": "pat-wrong"},
    )
    failed = ui.post("/ui/connections/hubspot/test", data={"csrf_token": csrf(ui)})
    assert "La conexión no funciona" in text(ui.get(failed.headers["Location"]))


def test_bad_values_are_refused_next_to_their_field_in_spanish(local_rt, ui, crm):
    bad_url = add_hubspot(ui, crm, base_url="api.hubapi.com")
    assert bad_url.status_code == 422
    assert 'aria-invalid="true"' in text(bad_url)
    bad_name = add_hubspot(ui, crm, name="!mal")
    assert bad_name.status_code == 422 and "El nombre debe empezar" in text(bad_name)
    add_hubspot(ui, crm)
    taken = add_hubspot(ui, crm)
    assert taken.status_code == 422 and "Ya hay una conexión con ese nombre" in text(taken)
    with local_rt.sessions() as s:
        assert s.query(Connection).count() == 1


def test_the_flows_listed_on_a_connection_are_those_naming_it_exactly(local_rt, ui, crm):
    add_hubspot(ui, crm)
    add_hubspot(ui, crm, name="hub")  # a name inside the other's
    ui.post(
        "/ui/connections/hubspot/install/hubspot.deal_won_to_invoice",
        data={"csrf_token": csrf(ui)},
    )
    assert "Flujo instalado y activado" in text(ui.get("/ui/connections/hubspot"))
    page = text(ui.get("/ui/connections/hub"))
    assert "HubSpot: oportunidad ganada → factura en borrador</a>" not in page
