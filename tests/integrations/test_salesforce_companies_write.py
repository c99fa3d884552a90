"""Puente's customers → Salesforce accounts: a customer created in Puente is written as an
Account (name, NIF field, billing address) by the `salesforce.upsert_company` step; the
account is found by SOQL on its NIF field and updated when Salesforce already has it, else
created. Against the local Salesforce (tests/fakes/salesforce.py), through a real run, Redis
and both databases."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from connector import admin, events
from connector.models import Run, RunStatus
from connector.runtime import Runtime
from invoicing.service import CustomerData, Invoicing
from tests.conftest import drain
from tests.factories import make_api_key
from tests.fakes.salesforce import API, FakeSalesforce, fake_salesforce
from tests.integrations.test_salesforce import connect
from web import create_app

FLOW: dict[str, Any] = {
    "name": "Cliente nuevo → cuenta de Salesforce",
    "trigger": {"key": "invoicing.customer_created"},
    "steps": [
        {
            "id": "account",
            "name": "Crear o actualizar la cuenta",
            "action": "salesforce.upsert_company",
            "connection": "sf",
            "input": {
                "customer": {
                    "name": {"$expr": "trigger.name"},
                    "tax_id": {"$expr": "trigger.tax_id"},
                }
            },
        }
    ],
}


@dataclass
class Env:
    rt: Runtime
    crm: FakeSalesforce

    def new_customer(self, name: str, tax_id: str) -> None:
        with self.rt.sessions.begin() as s:
            Invoicing(s).find_or_create_customer(
                CustomerData.from_json({"name": name, "tax_id": tax_id})
            )
        events.dispatch(self.rt)
        drain(self.rt)

    def runs(self) -> list[Run]:
        with self.rt.sessions() as s:
            found = s.scalars(select(Run).order_by(Run.id)).all()
            s.expunge_all()
            return list(found)

    def writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p in self.crm.seen if m in ("POST", "PATCH") and "/sobjects/" in p]


@pytest.fixture
def crm() -> Iterator[FakeSalesforce]:
    with fake_salesforce() as org:
        yield org


@pytest.fixture
def env(local_rt: Runtime, crm: FakeSalesforce) -> Env:
    client = create_app(runtime=local_rt).test_client()
    headers = {"Authorization": f"Bearer {make_api_key(local_rt)}"}
    answer = connect(client, headers, crm)
    assert answer.status_code == 200, answer.json
    assert answer.json["settings"]["tax_id_field"] == "NIF__c"
    with local_rt.sessions.begin() as s:
        saved = admin.save_flow(s, local_rt.registry, FLOW, enabled=True)
        assert saved.report.errors == []
    return Env(local_rt, crm)


def test_a_new_customer_becomes_a_new_account_with_its_name_and_nif(env):
    env.new_customer("Ferretería López SL", "B91234567")

    [run] = env.runs()
    assert run.status == RunStatus.SUCCEEDED, run.error
    [account] = env.crm.accounts.values()
    assert (account["Name"], account["NIF__c"]) == ("Ferretería López SL", "B91234567")
    assert env.writes() == [("POST", f"{API}/sobjects/Account")]
    query = [p for m, p in env.crm.seen if m == "GET" and p.startswith(f"{API}/query?")]
    assert len(query) == 1  # looked for the NIF first
    assert run.key("customer_tax_id") == "B91234567"


def test_a_customer_whose_nif_salesforce_has_updates_that_account_and_creates_none(env):
    existing = env.crm.add_account(
        Name="Talleres Norte (antiguo)", NIF__c="A58818501", BillingCity="Bilbao"
    )

    env.new_customer("Talleres Norte SA", "A58818501")

    [run] = env.runs()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert list(env.crm.accounts) == [existing]
    account = env.crm.accounts[existing]
    assert (account["Name"], account["NIF__c"]) == ("Talleres Norte SA", "A58818501")
    assert account["BillingCity"] == "Bilbao"  # no address given: the account's stays
    assert env.writes() == [("PATCH", f"{API}/sobjects/Account/{existing}")]


def test_two_customers_one_new_one_known_make_one_account_and_update_the_other(env):
    env.new_customer("Ferretería López SL", "B91234567")
    [created] = env.crm.accounts
    known = env.crm.add_account(Name="Acme (antiguo)", NIF__c="B12345674")

    env.new_customer("Acme Soluciones SL", "B12345674")

    assert [r.status for r in env.runs()] == [RunStatus.SUCCEEDED] * 2
    assert set(env.crm.accounts) == {created, known}
    assert env.crm.accounts[known]["Name"] == "Acme Soluciones SL"
    assert env.writes()[-1] == ("PATCH", f"{API}/sobjects/Account/{known}")


def test_a_nif_field_salesforce_lacks_fails_the_run_saying_which_field(
    local_rt: Runtime, crm: FakeSalesforce
):
    client = create_app(runtime=local_rt).test_client()
    headers = {"Authorization": f"Bearer {make_api_key(local_rt)}"}
    assert connect(client, headers, crm, tax_id_field="CIF__c").status_code == 200
    with local_rt.sessions.begin() as s:
        admin.save_flow(s, local_rt.registry, FLOW, enabled=True)
    env = Env(local_rt, crm)

    env.new_customer("Ferretería López SL", "B91234567")

    [run] = env.runs()
    assert run.status == RunStatus.FAILED
    assert "CIF__c" in str(run.error)
    assert crm.accounts == {}
