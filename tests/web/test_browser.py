"""A person signs in, finds the run of a won deal and reads its draft invoice, in a browser."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.conftest import drain
from tests.factories import PASSWORD, deal, make_hook, make_user, post_deal


def test_an_admin_follows_a_won_deal_from_the_run_log_to_its_draft_invoice(
    rt, client, live_server, page: Page, tmp_path
):
    hook = make_hook(rt)
    post_deal(client, hook, deal(deal_id="D-2024-77"))
    drain(rt)
    user = make_user(rt)

    page.goto(f"{live_server}/ui/runs")
    expect(page).to_have_url(f"{live_server}/ui/login?next=/ui/runs")
    page.get_by_label("Correo electrónico").fill(user.email)
    page.get_by_label("Contraseña").fill("no es esta")
    page.get_by_role("button", name="Entrar").click()
    expect(page.get_by_role("alert")).to_contain_text("no son correctos")
    page.get_by_label("Contraseña").fill(PASSWORD)
    page.get_by_role("button", name="Entrar").click()

    expect(page.get_by_role("heading", name="Ejecuciones")).to_be_visible()
    row = page.get_by_role("row").filter(has_text="D-2024-77")
    expect(row).to_contain_text("Correcta")
    row.get_by_role("link").first.click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("Correcta")
    expect(page.locator("pre").first).to_contain_text("B12345674")
    page.get_by_role("link", name="Ver factura").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("Factura en borrador")
    expect(page.get_by_test_id("invoice-total")).to_have_text("3.001,41\u00a0€")
    expect(page.get_by_role("cell", name="Consultoría (horas)")).to_be_visible()
    page.screenshot(path=str(tmp_path / "invoice-es.png"), full_page=True)

    page.get_by_role("link", name="EN", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Draft invoice")
    expect(page.get_by_test_id("invoice-total")).to_have_text("€3,001.41")
    page.get_by_role("link", name="Runs").click()
    expect(page.get_by_role("row").filter(has_text="D-2024-77")).to_contain_text("Succeeded")
