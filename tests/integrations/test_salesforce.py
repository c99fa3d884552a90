"""Salesforce end to end: an Outbound Message for a won Opportunity becomes one draft invoice
with its line items and account; the invoice's number, link and "Cobrado" go back on the
opportunity. Against a local Salesforce (tests/fakes/salesforce.py: OAuth 2 token endpoint,
REST API v59.0), through the real app, Redis and both databases.

Outbound Messages are not signed and carry no timestamp: a delivery is authentic when it
arrives at the connection's secret address and names the connection's organization id.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from rq.registry import ScheduledJobRegistry
from sqlalchemy import func, select

from connector import events, runner
from connector.models import Event, Run, RunStatus
from connector.runtime import Runtime
from invoicing.models import Invoice
from tests.conftest import drain
from tests.factories import make_api_key, make_issuer
from tests.fakes.salesforce import FakeSalesforce, fake_salesforce
from triggers.salesforce import parse
from web import create_app

SAMPLE = Path("/work/shared/samples/salesforce_outbound_opportunity.xml")
XML = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}


@dataclass
class Env:
    rt: Runtime
    client: FlaskClient
    headers: dict[str, str]
    crm: FakeSalesforce
    hook: str  # the path of the connection's webhook address
    deal: str  # the opportunity's id
    account: str

    def invoices(self) -> list[Invoice]:
        with self.rt.sessions() as s:
            found = s.scalars(select(Invoice).order_by(Invoice.id)).all()
            s.expunge_all()
            return list(found)

    def runs(self) -> list[Run]:
        with self.rt.sessions() as s:
            found = s.scalars(select(Run).order_by(Run.id)).all()
            s.expunge_all()
            return list(found)

    def deal_run(self) -> Run:
        [run] = [r for r in self.runs() if r.key("deal_ref") is not None]
        return run

    def deal_field(self, name: str) -> Any:
        return self.crm.opportunities[self.deal].get(name)

    def send(self, notification: str, body: bytes | None = None) -> Any:
        raw = body if body is not None else self.crm.outbound_message(self.deal, notification)
        return self.client.post(self.hook, data=raw, headers=XML)

    def stored_events(self) -> int:
        with self.rt.sessions() as s:
            return s.scalar(select(func.count()).select_from(Event)) or 0


def seed(crm: FakeSalesforce) -> tuple[str, str]:
    """An account with its NIF and billing address; an opportunity with three line items."""
    account = crm.add_account(
        Name="Acme Soluciones SL",
        NIF__c="B12345674",
        BillingStreet="Calle Mayor 1\n2º izquierda",
        BillingPostalCode="28013",
        BillingCity="Madrid",
        BillingState="Madrid",
        BillingCountry="Spain",
    )
    deal = crm.add_opportunity(
        account,
        [
            {
                "name": "Consultoría (horas)",
                "code": "CONS-H",
                "quantity": 20.0,
                "price": 95.0,
                "discount": 10.0,
            },
            {"name": "Licencia ERP anual", "code": "LIC-ERP", "quantity": 1.0, "price": 770.5},
            {
                "name": "Formación",
                "code": "FORM-1",
                "quantity": 2.0,
                "price": 150.0,
                "description": "Sesión in situ",
            },
        ],
        Name="Implantación ERP Acme",
        StageName="Closed Won",
    )
    return deal, account


def connect(client: FlaskClient, headers: dict[str, str], crm: FakeSalesforce, **settings: Any):
    return client.put(
        "/api/v1/connections/sf",
        headers=headers,
        json={
            "type": "salesforce",
            "base_url": crm.url,
            "secret": crm.secret(),
            "settings": settings,
        },
    )


@pytest.fixture
def crm() -> Iterator[FakeSalesforce]:
    with fake_salesforce() as org:
        yield org


@pytest.fixture
def env(local_rt: Runtime, crm: FakeSalesforce) -> Env:
    deal, account = seed(crm)
    client = create_app(runtime=local_rt).test_client()
    headers = {"Authorization": f"Bearer {make_api_key(local_rt)}"}
    answer = connect(client, headers, crm)
    assert answer.status_code == 200, answer.json
    shown = answer.get_data(as_text=True)
    assert crm.client_secret not in shown and crm.refresh_token not in shown
    assert answer.json["settings"]["tax_id_field"] == "NIF__c"
    for key in ("salesforce.deal_won_to_invoice", "salesforce.invoice_status_to_crm"):
        installed = client.post(
            f"/api/v1/templates/{key}/install", headers=headers, json={"connection": "sf"}
        )
        assert installed.status_code == 201, installed.json
        assert installed.json["flow_id"]
    hook = answer.json["webhook_url"].removeprefix(local_rt.settings.public_url)
    return Env(local_rt, client, headers, crm, hook, deal, account)


def test_a_won_opportunity_becomes_a_draft_invoice_then_shows_its_number_and_cobrado(env):
    answer = env.send("04l7F000008aeAyQAI")

    assert answer.status_code == 200  # Salesforce needs its Ack, whatever happens next
    assert answer.content_type.startswith("text/xml")
    assert b"<Ack>true</Ack>" in answer.data and b"notificationsResponse" in answer.data
    drain(env.rt)

    run = env.deal_run()
    assert run.status == RunStatus.SUCCEEDED, run.error
    [invoice] = env.invoices()
    with env.rt.sessions() as s:
        invoice = s.get_one(Invoice, invoice.id)
        assert (invoice.status, invoice.source, invoice.external_ref) == (
            "draft",
            "salesforce@connection:sf",
            env.deal,
        )
        customer = invoice.customer
        assert (customer.tax_id, customer.name) == ("B12345674", "Acme Soluciones SL")
        assert (customer.street, customer.postal_code, customer.city, customer.country) == (
            "Calle Mayor 1 2º izquierda",
            "28013",
            "Madrid",
            "ES",
        )
        lines = [
            (li.sku, li.description, li.quantity, li.unit_price, li.discount_percent, li.base)
            for li in invoice.lines
        ]
        assert lines == [
            (
                "CONS-H",
                "Consultoría (horas)",
                Decimal(20),
                Decimal(95),
                Decimal(10),
                Decimal("1710.00"),
            ),
            (
                "LIC-ERP",
                "Licencia ERP anual",
                Decimal(1),
                Decimal("770.5"),
                Decimal(0),
                Decimal("770.50"),
            ),
            (
                "FORM-1",
                "Formación — Sesión in situ",
                Decimal(2),
                Decimal(150),
                Decimal(0),
                Decimal("300.00"),
            ),
        ]
        assert {li.tax_rate for li in invoice.lines} == {Decimal(21)}
        invoice_id = invoice.id
    link = env.deal_field("Puente_Invoice_URL__c")
    assert link == f"{env.rt.settings.public_url}/ui/invoices/{invoice_id}"
    # Three line items, two to a page: the second came from nextRecordsUrl.
    assert any("/query/" in path for _, path in env.crm.seen)
    assert env.crm.tokens_issued == 1

    # The access token expires (Salesforce's session timeout): 401, refreshed, tried again.
    env.crm.expire_tokens()
    make_issuer(env.rt)
    issued = env.client.post(f"/api/v1/invoices/{invoice_id}/issue", headers=env.headers)
    assert issued.status_code == 200, issued.json
    events.dispatch(env.rt)
    drain(env.rt)
    assert env.crm.tokens_issued == 2
    assert env.deal_field("Puente_Invoice_Number__c") == issued.json["number"]
    assert env.deal_field("Puente_Payment_Status__c") == "Pendiente"

    paid = env.client.post(
        f"/api/v1/invoices/{invoice_id}/payments",
        headers=env.headers,
        json={"amount": issued.json["totals"]["total"], "method": "transfer"},
    )
    assert paid.status_code == 201, paid.json
    events.dispatch(env.rt)
    drain(env.rt)

    assert env.deal_field("Puente_Invoice_Number__c") == issued.json["number"]
    assert env.deal_field("Puente_Invoice_URL__c") == link
    assert env.deal_field("Puente_Payment_Status__c") == "Cobrado"
    assert all(r.status == RunStatus.SUCCEEDED for r in env.runs()), [r.error for r in env.runs()]
    assert env.crm.notes == []


def test_the_same_message_again_and_a_second_won_message_still_make_one_invoice(env):
    first = env.send("04l7F000008aeAyQAI")
    again = env.send("04l7F000008aeAyQAI")  # Salesforce resends until it gets its Ack

    assert (first.status_code, again.status_code) == (200, 200)
    assert b"<Ack>true</Ack>" in again.data
    drain(env.rt)
    assert env.send("04l7F000008aeAzQAI").status_code == 200  # won again: a new notification
    drain(env.rt)

    assert len(env.invoices()) == 1
    deal_runs = [r for r in env.runs() if r.key("deal_ref") is not None]
    assert [r.status for r in deal_runs] == [RunStatus.SUCCEEDED, RunStatus.SUCCEEDED]


def test_a_message_from_another_org_is_refused_and_nothing_is_stored(env):
    other = env.crm.outbound_message(env.deal, "04l7F000008aeAyQAI", org_id="00D000000000001EAA")

    answer = env.send("unused", other)

    assert answer.status_code == 401
    assert "organization_id" in answer.json["message"]
    assert env.stored_events() == 0
    assert env.runs() == [] and env.rt.queue.count == 0


def test_a_message_to_an_address_that_is_not_the_connection_s_is_not_found(env):
    answer = env.client.post(
        "/hooks/not-the-token",
        data=env.crm.outbound_message(env.deal, "04l7F000008aeAyQAI"),
        headers=XML,
    )

    assert answer.status_code == 404
    assert env.stored_events() == 0


LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    b"<lolz>&lol3;</lolz>"
)
EXTERNAL = (
    b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
    b"<soapenv:Body>&x;</soapenv:Body></soapenv:Envelope>"
)
NETWORK = (
    b'<?xml version="1.0"?><!DOCTYPE e SYSTEM "http://127.0.0.1:9/evil.dtd">'
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"/>'
)
UTF16 = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE a [<!ENTITY b "c">]><a>&b;</a>'.encode(
    "utf-16"
)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (LAUGHS, "DOCTYPE"),
        (EXTERNAL, "DOCTYPE"),
        (NETWORK, "DOCTYPE"),
        (UTF16, "DOCTYPE"),
        (b"<soapenv:Envelope", "well-formed"),
        (b'{"deal_id": "0067F000003pmdWQAQ", "event_id": "e"}', "well-formed"),
        (b"<a/>", "SOAP"),
        (b"", "empty"),
    ],
    ids=[
        "billion-laughs",
        "external-entity",
        "external-dtd",
        "utf16-doctype",
        "broken",
        "json",
        "not-soap",
        "empty",
    ],
)
def test_hostile_or_broken_xml_is_refused_with_400_and_nothing_is_stored(env, body, says):
    answer = env.send("unused", body)

    assert answer.status_code == 400
    assert says in answer.json["message"]
    assert env.stored_events() == 0 and env.runs() == []


def test_an_opportunity_in_a_stage_that_is_not_won_stops_the_run_and_invoices_nothing(env):
    env.crm.set_stage(env.deal, "Negotiation/Review")

    assert env.send("04l7F000008aeB0QAI").status_code == 200
    drain(env.rt)

    run = env.deal_run()
    assert run.status == RunStatus.STOPPED
    assert "ganada" in run.error["message"]
    assert env.invoices() == []
    assert not any(method == "PATCH" for method, _ in env.crm.seen)


def test_the_configured_won_stages_decide_instead_of_is_won(env):
    env.crm.set_stage(env.deal, "Contrato firmado")
    changed = connect(env.client, env.headers, env.crm, won_stages=["Contrato firmado"])
    assert changed.status_code == 200, changed.json

    env.send("04l7F000008aeB1QAI")
    drain(env.rt)

    assert env.deal_run().status == RunStatus.SUCCEEDED
    assert len(env.invoices()) == 1


def test_a_won_opportunity_whose_account_has_no_nif_gets_a_spanish_note_then_is_invoiced(env):
    env.crm.accounts[env.account]["NIF__c"] = None

    env.send("04l7F000008aeB2QAI")
    drain(env.rt)

    run = env.deal_run()
    assert run.status == RunStatus.FAILED
    [note] = env.crm.notes
    assert note["ParentId"] == env.deal
    assert note["Body"].startswith(
        "Falta el NIF/CIF del cliente en la empresa Acme Soluciones SL (campo 'NIF__c')"
    )
    assert note["Title"].startswith("Puente: Falta el NIF/CIF") and len(note["Title"]) <= 80
    assert run.error["message"] == note["Body"]
    assert env.invoices() == []

    env.crm.accounts[env.account]["NIF__c"] = "B12345674"
    env.send("04l7F000008aeB3QAI")  # marked won again: a new notification
    drain(env.rt)

    [invoice] = env.invoices()
    assert invoice.external_ref == env.deal
    assert len(env.crm.notes) == 1


@pytest.mark.parametrize(
    ("status", "headers"),
    [(429, {"Retry-After": "1"}), (503, {}), (403, {})],
    ids=["429-retry-after", "503", "403-request-limit-exceeded"],
)
def test_salesforce_refusing_for_now_on_the_opportunity_read_is_retried_then_succeeds(
    env, status, headers
):
    env.crm.fail_once("GET", f"/sobjects/Opportunity/{env.deal}", status, headers)

    env.send("04l7F000008aeB4QAI")
    drain(env.rt)

    run = env.deal_run()
    with env.rt.sessions() as s:
        assert s.get_one(Run, run.id).attempts == 1
    assert ScheduledJobRegistry(queue=env.rt.queue).get_job_ids() == [f"run-{run.id}-a1"]
    assert env.invoices() == []

    outcome = runner.execute_run(env.rt.sessions, env.rt.registry, run.id, tools=env.rt.tools)

    assert outcome.status == "succeeded"
    assert len(env.invoices()) == 1
    reads = [p for m, p in env.crm.seen if m == "GET" and f"Opportunity/{env.deal}" in p]
    assert len(reads) == 2


def test_a_custom_field_missing_in_salesforce_fails_the_write_saying_which(env):
    changed = connect(env.client, env.headers, env.crm, invoice_url_field="Factura__c")
    assert changed.status_code == 200, changed.json

    env.send("04l7F000008aeB5QAI")
    drain(env.rt)

    run = env.deal_run()
    assert run.status == RunStatus.FAILED
    assert "Factura__c" in run.error["message"] and "README" in run.error["message"]


def test_test_connection_names_the_org_and_keeps_it_as_the_account(env):
    ok = env.client.post("/api/v1/connections/sf/test", headers=env.headers)
    assert ok.json["ok"] is True, ok.json
    assert env.crm.org_id in ok.json["message"] and env.crm.org_id in ok.json["message_es"]
    shown = env.client.get("/api/v1/connections/sf", headers=env.headers).json
    assert shown["account_id"] == env.crm.org_id

    env.crm.refresh_token = "revoked"
    env.crm.expire_tokens()
    refused = env.client.post("/api/v1/connections/sf/test", headers=env.headers)

    assert refused.json["ok"] is False
    assert "refresh token" in refused.json["message"]
    assert "token de refresco" in refused.json["message_es"]


def test_a_connection_without_a_valid_organization_id_is_refused(local_rt, crm):
    client = create_app(runtime=local_rt).test_client()
    headers = {"Authorization": f"Bearer {make_api_key(local_rt)}"}

    answer = client.put(
        "/api/v1/connections/sf",
        headers=headers,
        json={
            "type": "salesforce",
            "base_url": crm.url,
            "secret": {**crm.secret(), "organization_id": "00D7F00000107Xs"},
        },
    )

    assert answer.status_code == 422
    assert answer.json["field"] == "secret.organization_id"
    assert "00D7F00000107Xs" not in answer.get_data(as_text=True)


# Parsing, on its own


def test_the_real_sample_message_is_one_item_keyed_by_its_notification_id():
    [item] = parse(SAMPLE.read_bytes(), "d-1", {})

    assert item.dedup_key == "salesforce:04l7F000008aeAyQAI"
    assert item.data == {
        "deal_id": "0067F000003pmdWQAQ",
        "event_id": "04l7F000008aeAyQAI",
        "occurred_at": None,
        "stage": "Perception Analysis",
        "account_id": "00D7F00000107XsUAI",
    }


def test_a_batch_gives_one_item_per_opportunity_and_none_for_other_objects():
    sample = SAMPLE.read_text()
    account = (
        '<Notification><Id>04l7F000008aeZZQAI</Id><sObject xsi:type="sf:Account" '
        'xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>0017F000007ydJmQAI</sf:Id>'
        "</sObject></Notification>"
    )
    won = (
        '<Notification><Id>04l7F000008aeB9QAI</Id><sObject xsi:type="sf:Opportunity" '
        'xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>0067F000003pmdXQAQ</sf:Id>'
        "<sf:IsWon>true</sf:IsWon><sf:LastModifiedDate>2026-12-04T10:00:00.000Z"
        "</sf:LastModifiedDate><sf:StageName>Closed Won</sf:StageName></sObject></Notification>"
    )
    batch = sample.replace("</notifications>", account + won + "</notifications>")

    items = parse(batch.encode(), "d-1", {})

    assert [i.data["deal_id"] for i in items] == ["0067F000003pmdWQAQ", "0067F000003pmdXQAQ"]
    assert items[1].data["occurred_at"] == "2026-12-04T10:00:00+00:00"
    assert items[1].data["stage"] == "Closed Won"


def test_more_notifications_than_salesforce_sends_are_refused():
    sample = SAMPLE.read_text()
    start = sample.index("<Notification>")
    one = sample[start : sample.index("</notifications>")]
    many = sample.replace(one, one * 101)

    with pytest.raises(ValueError, match="at most 100"):
        parse(many.encode(), "d-1", {})
