"""The main pages in a real browser: axe-core (from npm, tests/browser) finds no serious or
critical WCAG 2.1 A/AA violation, and at a tablet's 820 px nothing overflows sideways."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.conftest import drain
from tests.factories import PASSWORD, deal, make_hook, make_issued, make_user, post_deal

AXE = Path(__file__).resolve().parents[1] / "browser" / "node_modules" / "axe-core" / "axe.min.js"
TABLET = 820


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, object]) -> dict[str, object]:
    """axe-core is injected into the page as inline script, which the app's CSP rightly
    refuses: only this test's browser bypasses it."""
    return {**browser_context_args, "bypass_csp": True}


@pytest.fixture
def admin_page(rt, client, live_server, page: Page) -> Page:
    """A browser signed in as an admin, with a run, an issued invoice and a flow to show."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: `make test` installs it (npm ci in tests/browser)")
    hook = make_hook(rt)
    post_deal(client, hook, deal(deal_id="D-A11Y"))
    drain(rt)
    make_issued(rt)
    user = make_user(rt, "admin")
    page.goto(f"{live_server}/ui/login")
    page.get_by_label("Correo electrónico").fill(user.email)
    page.get_by_label("Contraseña").fill(PASSWORD)
    page.get_by_role("button", name="Entrar").click()
    page.wait_for_url("**/ui/runs")
    return page


PAGES = [
    "/ui/dashboard",
    "/ui/runs",
    "/ui/runs/1",
    "/ui/runs/refused",
    "/ui/flows",
    "/ui/flows/1",
    "/ui/flows/new",
    "/ui/connections",
    "/ui/connections/new?type=hubspot",
    "/ui/invoices",
    "/ui/invoices/1",
    "/ui/invoices/2",
    "/ui/invoices/1/edit",
    "/ui/pipeline",
    "/ui/customers",
    "/ui/products",
    "/ui/reports",
    "/ui/settings",
    "/ui/users",
    "/ui/api-keys",
    "/ui/audit",
]


def violations(page: Page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async () => {
          const result = await axe.run(document, {
            runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
          });
          return result.violations
            .filter(v => v.impact === "serious" || v.impact === "critical")
            .map(v => {
              const where = v.nodes.slice(0, 3).map(n => n.target.join(" ")).join(", ");
              return `${v.id} (${v.impact}): ${where}`;
            });
        }"""
    )
    return list(found)


def test_the_main_pages_have_no_serious_accessibility_violations(live_server, admin_page: Page):
    page = admin_page
    problems = {}
    for path in PAGES:
        page.goto(f"{live_server}{path}")
        page.wait_for_load_state("networkidle")
        found = violations(page)
        if found:
            problems[path] = found
    assert problems == {}, "\n".join(f"{p}: {v}" for p, v in problems.items())


def test_nothing_overflows_sideways_on_a_tablet(live_server, admin_page: Page):
    page = admin_page
    page.set_viewport_size({"width": TABLET, "height": 1100})
    wide = {}
    for path in PAGES:
        page.goto(f"{live_server}{path}")
        page.wait_for_load_state("networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > TABLET:
            wide[path] = width
    assert wide == {}, wide


def test_the_sign_in_page_is_accessible_and_has_a_skip_link(live_server, page: Page):
    page.goto(f"{live_server}/ui/login")
    assert violations(page) == []
    first = page.evaluate(
        "document.querySelector('a[href], button, input:not([type=hidden]), select, textarea')"
        ".outerHTML"
    )
    assert 'class="skip"' in first and 'href="#main"' in first  # the first stop on Tab
    skip = page.locator("a.skip")
    assert skip.bounding_box()["x"] < 0  # out of sight until focused…
    skip.focus()
    assert skip.bounding_box()["x"] >= 0  # …then shown
    assert skip.inner_text() == "Saltar al contenido"
