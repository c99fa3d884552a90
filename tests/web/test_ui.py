"""Server-rendered pages: signing in and out, runs, invoices and flows, in Spanish and English."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from connector.runtime import Runtime
from tests.conftest import drain
from tests.factories import (
    PASSWORD,
    Hook,
    csrf,
    deal,
    make_hook,
    make_user,
    post_deal,
    sign_in_as,
    signed_in,
)
from web.demo import DEMO_FLOW


def location(response) -> str:
    """The redirect target as path?query, whether Location is absolute or not."""
    parts = urlsplit(response.headers["Location"])
    assert parts.netloc in ("", "localhost"), response.headers["Location"]
    return parts.path + (f"?{parts.query}" if parts.query else "")


def page(response) -> str:
    """The page text with HTML entities decoded (JSON in <pre> is escaped: &#34; for ")."""
    return html.unescape(response.get_data(as_text=True))


def sign_in(rt: Runtime, client) -> None:
    signed_in(rt, client)


def login(client, email: str, next_url: str | None = None, password: str = PASSWORD):
    return client.post(
        "/ui/login",
        query_string={"next": next_url} if next_url is not None else None,
        data={"email": email, "password": password, "csrf_token": csrf(client)},
    )


def process(rt: Runtime, client, payload: dict) -> tuple[Hook, int]:
    hook = make_hook(rt)
    response = post_deal(client, hook, payload)
    assert response.status_code == 202, response.json
    drain(rt)
    [run_id] = response.json["run_ids"]
    return hook, run_id


def invoice_id_of(client, run_id: int) -> int:
    match = re.search(r'href="/ui/invoices/(\d+)"', client.get(f"/ui/runs/{run_id}").text)
    assert match, "the run page links to its invoice"
    return int(match.group(1))


def badge(status: str, label: str) -> str:
    return f'<span class="badge {status}">{label}</span>'


# --- signing in and out --------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/ui/runs", "/ui/runs/1", "/ui/invoices", "/ui/invoices/1", "/ui/flows"]
)
def test_pages_redirect_to_the_sign_in_page_when_not_signed_in(rt, client, path):
    response = client.get(path)

    assert response.status_code == 302
    target = urlsplit(location(response))
    assert target.path == "/ui/login"
    assert parse_qs(target.query)["next"] == [path]


def test_the_sign_in_redirect_keeps_the_query_string_in_next(rt, client):
    response = client.get("/ui/runs?status=failed")

    assert parse_qs(urlsplit(location(response)).query)["next"] == ["/ui/runs?status=failed"]


def test_the_sign_in_page_is_in_spanish_by_default(rt, client):
    response = client.get("/ui/login")

    assert response.status_code == 200
    assert "Entra con tu correo y tu contraseña" in page(response)


def test_a_wrong_password_shows_the_sign_in_page_again_with_401_and_the_spanish_error(rt, client):
    user = make_user(rt)

    response = login(client, user.email, "/ui/invoices", password="no es esta")

    assert response.status_code == 401
    assert "El correo o la contraseña no son correctos." in page(response)
    assert client.get("/ui/runs").status_code == 302  # still not signed in


def test_the_right_password_signs_in_and_goes_to_next(rt, client):
    user = make_user(rt)

    response = login(client, user.email.upper(), "/ui/invoices")  # e-mail case does not matter

    assert response.status_code == 302
    assert location(response) == "/ui/invoices"
    assert client.get("/ui/invoices").status_code == 200


def test_signing_in_without_next_goes_to_the_runs(rt, client):
    response = login(client, make_user(rt).email)

    assert location(response) == "/ui/runs"


@pytest.mark.parametrize(
    "next_url",
    [
        "//evil.example/x",
        "http://evil.example",
        "https://evil.example/ui/runs",
        "javascript:alert(1)",
        "/\t/evil.example/x",  # browsers drop tabs: "//evil.example/x"
    ],
)
def test_signing_in_never_follows_a_next_that_leaves_the_site(rt, client, next_url):
    response = login(client, make_user(rt).email, next_url)

    assert response.status_code == 302
    assert response.headers["Location"] == "/ui/runs"


def test_a_next_starting_with_slash_backslash_does_not_lead_to_another_site(rt, client):
    response = login(client, make_user(rt).email, "/\\evil.example/x")

    # Browsers read a leading slash-backslash like "//": the Location must stay on this site.
    target = response.headers["Location"]
    assert response.status_code == 302
    assert urlsplit(target.replace("\\", "/")).netloc == ""


def test_signing_out_with_post_ends_the_session(rt, client):
    sign_in(rt, client)
    assert client.get("/ui/runs").status_code == 200

    response = client.post("/ui/logout", data={"csrf_token": csrf(client)})

    assert response.status_code == 302
    assert location(response) == "/ui/login"
    after = client.get("/ui/runs")
    assert after.status_code == 302
    assert urlsplit(location(after)).path == "/ui/login"


def test_a_cookie_copied_before_signing_out_no_longer_signs_in(rt, client):
    sign_in(rt, client)
    copied = client.get_cookie("session").value

    client.post("/ui/logout", data={"csrf_token": csrf(client)})
    client.set_cookie("session", copied)  # someone kept the cookie

    after = client.get("/ui/runs")
    assert after.status_code == 302
    assert urlsplit(location(after)).path == "/ui/login"


def test_signing_out_in_one_browser_leaves_the_other_signed_in(rt, app):
    user = make_user(rt)
    one, other = app.test_client(), app.test_client()
    for browser in (one, other):
        assert sign_in_as(browser, user.email).status_code == 302

    one.post("/ui/logout", data={"csrf_token": csrf(one)})

    assert one.get("/ui/runs").status_code == 302
    assert other.get("/ui/runs").status_code == 200


def test_a_new_password_ends_the_other_browsers_sign_ins_but_not_this_one(rt, app):
    user = make_user(rt)
    mine, stolen = app.test_client(), app.test_client()
    for browser in (mine, stolen):
        assert sign_in_as(browser, user.email).status_code == 302

    changed = mine.post(
        "/ui/account/password",
        data={
            "current": PASSWORD,
            "password": "otra contraseña larga",
            "repeat": "otra contraseña larga",
            "csrf_token": csrf(mine),
        },
    )

    assert changed.status_code == 302
    assert mine.get("/ui/runs").status_code == 200
    assert stolen.get("/ui/runs").status_code == 302


def test_sessions_are_signed_with_their_own_key_not_the_secret_key(rt):
    """Rotating PUENTE_SECRET_KEY keeps people signed in; a new PUENTE_SESSION_KEY signs
    everyone out."""
    from dataclasses import replace

    from web import create_app

    def browser(settings):
        return create_app(runtime=replace(rt, settings=settings)).test_client()

    before = rt.settings.with_(session_key="the-session-key")
    signed = browser(before)
    assert sign_in_as(signed, make_user(rt).email).status_code == 302
    cookie = signed.get_cookie("session").value
    rotated = before.with_(secret_key="a-new-secret", old_secret_keys=(before.secret_key,))
    after_rotation, after_new_key = browser(rotated), browser(rotated.with_(session_key="new"))
    for other in (after_rotation, after_new_key):
        other.set_cookie("session", cookie)

    assert rt.settings.cookie_key != rt.settings.secret_key
    assert after_rotation.get("/ui/runs").status_code == 200
    assert after_new_key.get("/ui/runs").status_code == 302


def test_signing_out_is_not_possible_with_get(rt, client):
    sign_in(rt, client)

    assert client.get("/ui/logout").status_code == 405
    assert client.get("/ui/runs").status_code == 200


# --- runs ----------------------------------------------------------------------------------


def test_the_runs_page_shows_a_processed_run_as_correcta(rt, client):
    sign_in(rt, client)
    _, run_id = process(rt, client, deal(deal_id="D-42"))

    response = client.get("/ui/runs")

    assert response.status_code == 200
    text = page(response)
    assert f'href="/ui/runs/{run_id}"' in text
    assert "D-42" in text
    assert DEMO_FLOW["name"] in text
    assert badge("succeeded", "Correcta") in text


def test_lang_en_shows_english_and_a_cookie_keeps_it_on_the_next_request(rt, client):
    sign_in(rt, client)
    process(rt, client, deal())

    english = client.get("/ui/runs?lang=en")

    assert badge("succeeded", "Succeeded") in page(english)
    assert '<html lang="en">' in page(english)
    assert "puente_lang=en" in english.headers["Set-Cookie"]
    later = page(client.get("/ui/runs"))
    assert badge("succeeded", "Succeeded") in later
    assert "Correcta" not in later


def test_lang_es_switches_back_to_spanish(rt, client):
    sign_in(rt, client)
    process(rt, client, deal())
    client.get("/ui/runs?lang=en")

    client.get("/ui/runs?lang=es")

    assert badge("succeeded", "Correcta") in page(client.get("/ui/runs"))


def test_an_unknown_lang_is_ignored(rt, client):
    sign_in(rt, client)
    process(rt, client, deal())

    response = client.get("/ui/runs?lang=fr")

    assert badge("succeeded", "Correcta") in page(response)
    assert "puente_lang" not in response.headers.get("Set-Cookie", "")


def test_a_browser_asking_for_english_gets_english(rt, client):
    sign_in(rt, client)
    process(rt, client, deal())

    response = client.get("/ui/runs", headers={"Accept-Language": "en-GB,en;q=0.9"})

    assert badge("succeeded", "Succeeded") in page(response)


def test_a_run_page_shows_the_step_input_and_output_and_links_to_the_invoice(rt, client):
    sign_in(rt, client)
    _, run_id = process(rt, client, deal(deal_id="D-42"))

    response = client.get(f"/ui/runs/{run_id}")

    assert response.status_code == 200
    text = page(response)
    assert badge("succeeded", "Correcta") in text
    assert '"tax_id": "B12345674"' in text  # the step input
    assert '"external_ref": "D-42"' in text
    invoice_id = invoice_id_of(client, run_id)
    assert f'"invoice_id": {invoice_id}' in text  # the step output
    assert "Ver factura" in text


def test_a_failed_run_page_shows_the_field_path_and_the_message(rt, client):
    sign_in(rt, client)
    payload = deal()
    payload["customer"]["tax_id"] = "12345678A"  # wrong control letter
    _, run_id = process(rt, client, payload)

    response = client.get(f"/ui/runs/{run_id}")

    text = page(response)
    assert badge("failed", "Fallida") in text
    assert "Datos no válidos" in text
    assert "<code>customer.tax_id</code>" in text
    assert "not a valid Spanish NIF/CIF/NIE" in text
    assert 'href="/ui/invoices/' not in text


def test_the_runs_page_can_show_only_failed_runs(rt, client):
    sign_in(rt, client)
    _, good = process(rt, client, deal())
    bad_payload = deal()
    bad_payload["customer"]["tax_id"] = "12345678A"
    _, bad = process(rt, client, bad_payload)

    text = page(client.get("/ui/runs?status=failed"))

    assert f'href="/ui/runs/{bad}"' in text
    assert f'href="/ui/runs/{good}"' not in text


def test_an_unknown_run_answers_404(rt, client):
    sign_in(rt, client)

    assert client.get("/ui/runs/4242").status_code == 404


# --- invoices ------------------------------------------------------------------------------


def test_the_invoices_page_shows_the_customer_and_the_total_in_spanish_format(rt, client):
    sign_in(rt, client)
    _, run_id = process(rt, client, deal(deal_id="D-42"))
    invoice_id = invoice_id_of(client, run_id)

    response = client.get("/ui/invoices")

    assert response.status_code == 200
    text = page(response)
    assert f'href="/ui/invoices/{invoice_id}"' in text
    assert "Acme Soluciones SL" in text
    assert "B12345674" in text
    assert "D-42" in text
    assert "3.001,41\u00a0€" in text
    assert badge("draft", "Borrador") in text


def test_the_invoices_page_in_english_formats_the_total_english_style(rt, client):
    sign_in(rt, client)
    process(rt, client, deal())

    text = page(client.get("/ui/invoices?lang=en"))

    assert "€3,001.41" in text
    assert "3.001,41" not in text
    assert badge("draft", "Draft") in text


def test_an_invoice_page_shows_customer_lines_and_total_in_spanish_format(rt, client):
    sign_in(rt, client)
    _, run_id = process(rt, client, deal(deal_id="D-42"))
    invoice_id = invoice_id_of(client, run_id)

    response = client.get(f"/ui/invoices/{invoice_id}")

    assert response.status_code == 200
    text = page(response)
    assert "Factura en borrador" in text
    assert "Acme Soluciones SL" in text
    assert "Calle Mayor 1, 28013, Madrid, Madrid, ES" in text
    assert "Consultoría (horas)" in text
    assert "Licencia ERP anual" in text
    assert "1.710,00\u00a0€" in text  # first line: 20 × 95 − 10 %
    assert "770,50\u00a0€" in text
    assert "520,91\u00a0€" in text  # IVA 21 %
    assert '<th class="num" data-testid="invoice-total">3.001,41\u00a0€</th>' in text


def test_an_invoice_page_in_english_formats_money_english_style(rt, client):
    sign_in(rt, client)
    _, run_id = process(rt, client, deal())
    invoice_id = invoice_id_of(client, run_id)

    text = page(client.get(f"/ui/invoices/{invoice_id}?lang=en"))

    assert "Draft invoice" in text
    assert "€1,710.00" in text
    assert '<th class="num" data-testid="invoice-total">€3,001.41</th>' in text


def test_an_unknown_invoice_answers_404(rt, client):
    sign_in(rt, client)

    assert client.get("/ui/invoices/4242").status_code == 404


# --- flows ---------------------------------------------------------------------------------


def test_the_flows_page_shows_the_demo_flow_and_its_webhook_url(rt, client, settings):
    sign_in(rt, client)
    hook = make_hook(rt)

    response = client.get("/ui/flows")

    assert response.status_code == 200
    text = page(response)
    assert DEMO_FLOW["name"] in text
    assert f"{settings.public_url}/hooks/{hook.token}" in text
    assert "invoicing.create_draft_invoice" in text
    assert badge("enabled", "Activo") in text


def test_the_flows_page_marks_a_disabled_flow(rt, client):
    sign_in(rt, client)
    make_hook(rt, enabled=False)

    text = page(client.get("/ui/flows"))

    assert badge("", "Inactivo") in text


def test_a_form_token_that_is_not_ascii_is_refused_as_expired_not_a_crash(rt, client):
    csrf(client)  # the session has its token
    response = client.post("/ui/login", data={"email": "x", "csrf_token": "ñ"})
    assert response.status_code == 400


def test_crafted_next_and_page_parameters_answer_pages_not_server_errors(rt, client):
    signed = login(client, make_user(rt).email, "/\r\\evil.com")
    assert signed.status_code == 302 and signed.headers["Location"].endswith("/ui/runs")
    for path in ("/ui/runs", "/ui/invoices"):
        assert client.get(f"{path}?page=99999999999999999999").status_code == 200
