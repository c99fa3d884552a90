"""Salesforce accounts → Puente's customers: an Account created or changed in Salesforce (an
Outbound Message on Account, sent to the same address and checked by the same org id as the
Opportunity's) is read through the REST API and found or created as a customer by its NIF/CIF,
once. Against the local Salesforce (tests/fakes/salesforce.py), through the real app, Redis and
both databases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from connector.models import Event, Run, RunStatus
from connector.runtime import Runtime
from invoicing.models import Customer
from tests.conftest import drain
from tests.factories import make_api_key
from tests.fakes.salesforce import API, FakeSalesforce
from tests.integrations.test_salesforce import XML, Env, connect, crm, seed  # noqa: F401
from triggers.salesforce import parse, parse_account
from web import create_app

_ids = iter(range(100000, 200000))


def notification() -> str:
    """A new Outbound Message notification Id (18 characters, 04l…)."""
    return f"04l7F000008{next(_ids):06d}A"


@dataclass
class Accounts:
    env: Env

    @property
    def crm(self) -> FakeSalesforce:
        return self.env.crm

    def send(self, body: bytes) -> Any:
        return self.env.client.post(self.env.hook, data=body, headers=XML)

    def changed(self, *account_ids: str, org_id: str | None = None) -> Any:
        notes = [(notification(), a) for a in account_ids]
        return self.send(self.crm.account_message(*notes, org_id=org_id))

    def customers(self) -> list[Customer]:
        with self.env.rt.sessions() as s:
            found = s.scalars(select(Customer).order_by(Customer.id)).all()
            s.expunge_all()
            return list(found)

    def runs(self) -> list[Run]:
        return [r for r in self.env.runs() if r.key("company_ref") is not None]


@pytest.fixture
def accounts(local_rt: Runtime, crm: FakeSalesforce) -> Accounts:  # noqa: F811
    deal, account = seed(crm)
    client = create_app(runtime=local_rt).test_client()
    headers = {"Authorization": f"Bearer {make_api_key(local_rt)}"}
    answer = connect(client, headers, crm)
    assert answer.status_code == 200, answer.json
    for key in ("salesforce.account_to_customer", "salesforce.deal_won_to_invoice"):
        installed = client.post(
            f"/api/v1/templates/{key}/install", headers=headers, json={"connection": "sf"}
        )
        assert installed.status_code == 201, installed.json
    hook = answer.json["webhook_url"].removeprefix(local_rt.settings.public_url)
    return Accounts(Env(local_rt, client, headers, crm, hook, deal, account))


def new_account(api: FakeSalesforce, nif: str | None) -> str:
    return api.add_account(
        Name="Ferretería López SL",
        NIF__c=nif,
        BillingStreet="Calle Real 3\nLocal 2",
        BillingPostalCode="41001",
        BillingCity="Sevilla",
        BillingState="Sevilla",
        BillingCountryCode="ES",
        BillingCountry="Spain",
    )


def test_an_account_with_its_nif_becomes_one_customer_with_its_name_and_billing_address(
    accounts,
):
    account = new_account(accounts.crm, "b-9123456-7")

    answer = accounts.changed(account)

    assert answer.status_code == 200  # Salesforce's Ack, as for opportunities
    assert answer.content_type.startswith("text/xml")
    assert b"<Ack>true</Ack>" in answer.data
    drain(accounts.env.rt)

    [run] = accounts.runs()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert [r for r in accounts.env.runs() if r.key("deal_ref") is not None] == []
    [customer] = accounts.customers()
    assert (customer.tax_id, customer.name) == ("B91234567", "Ferretería López SL")
    address = (customer.street, customer.postal_code, customer.city, customer.province)
    assert address == ("Calle Real 3 Local 2", "41001", "Sevilla", "Sevilla")
    assert customer.country == "ES"
    assert ("GET", f"{API}/sobjects/Account/{account}") in accounts.crm.seen


def test_an_account_without_nif_stops_its_run_and_makes_no_customer_until_it_has_one(accounts):
    account = new_account(accounts.crm, None)
    accounts.changed(account)
    drain(accounts.env.rt)

    [run] = accounts.runs()
    assert run.status == RunStatus.STOPPED
    assert "la cuenta no tiene NIF/CIF todavía" in run.error["message"]
    assert accounts.customers() == []

    accounts.crm.accounts[account]["NIF__c"] = "B91234567"
    accounts.changed(account)
    drain(accounts.env.rt)

    [customer] = accounts.customers()
    assert customer.tax_id == "B91234567"


def test_the_same_account_changed_again_and_a_resent_message_are_still_one_customer(accounts):
    account = new_account(accounts.crm, "B91234567")
    body = accounts.crm.account_message((notification(), account))
    assert accounts.send(body).status_code == 200
    assert accounts.send(body).status_code == 200  # resent until Salesforce gets its Ack
    drain(accounts.env.rt)

    accounts.crm.accounts[account]["BillingCity"] = "Dos Hermanas"
    accounts.changed(account)
    drain(accounts.env.rt)

    runs = accounts.runs()
    assert [r.status for r in runs] == [RunStatus.SUCCEEDED] * 2, [r.error for r in runs]
    [customer] = accounts.customers()
    assert customer.tax_id == "B91234567"


def test_an_opportunity_message_starts_no_account_run_and_both_answer_the_same_ack(accounts):
    deal_answer = accounts.env.send("04l7F000008aeAyQAI")
    account_answer = accounts.changed(new_account(accounts.crm, "B91234567"))
    drain(accounts.env.rt)

    assert deal_answer.status_code == account_answer.status_code == 200
    assert deal_answer.data == account_answer.data
    assert b"<Ack>true</Ack>" in deal_answer.data
    [deal_run] = [r for r in accounts.env.runs() if r.key("deal_ref") is not None]
    assert deal_run.status == RunStatus.SUCCEEDED, deal_run.error
    assert len(accounts.runs()) == 1  # the account's only
    assert {c.tax_id for c in accounts.customers()} == {"B91234567", "B12345674"}
    assert len(accounts.env.invoices()) == 1


def test_an_account_message_of_several_accounts_makes_one_run_each(accounts):
    first = new_account(accounts.crm, "B91234567")
    second = accounts.crm.add_account(Name="Talleres Norte SA", NIF__c="A58818501")

    answer = accounts.changed(first, second)

    assert answer.status_code == 200
    drain(accounts.env.rt)
    assert sorted(r.key("company_ref") for r in accounts.runs()) == sorted([first, second])
    assert {c.tax_id for c in accounts.customers()} == {"B91234567", "A58818501"}


def test_an_account_message_from_another_org_is_refused_and_nothing_is_stored(accounts):
    answer = accounts.changed(new_account(accounts.crm, "B91234567"), org_id="00D000000000001EAA")

    assert answer.status_code == 401
    with accounts.env.rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 0
    assert accounts.customers() == []


def test_an_account_salesforce_no_longer_has_fails_its_run_saying_so(accounts):
    account = new_account(accounts.crm, "B91234567")
    body = accounts.crm.account_message((notification(), account))
    del accounts.crm.accounts[account]

    accounts.send(body)
    drain(accounts.env.rt)

    [run] = accounts.runs()
    assert run.status == RunStatus.FAILED
    assert f"no tiene la cuenta {account}" in str(run.error)
    assert accounts.customers() == []


def test_each_trigger_reads_only_its_own_object_s_notifications(crm):  # noqa: F811
    deal, account = seed(crm)
    mixed = crm.message(
        [
            ("04l7F000008aaaaQAA", "Opportunity", crm.opportunities[deal], ("Id", "StageName")),
            ("04l7F000008aaabQAA", "Account", crm.accounts[account], ("Id", "Name")),
            ("04l7F000008aaacQAA", "Contact", {"Id": "0037F00000AbCdEQAV"}, ("Id",)),
        ]
    )

    deals = parse(mixed, "d", {})
    companies = parse_account(mixed, "d", {})

    assert [(i.data["deal_id"], i.data["event_id"]) for i in deals] == [
        (deal, "04l7F000008aaaaQAA")
    ]
    assert [(i.data["company_id"], i.data["event_id"]) for i in companies] == [
        (account, "04l7F000008aaabQAA")
    ]
    assert companies[0].data["account_id"] == crm.org_id
    for read in (parse, parse_account):  # only a SOAP body is read
        with pytest.raises(ValueError, match="SOAP"):
            read({"deal_id": deal, "company_id": account, "event_id": "e"}, "d", {})
