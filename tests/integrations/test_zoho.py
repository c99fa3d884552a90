"""Zoho CRM end to end: a connection through the API, both templates installed, the channel
enabled at a local Zoho, a notification → a draft invoice with the deal's lines and account →
its link, then its number and "Cobrado" on the deal; redeliveries, forgeries, stages that are
not won, a missing NIF, Zoho's 429 and expired tokens, and the channel's renewal."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from connector import events, lifecycle, runner
from connector.models import Event, Run, TriggerState
from connector.runtime import Runtime
from database import utcnow
from invoicing.models import Invoice
from tests.conftest import drain
from tests.factories import make_api_key, make_issuer
from tests.fakes.zoho import (
    CLIENT_ID,
    CLIENT_SECRET,
    ORG_ID,
    REFRESH_TOKEN,
    FakeZoho,
    fake_zoho,
)
from web import create_app

NOTIFY_TOKEN = "puente-zoho-notify-7f3a9c2e4b"
NIF = "B12345674"


@pytest.fixture
def zoho() -> Iterator[FakeZoho]:
    with fake_zoho() as server:
        yield server


class Crm:
    """The app on a runtime that may call 127.0.0.1, an API key, and the local Zoho."""

    def __init__(self, rt: Runtime, zoho: FakeZoho) -> None:
        self.rt, self.zoho = rt, zoho
        self.client = create_app(runtime=rt).test_client()
        self.headers = {"Authorization": f"Bearer {make_api_key(rt)}"}
        self.webhook_url = ""
        self.channel_id = ""

    def connect(self, **settings: Any) -> dict[str, Any]:
        answer = self.client.put(
            "/api/v1/connections/zoho",
            headers=self.headers,
            json={
                "type": "zoho",
                "base_url": self.zoho.url,
                "secret": {
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "refresh_token": REFRESH_TOKEN,
                    "accounts_url": self.zoho.accounts_url,
                    "notify_token": NOTIFY_TOKEN,
                },
                "settings": {"tax_id_field": "NIF", **settings},
            },
        )
        assert answer.status_code == 200, answer.json
        self.webhook_url = answer.json["webhook_url"]
        return dict(answer.json)

    def install(self) -> None:
        for key in ("zoho.deal_won_to_invoice", "zoho.invoice_status_to_crm"):
            answer = self.client.post(
                f"/api/v1/templates/{key}/install",
                headers=self.headers,
                json={"connection": "zoho"},
            )
            assert answer.status_code == 201, answer.json
            assert answer.json["flow_id"]
        lifecycle.sync(self.rt)
        [self.channel_id] = self.zoho.channels

    def notify(self, deal_id: str, **changes: Any) -> Any:
        token = changes.pop("token", NOTIFY_TOKEN)
        body = self.zoho.notification(self.channel_id, token, [deal_id], **changes)
        return self.post(body)

    def post(self, body: dict[str, Any]) -> Any:
        path = self.webhook_url.removeprefix(self.rt.settings.public_url)
        return self.client.post(path, data=json.dumps(body), content_type="application/json")

    def invoices(self, deal_id: str) -> list[Invoice]:
        with self.rt.sessions() as s:
            return list(s.scalars(select(Invoice).where(Invoice.external_ref == deal_id)))

    def runs(self) -> list[Run]:
        with self.rt.sessions() as s:
            return list(s.scalars(select(Run).order_by(Run.id)))


@pytest.fixture
def crm(local_rt: Runtime, zoho: FakeZoho) -> Crm:
    made = Crm(local_rt, zoho)
    made.connect()
    made.install()
    return made


def won_deal(zoho: FakeZoho, nif: str | None = NIF) -> str:
    account = zoho.add_account("Acme Soluciones SL", nif)
    deal_id = zoho.add_deal("Implantación ERP Acme", "Cerrado ganado", account)
    zoho.add_product(deal_id, "CONS-H", "Consultoría (horas)", 20, 95.0, discount=190.0)
    zoho.add_product(deal_id, "LIC-ERP", "Licencia ERP anual", 1, 770.5)
    zoho.add_product(deal_id, "FORM", "Formación", 3, 100.0, discount=10.0)
    return deal_id


def test_the_connection_answers_its_webhook_url_and_never_a_secret(local_rt, zoho):
    crm = Crm(local_rt, zoho)
    shown = crm.connect()

    assert shown["webhook_url"].startswith(f"{local_rt.settings.public_url}/hooks/")
    text = json.dumps(shown)
    for secret in (CLIENT_SECRET, REFRESH_TOKEN, NOTIFY_TOKEN, CLIENT_ID):
        assert secret not in text
    tested = crm.client.post("/api/v1/connections/zoho/test", headers=crm.headers).json
    assert tested["ok"] is True and "Acme Demo" in tested["message_es"]
    assert crm.client.get("/api/v1/connections/zoho", headers=crm.headers).json["account_id"] == (
        ORG_ID
    )
    # Zoho's scheme, with a token from the data centre's accounts server.
    assert zoho.calls("POST", "/oauth/v2/token")
    assert (
        zoho.calls("GET", "/crm/v2/org")[0]
        .headers["Authorization"]
        .startswith("Zoho-oauthtoken 1000.")
    )


def test_the_channel_is_enabled_with_puente_s_token_renewed_and_disabled(crm):
    channel = crm.zoho.channels[crm.channel_id]
    assert channel["notify_url"] == crm.webhook_url
    assert channel["token"] == NOTIFY_TOKEN
    assert channel["events"] == ["Deals.edit", "Deals.create"]

    with crm.rt.sessions() as s:
        [state] = s.scalars(select(TriggerState)).all()
        expires = state.state["expires_at"]
    assert lifecycle.sync(crm.rt, now=utcnow() + timedelta(hours=11))["renewed"] == []
    done = lifecycle.sync(crm.rt, now=utcnow() + timedelta(hours=13))
    assert len(done["renewed"]) == 1
    [patch] = crm.zoho.calls("PATCH", "/actions/watch")
    assert patch.body["watch"][0]["channel_id"] == crm.channel_id
    with crm.rt.sessions() as s:
        assert s.scalars(select(TriggerState)).one().state["expires_at"] >= expires
    assert lifecycle.sync(crm.rt, now=utcnow() + timedelta(hours=11))["renewed"] == []

    for flow in crm.client.get("/api/v1/flows", headers=crm.headers).json["items"]:
        if flow["trigger"] == "zoho.deal_won":
            crm.client.post(f"/api/v1/flows/{flow['id']}/disable", headers=crm.headers)
    lifecycle.sync(crm.rt)
    assert crm.zoho.channels == {}
    assert crm.zoho.calls("DELETE", f"channel_ids={crm.channel_id}")


def test_a_won_deal_becomes_a_draft_invoice_then_its_number_and_cobrado_on_the_deal(crm):
    deal_id = won_deal(crm.zoho)
    crm.zoho.per_page_max = 2  # the products come in two pages

    answer = crm.notify(deal_id)
    assert answer.status_code == 202, answer.json
    drain(crm.rt)

    [invoice] = crm.invoices(deal_id)
    shown = crm.client.get(f"/api/v1/invoices/{invoice.id}", headers=crm.headers).json
    assert shown["status"] == "draft" and shown["source"] == "zoho@connection:zoho"
    assert shown["customer"]["tax_id"] == NIF and shown["customer"]["name"] == "Acme Soluciones SL"
    assert shown["customer"]["address"] == {
        "street": "Calle Mayor 1",
        "postal_code": "28013",
        "city": "Madrid",
        "province": "Madrid",
        "country": "ES",
    }
    lines = [
        (line["sku"], Decimal(line["quantity"]), Decimal(line["unit_price"]),
         Decimal(line["discount_percent"]))
        for line in shown["lines"]
    ]  # fmt: skip
    assert lines == [
        ("CONS-H", 20, Decimal("95"), Decimal("10")),  # 190 off 1,900: 10 %
        ("LIC-ERP", 1, Decimal("770.5"), 0),
        ("FORM", 3, Decimal("96.66666667"), 0),  # 10 off 300 is no exact %: the net price
    ]
    assert Decimal(shown["totals"]["base"]) == Decimal("1710") + Decimal("770.50") + 290
    deal = crm.zoho.deals[deal_id]
    assert deal["puente_invoice_url"].endswith(f"/ui/invoices/{invoice.id}")
    assert crm.zoho.notes.get(deal_id) is None
    assert len(crm.zoho.calls("GET", f"/Deals/{deal_id}/Products")) == 2

    make_issuer(crm.rt)
    issued = crm.client.post(f"/api/v1/invoices/{invoice.id}/issue", headers=crm.headers).json
    events.dispatch(crm.rt)
    drain(crm.rt)
    assert deal["puente_invoice_number"] == issued["number"]
    assert deal["puente_payment_status"] == "Pendiente"

    paid = crm.client.post(
        f"/api/v1/invoices/{invoice.id}/payments",
        headers={**crm.headers, "Idempotency-Key": "pay-1"},
        json={"amount": issued["totals"]["total"]},
    )
    assert paid.status_code == 201, paid.json
    events.dispatch(crm.rt)
    drain(crm.rt)
    assert deal["puente_payment_status"] == "Cobrado"
    assert deal["puente_invoice_number"] == issued["number"]
    assert deal["puente_invoice_url"].endswith(f"/ui/invoices/{invoice.id}")


def test_the_same_notification_again_and_a_second_won_event_make_still_one_invoice(crm):
    deal_id = won_deal(crm.zoho)
    body = crm.zoho.notification(crm.channel_id, NOTIFY_TOKEN, [deal_id])

    assert crm.post(body).status_code == 202
    again = crm.post(body)
    assert again.status_code == 200 and again.json["duplicate"] is True
    drain(crm.rt)
    later = crm.zoho.notification(
        crm.channel_id, NOTIFY_TOKEN, [deal_id], server_time=body["server_time"] + 5000
    )
    assert crm.post(later).status_code == 202
    drain(crm.rt)

    [invoice] = crm.invoices(deal_id)
    links = {put.body["data"][0]["puente_invoice_url"] for put in crm.zoho.calls("PUT", deal_id)}
    assert links == {f"{crm.rt.settings.public_url}/ui/invoices/{invoice.id}"}


def test_our_own_write_back_and_other_modules_start_nothing(crm):
    deal_id = won_deal(crm.zoho)

    fields = crm.notify(deal_id, fields=["puente_invoice_url", "Modified_Time"])
    other = crm.notify(deal_id, module="Contacts")

    assert fields.json["run_ids"] == [] and other.json["run_ids"] == []
    assert crm.runs() == []


@pytest.mark.parametrize(
    "forged",
    [
        {"token": "not-the-token"},
        {"token": ""},
        {"server_time": 1_000_000_000_000},  # 2001: stale, refused as a replay
    ],
    ids=["wrong token", "no token", "stale"],
)
def test_a_notification_without_the_channel_s_token_or_stale_is_refused(crm, forged):
    deal_id = won_deal(crm.zoho)
    body = {**crm.zoho.notification(crm.channel_id, NOTIFY_TOKEN, [deal_id]), **forged}

    answer = crm.post(body)

    assert answer.status_code == 401
    with crm.rt.sessions() as s:
        assert s.scalars(select(Event)).all() == []
    assert crm.runs() == []


def test_a_deal_in_a_stage_that_is_not_won_stops_and_nothing_is_invoiced(crm):
    account = crm.zoho.add_account("Acme Soluciones SL", NIF)
    deal_id = crm.zoho.add_deal("Aún negociando", "Negotiation/Review", account)
    crm.zoho.add_product(deal_id, "LIC-ERP", "Licencia ERP anual", 1, 770.5)

    crm.notify(deal_id)
    drain(crm.rt)

    [run] = [r for r in crm.runs() if r.key("deal_ref") == deal_id]
    assert run.status == "stopped"
    assert crm.invoices(deal_id) == []
    assert "puente_invoice_url" not in crm.zoho.deals[deal_id]


def test_won_stages_of_the_connection_win_over_the_pipeline(local_rt, zoho):
    crm = Crm(local_rt, zoho)
    crm.connect(won_stages=["Negotiation/Review"])
    crm.install()
    account = zoho.add_account("Acme Soluciones SL", NIF)
    deal_id = zoho.add_deal("Vale con la negociación", "Negotiation/Review", account)
    zoho.add_product(deal_id, "LIC-ERP", "Licencia ERP anual", 1, 770.5)

    crm.notify(deal_id)
    drain(local_rt)

    assert len(crm.invoices(deal_id)) == 1
    assert not zoho.calls("GET", "/settings/pipeline")


def test_a_won_deal_without_nif_gets_a_spanish_note_and_is_invoiced_once_fixed(crm):
    deal_id = won_deal(crm.zoho, nif=None)

    crm.notify(deal_id)
    drain(crm.rt)

    [note] = crm.zoho.notes[deal_id]
    assert "Falta el NIF/CIF del cliente en la empresa Acme Soluciones SL" in note["Note_Content"]
    [run] = crm.runs()
    assert run.status == "failed" and note["Note_Content"] in run.error["message"]
    assert crm.invoices(deal_id) == []

    account_id = crm.zoho.deals[deal_id]["Account_Name"]["id"]
    crm.zoho.accounts[account_id]["NIF"] = NIF
    crm.notify(deal_id, server_time=int(utcnow().timestamp() * 1000) + 1000)
    drain(crm.rt)

    [invoice] = crm.invoices(deal_id)
    shown = crm.client.get(f"/api/v1/invoices/{invoice.id}", headers=crm.headers).json
    assert shown["customer"]["tax_id"] == NIF


def test_zoho_s_429_on_the_deal_read_is_retried_and_then_succeeds(crm):
    deal_id = won_deal(crm.zoho)
    crm.zoho.fail_next("GET", f"/Deals/{deal_id}", 429, **{"Retry-After": "1"})

    [run_id] = crm.notify(deal_id).json["run_ids"]
    drain(crm.rt)
    with crm.rt.sessions() as s:
        assert s.get_one(Run, run_id).status == "queued"  # its retry waits on the scheduler
    assert crm.invoices(deal_id) == []

    done = runner.execute_run(crm.rt.sessions, crm.rt.registry, run_id, tools=crm.rt.tools)

    assert done.status == "succeeded"
    assert len(crm.invoices(deal_id)) == 1


def test_an_access_token_zoho_no_longer_takes_is_refreshed_once_and_the_call_repeated(crm):
    deal_id = won_deal(crm.zoho)
    issued = crm.zoho.tokens_issued
    crm.zoho.expire_tokens()  # INVALID_TOKEN on the next call

    crm.notify(deal_id)
    drain(crm.rt)

    assert len(crm.invoices(deal_id)) == 1
    assert crm.zoho.tokens_issued == issued + 1
