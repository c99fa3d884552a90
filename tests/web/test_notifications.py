"""Failed runs by e-mail (web.notifications): to the flow's owner, or to the admins for a flow
nobody owns; at once or in a daily digest from 08:00 Madrid; each failure told once; nothing
before a person joined; in the language each person uses the app in, with links to the runs."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from actions.invoicing import INVOICING_SETTINGS
from connector.models import Flow, User
from connector.runtime import build_runtime
from invoicing.settings import InvoicingSettings
from tests.conftest import drain
from tests.factories import csrf, deal, make_hook, make_user, post_deal, sign_in_as, signed_in
from tests.smtp import SmtpServer
from web import notifications
from web.demo import DEMO_FLOW

MADRID = ZoneInfo("Europe/Madrid")


@pytest.fixture
def invoicing_settings(smtp: SmtpServer) -> InvoicingSettings:
    return smtp.invoicing_settings()


def broken_hook(rt, owner: int | None = None):
    flow = copy.deepcopy(DEMO_FLOW)
    flow["name"] = "Flujo roto"
    flow["steps"][1]["input"]["currency"] = "USD"  # refused by the action at run time
    hook = make_hook(rt, flow, checked=False)
    with rt.sessions.begin() as s:
        s.execute(update(Flow).where(Flow.id == hook.flow_id).values(owner_id=owner))
    return hook


def fail(rt, client, hook, deal_id: str) -> None:
    post_deal(client, hook, deal(deal_id=deal_id))
    drain(rt)


def inbox(smtp: SmtpServer) -> dict[str, list[str]]:
    """Recipient → the texts received."""
    found: dict[str, list[str]] = {}
    for received in smtp.inbox.messages:
        message = received.parsed()
        for to in received.rcpt_tos:
            found.setdefault(to, []).append(f"{message['Subject']}\n{message.get_content()}")
    return found


def test_the_owner_hears_at_once_and_admins_hear_of_flows_nobody_owns(rt, client, smtp):
    owner = make_user(rt, "editor", "editora@empresa.es")
    admin = make_user(rt, "admin", "jefa@empresa.es")
    make_user(rt, "viewer", "lector@empresa.es")
    owned, orphan = broken_hook(rt, owner.id), broken_hook(rt)
    fail(rt, client, owned, "D-OLD")
    notifications.send_due(rt)  # first look: what came before is not sent
    assert smtp.inbox.messages == []

    fail(rt, client, owned, "D-1")
    fail(rt, client, orphan, "D-2")
    assert notifications.send_due(rt) == 2
    assert notifications.send_due(rt) == 0  # each failure told once

    mail = inbox(smtp)
    assert set(mail) == {owner.email, admin.email}
    [to_owner] = mail[owner.email]
    assert "ha fallado una ejecución de «Flujo roto»" in to_owner
    assert "D-1" in to_owner and "D-2" not in to_owner and "D-OLD" not in to_owner
    assert "/ui/runs/" in to_owner and "debe ser uno de estos: EUR" in to_owner
    assert "D-2" in mail[admin.email][0] and "D-1" not in mail[admin.email][0]


def test_a_daily_digest_goes_out_once_from_eight_in_the_morning(rt, client, smtp):
    owner = make_user(rt, "editor")
    with rt.sessions.begin() as s:
        s.execute(update(User).where(User.id == owner.id).values(notify="daily"))
    hook = broken_hook(rt, owner.id)
    early = datetime(2026, 12, 7, 7, 30, tzinfo=MADRID)
    notifications.send_due(rt, early)  # first look
    fail(rt, client, hook, "D-A")
    fail(rt, client, hook, "D-B")

    assert notifications.send_due(rt, early) == 0  # before 08:00
    assert notifications.send_due(rt, early.replace(hour=8, minute=5)) == 1
    assert notifications.send_due(rt, early.replace(hour=18)) == 0  # one a day
    [digest] = inbox(smtp)[owner.email]
    assert "2 ejecuciones fallidas en el último día" in digest
    assert "D-A" in digest and "D-B" in digest


def test_off_means_no_mail_and_the_choice_is_made_on_the_account_page(rt, client, smtp):
    signed_in(rt, client, "editor")
    with rt.sessions() as s:
        [me] = s.query(User).all()
    page = client.get("/ui/account/password").text
    assert "Avisos de ejecuciones fallidas" in page and 'value="immediate" checked' in page
    client.post("/ui/account/notifications", data={"notify": "off", "csrf_token": csrf(client)})
    hook = broken_hook(rt, me.id)
    notifications.send_due(rt)
    fail(rt, client, hook, "D-X")

    assert notifications.send_due(rt) == 0 and smtp.inbox.messages == []
    bad = client.post(
        "/ui/account/notifications", data={"notify": "siempre", "csrf_token": csrf(client)}
    )
    assert "Elige una de las opciones" in client.get(bad.headers["Location"]).text


def test_a_flow_made_in_the_builder_belongs_to_who_made_it(rt, client, smtp):
    signed_in(rt, client, "editor")
    client.post(
        "/ui/flows/new", data={"document": json.dumps(DEMO_FLOW), "csrf_token": csrf(client)}
    )
    with rt.sessions() as s:
        [me] = s.query(User).all()
        assert s.query(Flow).one().owner_id == me.id


def test_without_mail_configured_nothing_is_sent_and_the_failure_waits(rt, client, smtp):
    make_user(rt, "admin")
    notifications.send_due(rt)  # first look
    fail(rt, client, broken_hook(rt), "D-Z")
    bare = build_runtime(rt.settings, services={INVOICING_SETTINGS: InvoicingSettings()})
    try:
        assert notifications.send_due(bare) == 0  # no SMTP host: nothing to send with
    finally:
        bare.close()
    assert smtp.inbox.messages == []
    assert notifications.send_due(rt) == 1  # told once mail works


def test_a_person_who_uses_the_app_in_english_is_told_in_english(rt, client, smtp):
    owner = make_user(rt, "editor", "owner@company.com")
    hook = broken_hook(rt, owner.id)
    notifications.send_due(rt)  # first look
    sign_in_as(client, owner.email)
    assert client.get("/ui/runs?lang=en").status_code == 200  # the language they chose
    with rt.sessions() as s:
        assert s.get_one(User, owner.id).lang == "en"

    fail(rt, client, hook, "D-EN")
    assert notifications.send_due(rt) == 1

    [mail] = inbox(smtp)[owner.email]
    assert "Puente: a run of “Flujo roto” failed" in mail
    assert "D-EN" in mail and "must be one of: EUR" in mail and "(failed)" in mail
    assert "ejecución" not in mail and "debe ser" not in mail
    client.get("/ui/runs?lang=es")  # back to Spanish: so are the mails
    with rt.sessions() as s:
        assert s.get_one(User, owner.id).lang == "es"
