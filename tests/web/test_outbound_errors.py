"""What goes wrong calling another server reaches people in plain words: the run log and
"Probar conexión" say it in Spanish (and in English on English pages), never the HTTP
library's insides, and never a key a URL carried."""

from __future__ import annotations

import html
import socket

import pytest

from connector.http_client import save_connection
from connector.runtime import Runtime
from tests.conftest import drain
from tests.factories import csrf, deal, make_api_key, make_hook, post_deal, signed_in
from tests.fake_api import fake_api
from web import create_app

QUERY_SECRET = "k3y-0f-the-acc0unt"


def closed_port() -> int:
    """A port of 127.0.0.1 nobody listens on (taken, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def text(answer) -> str:
    return html.unescape(answer.get_data(as_text=True))


def calling(url: str) -> dict:
    return {
        "name": "Avisar al CRM",
        "trigger": {"key": "webhook.deal_won"},
        "steps": [
            {"id": "notify", "action": "http.request", "input": {"method": "POST", "url": url}}
        ],
    }


@pytest.fixture
def ui(local_rt: Runtime):
    """Signed in on the runtime that may call 127.0.0.1 (where nothing listens here)."""
    client = create_app(runtime=local_rt).test_client()
    signed_in(local_rt, client)
    return client


def test_a_step_that_cannot_connect_is_explained_in_the_run_log_in_spanish(local_rt, ui):
    port = closed_port()
    hook = make_hook(local_rt, calling(f"http://127.0.0.1:{port}/deals?api_key={QUERY_SECRET}"))
    [run_id] = post_deal(ui, hook, deal()).json["run_ids"]
    drain(local_rt)

    spanish = text(ui.get(f"/ui/runs/{run_id}"))
    listed = text(ui.get("/ui/runs"))
    english = text(ui.get(f"/ui/runs/{run_id}?lang=en"))

    said = f"No se puede conectar con 127.0.0.1:{port}: comprueba la dirección"
    assert f"Temporal (se reintenta):</strong> {said}" in spanish  # the summary, and the table
    assert f"<td>{said}" in spanish
    assert "HTTPConnectionPool" not in spanish.split("<pre")[0]  # only in the step's raw log
    assert said[:40] in listed
    shown_in_english = english.split("<pre")[0]  # the step's raw log below has both texts
    assert "failed to connect" in shown_in_english and said not in shown_in_english
    assert QUERY_SECRET not in spanish + english + listed


def test_a_private_address_in_a_step_is_refused_with_what_to_do_in_spanish(rt, client):
    signed_in(rt, client)
    hook = make_hook(rt, calling("http://10.0.0.1/deals"))
    [run_id] = post_deal(client, hook, deal()).json["run_ids"]
    drain(rt)

    spanish = text(client.get(f"/ui/runs/{run_id}"))
    english = text(client.get(f"/ui/runs/{run_id}?lang=en"))

    assert "<code>url</code></td><td>No se llama a 10.0.0.1: es una dirección privada" in spanish
    assert "Usa la dirección pública del servicio" in spanish
    assert "resolves to a non-public address (10.0.0.1)" in english


def test_an_answer_refusing_the_step_says_in_spanish_where_to_look(local_rt, ui):
    with fake_api() as api:
        api.script = [(404, {})]
        hook = make_hook(local_rt, calling(f"{api.url}/deals/D-1"))
        [run_id] = post_deal(ui, hook, deal()).json["run_ids"]
        drain(local_rt)

    spanish = text(ui.get(f"/ui/runs/{run_id}")).split("<pre")[0]
    english = text(ui.get(f"/ui/runs/{run_id}?lang=en")).split("<pre")[0]

    host = api.url.removeprefix("http://")
    assert f"<code>url</code></td><td>{host} dice que esa dirección no existe" in spanish
    assert "revisa la URL y el método del paso" in spanish
    assert f"POST {api.url}/deals/D-1 answered 404" in english


def test_probar_conexion_says_in_spanish_why_the_server_cannot_be_reached(local_rt, ui):
    port = closed_port()
    with local_rt.sessions.begin() as s:
        save_connection(s, local_rt.secrets, name="erp", base_url=f"http://127.0.0.1:{port}/")
        save_connection(s, local_rt.secrets, name="interno", base_url="http://10.0.0.1/")
    headers = {"Authorization": f"Bearer {make_api_key(local_rt)}"}

    closed = ui.post("/ui/connections/erp/test", data={"csrf_token": csrf(ui)})
    shown = text(ui.get(closed.headers["Location"]))
    private = ui.post("/ui/connections/interno/test", data={"csrf_token": csrf(ui)})
    refused = text(ui.get(private.headers["Location"]))
    by_api = ui.post("/api/v1/connections/erp/test", headers=headers).json

    assert f"No se puede conectar con 127.0.0.1:{port}: comprueba la dirección" in shown
    assert "HTTPConnectionPool" not in shown
    assert "No se llama a 10.0.0.1: es una dirección privada o local" in refused
    assert by_api["ok"] is False and "failed to connect" in by_api["message"]
    assert f"No se puede conectar con 127.0.0.1:{port}" in by_api["message_es"]
