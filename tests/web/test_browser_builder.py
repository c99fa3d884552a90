"""An editor builds "oportunidad ganada → factura en borrador" in a browser with the builder's
forms and field picker only, makes the mistake people make (a field's path typed as text),
reads the Spanish explanation, fixes it, tests the flow, saves and enables it; a deal then
arrives and becomes the draft. Screenshots of each step go to tests/artifacts/ (not in git)."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect
from sqlalchemy import select

from connector.models import Flow
from invoicing.models import Invoice
from tests.conftest import drain
from tests.factories import PASSWORD, Hook, deal, make_user, post_deal

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "builder"


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def pick(page: Page, expression: str) -> None:
    page.locator(f'.builder-picker button[data-expr="{expression}"]').first.click()


def test_an_editor_builds_a_flow_with_forms_only_and_a_deal_becomes_its_draft(
    rt, client, live_server, page: Page
):
    editor = make_user(rt, "editor")
    page.goto(f"{live_server}/ui/login")
    page.get_by_label("Correo electrónico").fill(editor.email)
    page.get_by_label("Contraseña").fill(PASSWORD)
    page.get_by_role("button", name="Entrar").click()
    page.get_by_role("link", name="Flujos").click()
    page.get_by_role("link", name="Nuevo flujo").click()
    expect(page.get_by_role("heading", name="Nuevo flujo")).to_be_visible()

    # the trigger, then the action, chosen from lists by their Spanish names
    page.get_by_label("Nombre del flujo").fill("Ganada → borrador")
    page.get_by_label("Cuando…").select_option(label="Oportunidad ganada (webhook firmado)")
    page.get_by_label("Elige una acción").select_option(label="Crear factura en borrador")
    page.get_by_role("button", name="Añadir paso", exact=True).click()
    expect(page.get_by_role("heading", name="2. Crear factura en borrador")).to_be_visible()
    shot(page, "01-step-added")

    # required fields missing: the check says which, in Spanish
    problems = page.locator("#builder-problems")
    expect(problems).to_contain_text("customer")

    # the customer and the lines taken whole from the trigger with the field picker
    page.get_by_role("button", name="Tomarlo entero de un campo").first.click()
    pick(page, "trigger.customer")
    page.get_by_label("Líneas").click()
    pick(page, "trigger.lines")

    # the mistake: the deal id's path typed as text
    deal_id = page.get_by_label("Id de la oportunidad en el CRM")
    deal_id.fill("trigger.deal_id")
    expect(problems).to_contain_text("parece una referencia a un campo")
    expect(deal_id).to_have_attribute("aria-invalid", "true")
    shot(page, "02-mistake-explained")

    # fixed with the picker
    page.locator('[data-field="steps[0].input.external_ref"]').get_by_role(
        "button", name="Tomar de un campo"
    ).click()
    pick(page, "trigger.deal_id")
    pick_source = page.locator('[data-field="steps[0].input.source"]')
    pick_source.get_by_role("button", name="Tomar de un campo").click()
    pick(page, "trigger.source")
    expect(problems).to_contain_text("Sin problemas")
    page.get_by_text("Vista previa").first.click()
    expect(page.locator(".preview pre").first).to_contain_text("B12345674")

    page.get_by_role("button", name="Probar el flujo").click()
    expect(page.locator("#builder-trial")).to_contain_text("Correcta")
    shot(page, "03-tested")

    page.get_by_role("button", name="Guardar", exact=True).click()
    expect(page.get_by_text("Secreto del webhook de este flujo")).to_be_visible()
    secret = page.locator("code.secret").inner_text()
    page.get_by_role("button", name="Activar").click()
    expect(page.get_by_text("Flujo activado.")).to_be_visible()
    shot(page, "04-enabled")

    with rt.sessions() as s:
        flow = s.scalars(select(Flow)).one()
        assert flow.enabled and flow.name == "Ganada → borrador"
        step = flow.current_version.document["steps"][0]
        assert step["input"]["external_ref"] == {"$expr": "trigger.deal_id"}
        hook = Hook(flow.subscription.token, secret, flow.subscription.id, flow.id)

    answer = post_deal(client, hook, deal(deal_id="D-BUILT"))
    assert answer.status_code == 202, answer.json
    drain(rt)
    with rt.sessions() as s:
        [invoice] = s.scalars(select(Invoice)).all()
        assert invoice.external_ref == "D-BUILT" and invoice.status == "draft"


def test_lookup_tables_are_filled_in_as_forms(rt, live_server, page: Page):
    editor = make_user(rt, "editor")
    page.goto(f"{live_server}/ui/login")
    page.get_by_label("Correo electrónico").fill(editor.email)
    page.get_by_label("Contraseña").fill(PASSWORD)
    page.get_by_role("button", name="Entrar").click()
    page.goto(f"{live_server}/ui/flows/new")
    page.get_by_label("Nombre del flujo").fill("Con tabla")
    page.get_by_label("Cuando…").select_option(label="Oportunidad ganada (webhook firmado)")
    page.get_by_label("Elige una acción").select_option(label="Registrar oportunidad ganada")
    page.get_by_role("button", name="Añadir paso", exact=True).click()

    page.get_by_role("button", name="Añadir tabla").click()
    page.get_by_label("Nombre de la tabla").fill("productos")
    page.get_by_label("Nombre de la tabla").press("Tab")
    page.get_by_role("button", name="Añadir fila").click()
    page.get_by_label("Clave (lo que llega) 1").fill("PRD-77")
    page.get_by_label("Clave (lo que llega) 1").press("Tab")
    page.get_by_label("Valor (lo que se usa) 1").fill("CONS-H")
    shot(page, "05-lookup-table")
    page.get_by_role("button", name="Guardar", exact=True).click()
    expect(page.get_by_text("Versión 1", exact=True)).to_be_visible()

    with rt.sessions() as s:
        flow = s.scalars(select(Flow)).one()
        assert flow.current_version.document["lookups"] == {"productos": {"PRD-77": "CONS-H"}}
