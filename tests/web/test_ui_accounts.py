"""People sign in with e-mail and password; roles decide what each may do on every page; admins
invite, reset and disable; every change is in the audit log; errors are Spanish pages."""

from __future__ import annotations

import html
import re

import pytest
from flask import Flask

from connector import accounts
from connector.models import AuditEntry, User
from tests.factories import (
    PASSWORD,
    csrf,
    make_api_key,
    make_draft,
    make_issuer,
    make_user,
    sign_in_as,
    signed_in,
)
from web import cli

# What each form (every UI route taking a POST) needs, by endpoint. A new form must be added
# here: the test below fails for a route this table does not name.
FORMS = {
    "builder.check": "flows",
    "builder.trial": "flows",
    "builder.new_flow": "flows",
    "connections.connection_new": "flows",
    "connections.connection_edit": "flows",
    "connections.connection_test": "flows",
    "connections.template_install": "flows",
    "catalog.customer_detail": "billing",
    "catalog.mapping_create": "billing",
    "catalog.product_create": "billing",
    "documents.document_convert": "billing",
    "flows.flow_edit": "flows",
    "flows.flow_switch": "flows",
    "flows.flow_restore": "flows",
    "invoices.invoice_cancel": "billing",
    "invoices.record_correct": "admin",
    "invoices.draft_edit": "billing",
    "invoices.draft_delete": "billing",
    "invoices.invoice_issue": "billing",
    "invoices.invoice_pay": "billing",
    "invoices.invoice_rectify": "billing",
    "invoices.invoice_send": "billing",
    "people.api_key_create": "admin",
    "people.api_key_revoke": "admin",
    "people.user_invite": "admin",
    "people.user_update": "admin",
    "pipeline.move": "billing",
    "runs.run_replay": "runs",
    "runs.runs_replay": "runs",
    "settings.settings": "admin",
    "session.password": "read",
    "session.notifications": "read",
    "session.login": None,  # open: signing in
    "session.logout": None,
}
# Pages only some roles may open, and which (every other page is open to every role).
RESTRICTED_PAGES = {
    "people.users": "admin",
    "people.api_keys": "admin",
    "people.audit": "admin",
    "builder.new_flow": "flows",
    "connections.connection_new": "flows",
    "invoices.draft_edit": "billing",
}


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def ui_rules(app: Flask, method: str) -> list:
    return [
        rule
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/ui/") and method in (rule.methods or ())
    ]


def concrete(rule) -> str:
    """The rule's URL with every argument filled in (ids of things that do not exist)."""
    values = {"kind": "quotes", "change": "enable"}
    path = rule.rule
    for arg in rule.arguments:
        path = re.sub(rf"<[^>]*\b{arg}>", values.get(arg, "999999"), path)
    return path


@pytest.mark.parametrize("role", accounts.ROLES)
def test_every_form_checks_the_role_and_refuses_with_a_spanish_403_page(rt, app, client, role):
    signed_in(rt, client, role)
    posts = ui_rules(app, "POST")
    assert {rule.endpoint for rule in posts} == set(FORMS), "a form whose permission is unsaid"

    for rule in posts:
        needed = FORMS[rule.endpoint]
        if needed is None or rule.endpoint == "session.password":
            continue
        answer = client.post(concrete(rule), data={"csrf_token": csrf(client)})
        if accounts.can(role, needed):
            assert answer.status_code != 403, rule.endpoint
        else:
            assert answer.status_code == 403, (role, rule.endpoint, answer.status_code)
            page = text(answer)
            assert "No tienes permiso" in page
            assert f"Tu rol ({page_role(role)})" in page


def page_role(role: str) -> str:
    return {"admin": "Administrador", "editor": "Editor", "operator": "Operador"}.get(
        role, "Lector"
    )


@pytest.mark.parametrize("role", accounts.ROLES)
def test_every_page_is_readable_by_every_role_but_the_admin_pages(rt, app, client, role):
    signed_in(rt, client, role)
    for rule in ui_rules(app, "GET"):
        if rule.endpoint in ("session.login",):
            continue
        answer = client.get(concrete(rule))
        needed = RESTRICTED_PAGES.get(rule.endpoint)
        if needed and not accounts.can(role, needed):
            assert answer.status_code == 403, rule.endpoint
        elif answer.status_code == 302:  # a page that leads to another (/ui/documents)
            assert not answer.headers["Location"].startswith("/ui/login"), rule.endpoint
        else:
            assert answer.status_code in (200, 404), (role, rule.endpoint, answer.status_code)


def test_a_page_not_signed_in_leads_to_the_sign_in_and_the_front_door_too(rt, client):
    for path in ("/", "/ui", "/ui/"):
        first = client.get(path)
        assert first.status_code == 302 and first.headers["Location"].endswith("/ui/runs")
    assert client.get("/ui/users").headers["Location"].startswith("/ui/login?next=/ui/users")


def test_an_unknown_page_is_a_spanish_404_page_not_json(rt, client):
    signed_in(rt, client)
    answer = client.get("/ui/no-existe")
    assert answer.status_code == 404 and answer.mimetype == "text/html"
    assert "No encontrado" in text(answer)
    english = client.get("/ui/invoices/999999?lang=en")
    assert english.status_code == 404 and "Not found" in text(english)


def test_a_viewer_sees_no_buttons_for_admin_pages_and_an_admin_does(rt, app, client):
    signed_in(rt, client, "viewer")
    assert "/ui/users" not in text(client.get("/ui/runs"))
    other = app.test_client()
    signed_in(rt, other, "admin")
    assert "/ui/users" in text(other.get("/ui/runs"))


def test_an_admin_invites_a_person_who_must_choose_a_password_at_the_first_sign_in(rt, app, client):
    signed_in(rt, client, "admin")
    invited = client.post(
        "/ui/users",
        data={
            "email": "Luis@Empresa.es",
            "name": "Luis",
            "role": "editor",
            "csrf_token": csrf(client),
        },
    )
    page = text(client.get(invited.headers["Location"]))
    [password] = re.findall(r'<code class="secret">([^<]+)</code>', page)
    assert "luis@empresa.es" in page and "no se volverá a mostrar" in page
    assert password not in text(client.get("/ui/users"))  # shown once

    luis = app.test_client()
    signed = sign_in_as(luis, "luis@empresa.es", password)
    assert signed.headers["Location"] == "/ui/account/password"
    assert luis.get("/ui/flows").headers["Location"] == "/ui/account/password"
    short = luis.post(
        "/ui/account/password",
        data={
            "current": password,
            "password": "corta",
            "repeat": "corta",
            "csrf_token": csrf(luis),
        },
    )
    assert short.status_code == 422 and "al menos 10 caracteres" in text(short)
    changed = luis.post(
        "/ui/account/password",
        data={
            "current": password,
            "password": "mi contraseña nueva",
            "repeat": "mi contraseña nueva",
            "csrf_token": csrf(luis),
        },
    )
    assert changed.status_code == 302
    assert luis.get("/ui/flows").status_code == 200
    assert (
        sign_in_as(app.test_client(), "luis@empresa.es", "mi contraseña nueva").status_code == 302
    )


def test_a_reset_or_a_disabled_account_ends_its_sign_ins_at_once(rt, app, client):
    signed_in(rt, client, "admin")
    luis = make_user(rt, "editor")
    browser = app.test_client()
    sign_in_as(browser, luis.email)
    assert browser.get("/ui/flows").status_code == 200

    client.post(f"/ui/users/{luis.id}", data={"change": "reset", "csrf_token": csrf(client)})
    assert browser.get("/ui/flows").status_code == 302  # signed out
    assert sign_in_as(browser, luis.email).status_code == 401  # the old password is gone

    ana = make_user(rt, "viewer")
    sign_in_as(browser, ana.email)
    client.post(f"/ui/users/{ana.id}", data={"change": "disable", "csrf_token": csrf(client)})
    assert browser.get("/ui/runs").status_code == 302
    assert "El correo o la contraseña no son correctos" in text(sign_in_as(browser, ana.email))


def test_the_last_admin_cannot_demote_themself(rt, client):
    signed_in(rt, client, "admin")
    with rt.sessions() as s:
        [me] = s.query(User).all()
    answer = client.post(
        f"/ui/users/{me.id}", data={"role": "viewer", "change": "role", "csrf_token": csrf(client)}
    )
    assert "Debe quedar al menos un administrador activo" in text(
        client.get(answer.headers["Location"])
    )
    with rt.sessions() as s:
        assert s.get(User, me.id).role == "admin"


def test_five_wrong_passwords_lock_the_account_and_say_until_when(rt, client):
    user = make_user(rt)
    answers = [sign_in_as(client, user.email, "no es") for _ in range(5)]
    assert [a.status_code for a in answers] == [401] * 5
    assert "bloqueada hasta las" in text(answers[-1])
    assert "bloqueada hasta las" in text(sign_in_as(client, user.email))  # the right one too


def test_an_admin_makes_an_api_key_shown_once_that_works_and_revokes_it(rt, client):
    signed_in(rt, client, "admin")
    made = client.post(
        "/ui/api-keys",
        data={"name": "Zapier", "scope_read": "1", "csrf_token": csrf(client)},
    )
    cookie = client.get_cookie("session").value  # signed, not encrypted: anyone can read it
    readable = client.application.session_interface.get_signing_serializer(  # type: ignore[attr-defined]
        client.application
    ).loads(cookie)
    page = text(client.get(made.headers["Location"]))
    [key] = re.findall(r'<code class="secret">([^<]+)</code>', page)
    assert key not in cookie and key not in str(readable)  # it rode sealed
    bearer = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/v1/invoices", headers=bearer).status_code == 200
    assert client.post("/api/v1/customers", headers=bearer, json={}).status_code == 403
    assert key not in text(client.get("/ui/api-keys"))

    with rt.sessions() as s:
        from connector.models import ApiKey

        row = s.query(ApiKey).filter_by(name="Zapier").one()
    client.post(f"/ui/api-keys/{row.id}/revoke", data={"csrf_token": csrf(client)})
    assert client.get("/api/v1/invoices", headers=bearer).status_code == 401

    nameless = client.post("/ui/api-keys", data={"scope_read": "1", "csrf_token": csrf(client)})
    assert "Pon un nombre a la clave" in text(client.get(nameless.headers["Location"]))


def test_the_audit_log_says_who_changed_what_and_skips_what_failed(rt, app, client):
    make_issuer(rt)
    draft = make_draft(rt)
    signed_in(rt, client, "editor")
    with rt.sessions() as s:
        [editor] = s.query(User).all()
    client.post(f"/ui/invoices/{draft}/issue", data={"csrf_token": csrf(client)})
    client.post(
        f"/ui/invoices/{draft}/payments",
        data={"amount": "mucho", "csrf_token": csrf(client)},  # refused: not recorded
    )
    key = make_api_key(rt, "contabilidad")
    paid = client.post(
        f"/api/v1/invoices/{draft}/payments",
        headers={"Authorization": f"Bearer {key}"},
        json={"amount": "100.00"},
    )
    assert paid.status_code == 201

    with rt.sessions() as s:
        entries = [
            (e.actor, e.action, e.subject) for e in s.query(AuditEntry).order_by(AuditEntry.id)
        ]
    assert entries == [
        (editor.email, "invoices.invoice_issue", f"invoice {draft}"),
        ("API: contabilidad", "api.pay_invoice", f"invoice {draft}"),
    ]
    admin = app.test_client()
    signed_in(rt, admin, "admin")
    page = text(admin.get("/ui/audit?q=contabilidad"))
    assert "Registró un cobro" in page and "Emitió una factura" not in page
    assert "Emitió una factura" in text(admin.get("/ui/audit"))


def test_the_first_start_makes_an_admin_whose_printed_password_signs_in(settings, app, rt):
    first = cli.init(settings.with_(bootstrap_admin_email="jefa@empresa.es"))
    again = cli.init(settings)
    assert first is not None and again is None

    browser = app.test_client()
    signed = sign_in_as(browser, "jefa@empresa.es", first.password)
    assert signed.headers["Location"] == "/ui/account/password"


def test_the_sign_in_page_and_errors_are_translated_to_english(rt, client):
    make_user(rt, email="ana@empresa.es")
    page = text(client.get("/ui/login?lang=en"))
    assert "Sign in with your e-mail and password" in page
    wrong = sign_in_as(client, "ana@empresa.es", "nope")
    assert "The e-mail or the password is not right" in text(wrong)
    assert PASSWORD not in text(wrong)


def test_the_settings_form_offers_countries_by_name_and_explains_refusals_in_spanish(rt, client):
    signed_in(rt, client, "admin")
    page = text(client.get("/ui/settings"))
    assert '<option value="DE">Alemania (DE)</option>' in page
    assert '<option value="ES" selected>España (ES)</option>' in page

    refused = client.post(
        "/ui/settings",
        data={
            "tax_id": "A58818501",
            "name": "Puente Demo SL",
            "street": "Gran Vía 1",
            "postal_code": "99013",
            "city": "Madrid",
            "province": "Madrid",
            "country": "ES",
            "iban": "ES91 2100 0418 4502 0005 1333",
            "csrf_token": csrf(client),
        },
    )
    page = text(refused)
    assert refused.status_code == 422
    assert "no es un código postal español" in page and "cifras de control" in page
    assert "is not a Spanish postal code" not in page
