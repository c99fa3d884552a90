"""The whole product as its people use it, in a browser (issue #12's walk):

the first admin signs in and invites an editor, an operator and a viewer; the editor connects
HubSpot (a local stand-in that follows HubSpot's API), builds "oportunidad ganada → factura en
borrador" with forms and the field picker only, makes the mistake people make and fixes it
from the Spanish explanation, tests the flow and enables it; HubSpot sends a won deal; the run
shows; the draft is edited and issued; its Facturae and PDF download; the operator finds a
failed run by NIF, corrects its data and replays it; the viewer can change nothing.
Screenshots of each step go to tests/artifacts/walkthrough/ (not in git)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from connector.models import Run
from connector.settings import Settings
from invoicing.models import Invoice
from tests.conftest import drain
from tests.factories import deal, make_hook, make_issuer, post_deal
from tests.fakes.hubspot import FakeHubSpot, fake_hubspot
from tests.integrations.test_hubspot import CLIENT_SECRET, seed, signed_v3, stage_change
from web import cli

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "walkthrough"
BAD_NIF, GOOD_NIF = "12345678A", "12345678Z"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The app may call 127.0.0.1, where the stand-in HubSpot listens."""
    return settings.with_(http_allow="127.0.0.1", bootstrap_admin_email="jefa@empresa.es")


@pytest.fixture
def crm() -> Iterator[FakeHubSpot]:
    with fake_hubspot() as api:
        seed(api)
        yield api


class Walk:
    def __init__(self, page: Page, base: str) -> None:
        self.page, self.base, self.step = page, base, 0
        self.asked: list[str] = []  # what the pages asked to confirm ("¿Emitir la factura?"…)
        page.on("dialog", self._accept)

    def _accept(self, dialog: Any) -> None:
        self.asked.append(dialog.message)
        dialog.accept()

    def shot(self, name: str) -> None:
        self.step += 1
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{self.step:02d}-{name}.png"), full_page=True)

    def sign_in(self, email: str, password: str) -> None:
        page = self.page
        page.goto(f"{self.base}/ui/login")
        page.get_by_label("Correo electrónico").fill(email)
        page.get_by_label("Contraseña").fill(password)
        page.get_by_role("button", name="Entrar").click()

    def choose_password(self, temporary: str, new: str) -> None:
        page = self.page
        expect(page.get_by_text("Tu contraseña es provisional")).to_be_visible()
        page.get_by_label("Contraseña actual").fill(temporary)
        page.get_by_label("Contraseña nueva", exact=False).first.fill(new)
        page.get_by_label("Repite la contraseña nueva").fill(new)
        page.get_by_role("button", name="Guardar la contraseña").click()
        expect(page.get_by_text("Contraseña cambiada.")).to_be_visible()

    def sign_out(self) -> None:
        self.page.get_by_role("button", name="Salir").click()

    def invite(self, email: str, role: str) -> str:
        page = self.page
        page.goto(f"{self.base}/ui/users")
        form = page.locator("form", has=page.get_by_role("button", name="Invitar"))
        form.get_by_label("Correo electrónico").fill(email)
        form.get_by_label("Rol").select_option(role)
        page.get_by_role("button", name="Invitar").click()
        return page.locator("code.secret").inner_text()

    def pick(self, expression: str) -> None:
        self.page.locator(f'.builder-picker button[data-expr="{expression}"]').first.click()


def test_the_walk_from_first_sign_in_to_a_replayed_run(
    rt, client, live_server, page: Page, crm: FakeHubSpot, settings: Settings
):
    walk = Walk(page, live_server)
    first = cli.init(settings)
    assert first is not None
    make_issuer(rt)  # the company's fiscal data, as Ajustes keeps them

    # --- the first admin signs in and invites the team ----------------------------------
    walk.sign_in("jefa@empresa.es", first.password)
    walk.choose_password(first.password, "la jefa elige una frase")
    walk.shot("admin-signed-in")
    editor = walk.invite("editora@empresa.es", "editor")
    operator = walk.invite("operador@empresa.es", "operator")
    viewer = walk.invite("lector@empresa.es", "viewer")
    walk.shot("team-invited")
    walk.sign_out()

    # --- the editor connects HubSpot ------------------------------------------------------
    walk.sign_in("editora@empresa.es", editor)
    walk.choose_password(editor, "la editora elige otra")
    page.get_by_role("link", name="Conexiones").click()
    page.get_by_role("link", name="HubSpot").click()
    page.get_by_label("Nombre de la conexión").fill("hubspot")
    page.get_by_label("Dirección de la API").fill(crm.url)
    page.get_by_label("Token de acceso de la app privada", exact=False).fill(crm.token)
    page.get_by_label("Secreto de cliente de la app", exact=False).fill(CLIENT_SECRET)
    page.get_by_role("button", name="Guardar").click()
    expect(page.get_by_text("Conexión guardada")).to_be_visible()
    page.get_by_role("button", name="Probar conexión").click()
    expect(page.get_by_text("Conexión correcta")).to_be_visible()
    webhook = page.get_by_test_id("webhook-url").inner_text()
    walk.shot("hubspot-connected")

    # --- …and builds the flow with forms and the field picker only ------------------------
    page.get_by_role("link", name="Flujos").click()
    page.get_by_role("link", name="Nuevo flujo").click()
    page.get_by_label("Nombre del flujo").fill("HubSpot ganada → borrador")
    page.get_by_label("Cuando…").select_option(label="Oportunidad ganada (HubSpot)")
    page.locator('[data-path="trigger.connection"]').select_option("hubspot")
    page.get_by_label("Elige una acción").select_option(label="Leer una oportunidad de HubSpot")
    page.get_by_role("button", name="Añadir paso", exact=True).click()
    page.locator('[data-path="steps[0].connection"]').select_option("hubspot")
    page.locator('[data-field="steps[0].input.deal_id"]').get_by_role(
        "button", name="Tomar de un campo"
    ).click()
    walk.pick("trigger.deal_id")
    page.get_by_label("Elige una acción").select_option(label="Crear factura en borrador")
    page.get_by_role("button", name="Añadir paso", exact=True).click()
    page.locator('[data-field="steps[1].input.customer"]').get_by_role(
        "button", name="Tomarlo entero de un campo"
    ).first.click()
    walk.pick("steps.get_deal.customer")
    page.locator('[data-path="steps[1].input.lines"]').click()
    walk.pick("steps.get_deal.lines")
    # the mistake: a field's path typed as text
    typed = page.locator('[data-path="steps[1].input.external_ref"]')
    typed.fill("steps.get_deal.deal_id")
    problems = page.locator("#builder-problems")
    expect(problems).to_contain_text("parece una referencia a un campo")
    walk.shot("mistake-explained")
    page.locator('[data-field="steps[1].input.external_ref"]').get_by_role(
        "button", name="Tomar de un campo"
    ).click()
    walk.pick("steps.get_deal.deal_id")
    expect(problems).to_contain_text("Sin problemas")
    page.get_by_role("button", name="Probar el flujo").click()
    expect(page.locator("#builder-trial")).to_contain_text("Correcta")
    walk.shot("flow-tested")
    page.get_by_role("button", name="Guardar", exact=True).click()
    page.get_by_role("button", name="Activar").click()
    expect(page.get_by_text("Flujo activado.")).to_be_visible()
    walk.shot("flow-enabled")

    # --- HubSpot sends the won deal --------------------------------------------------------
    body = json.dumps([stage_change()], separators=(",", ":")).encode()
    answer = client.post(
        webhook.removeprefix(rt.settings.public_url), data=body, headers=signed_v3(webhook, body)
    )
    assert answer.status_code == 202, answer.json
    drain(rt)

    # --- the run shows; the draft is reviewed, edited and issued ---------------------------
    page.get_by_role("link", name="Ejecuciones").click()
    row = page.get_by_role("row").filter(has_text="HubSpot ganada → borrador")
    expect(row).to_contain_text("Correcta")
    row.get_by_role("link").first.click()
    page.get_by_role("link", name="Ver factura").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Factura en borrador")
    page.get_by_role("link", name="Editar borrador").click()
    page.get_by_label("Observaciones").fill("Revisada por la editora")
    page.get_by_role("button", name="Guardar").click()
    expect(page.get_by_text("Borrador guardado.")).to_be_visible()
    page.get_by_role("button", name="Emitir factura").click()
    expect(page.get_by_test_id("huella")).to_be_visible()
    # The confirmation comes from ui.js, the only script the page's CSP lets run.
    assert walk.asked and "emit" in walk.asked[-1].lower()
    walk.shot("invoice-issued")
    with page.expect_download() as facturae:
        page.get_by_role("link", name="Descargar Facturae (XML)").click()
    assert b"<fe:Facturae" in Path(facturae.value.path()).read_bytes()
    with page.expect_download() as pdf:
        page.get_by_role("link", name="Descargar PDF").click()
    assert Path(pdf.value.path()).read_bytes().startswith(b"%PDF")
    with rt.sessions() as s:
        [invoice] = s.scalars(select(Invoice)).all()
        assert invoice.number and invoice.notes == "Revisada por la editora"
        assert invoice.external_ref == "19283746501"
    walk.sign_out()

    # --- a deal with a wrong NIF fails; the operator finds it by NIF, corrects, replays -----
    hook = make_hook(rt)
    wrong = deal(deal_id="D-NIF")
    wrong["customer"]["tax_id"] = BAD_NIF
    post_deal(client, hook, wrong)
    drain(rt)
    walk.sign_in("operador@empresa.es", operator)
    walk.choose_password(operator, "el operador tiene otra")
    page.get_by_role("link", name="Ejecuciones").click()
    page.get_by_placeholder("Oportunidad, factura o NIF").fill(BAD_NIF)
    page.get_by_role("button", name="Filtrar").click()
    failed = page.get_by_role("row").filter(has_text="D-NIF")
    expect(failed).to_contain_text("Fallida")
    failed.get_by_role("link").first.click()
    page.locator("summary", has_text="Datos del disparador").click()
    data = page.get_by_role("textbox", name="Datos del disparador")
    data.fill(data.input_value().replace(BAD_NIF, GOOD_NIF))
    page.get_by_role("button", name="Reintentar").click()
    expect(page.get_by_text("Ejecución en cola de nuevo.")).to_be_visible()
    drain(rt)
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Correcta")
    walk.shot("run-replayed")
    with rt.sessions() as s:
        run = s.scalars(select(Run).where(Run.flow_id == hook.flow_id)).one()
        assert run.status == "succeeded" and run.key("customer_tax_id") == GOOD_NIF
    walk.sign_out()

    # --- the viewer reads but can change nothing ---------------------------------------------
    walk.sign_in("lector@empresa.es", viewer)
    walk.choose_password(viewer, "el lector solo mira")
    page.goto(f"{live_server}/ui/invoices/{invoice.id}")
    expect(page.get_by_test_id("huella")).to_be_visible()
    expect(page.get_by_role("button", name="Anular factura")).to_have_count(0)
    page.goto(f"{live_server}/ui/runs/{run.id}")
    expect(page.get_by_role("button", name="Reintentar")).to_have_count(0)
    page.goto(f"{live_server}/ui/users")
    expect(page.get_by_role("heading", name="No tienes permiso")).to_be_visible()
    walk.shot("viewer-refused")
    refused = page.evaluate(
        """async (token) => (await fetch('/ui/runs/replay', {method: 'POST',
             headers: {'Content-Type': 'application/x-www-form-urlencoded'},
             body: 'run_id=1&csrf_token=' + token})).status""",
        page.locator("input[name=csrf_token]").first.input_value(),
    )
    assert refused == 403
