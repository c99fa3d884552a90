"""Puente's customers → Zoho CRM accounts: a customer created in Puente is written as an
Account (name, NIF field, billing address) by the `zoho.upsert_company` step; the account is
found by Zoho's search on its NIF field and updated when Zoho already has it, else created.
Against the local Zoho (tests/fakes/zoho.py), through a real run, Redis and both databases."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from actions.zoho import _criteria_text
from connector import admin, events
from connector.models import Run, RunStatus
from connector.runtime import Runtime
from invoicing.service import CustomerData, Invoicing
from tests.conftest import drain
from tests.fakes.zoho import FakeZoho
from tests.integrations.test_zoho import Crm, zoho  # noqa: F401

FLOW: dict[str, Any] = {
    "name": "Cliente nuevo → cuenta de Zoho CRM",
    "trigger": {"key": "invoicing.customer_created"},
    "steps": [
        {
            "id": "account",
            "name": "Crear o actualizar la cuenta",
            "action": "zoho.upsert_company",
            "connection": "zoho",
            "input": {
                "customer": {
                    "name": {"$expr": "trigger.name"},
                    "tax_id": {"$expr": "trigger.tax_id"},
                }
            },
        }
    ],
}


class Env(Crm):
    def flow(self) -> None:
        with self.rt.sessions.begin() as s:
            saved = admin.save_flow(s, self.rt.registry, FLOW, enabled=True)
            assert saved.report.errors == []

    def new_customer(self, name: str, tax_id: str) -> None:
        with self.rt.sessions.begin() as s:
            Invoicing(s).find_or_create_customer(
                CustomerData.from_json({"name": name, "tax_id": tax_id})
            )
        events.dispatch(self.rt)
        drain(self.rt)

    def all_runs(self) -> list[Run]:
        with self.rt.sessions() as s:
            found = s.scalars(select(Run).order_by(Run.id)).all()
            s.expunge_all()
            return list(found)

    def writes(self) -> list[tuple[str, str]]:
        return [
            (c.method, urlsplit(c.path).path)
            for c in self.zoho.seen
            if c.method in ("POST", "PUT") and "/Accounts" in c.path
        ]

    def searches(self) -> list[str]:
        return [
            parse_qs(urlsplit(c.path).query)["criteria"][0]
            for c in self.zoho.calls("GET", "/crm/v2/Accounts/search")
        ]


@pytest.fixture
def env(local_rt: Runtime, zoho: FakeZoho) -> Env:  # noqa: F811
    made = Env(local_rt, zoho)
    assert made.connect()["settings"]["tax_id_field"] == "NIF"
    made.flow()
    return made


def test_a_new_customer_becomes_a_new_account_with_its_name_and_nif(env):
    env.new_customer("Ferretería López SL", "B91234567")

    [run] = env.all_runs()
    assert run.status == RunStatus.SUCCEEDED, run.error
    [account] = env.zoho.accounts.values()
    assert (account["Account_Name"], account["NIF"]) == ("Ferretería López SL", "B91234567")
    assert env.writes() == [("POST", "/crm/v2/Accounts")]
    assert env.searches() == ["((NIF:equals:B91234567))"]  # looked for the NIF first
    assert run.key("customer_tax_id") == "B91234567"


def test_a_customer_whose_nif_zoho_has_updates_that_account_and_creates_none(env):
    existing = env.zoho.add_account("Talleres Norte (antiguo)", "A58818501")
    other = env.zoho.add_account("Otra SL", "B12345674")

    env.new_customer("Talleres Norte SA", "A58818501")

    [run] = env.all_runs()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert set(env.zoho.accounts) == {existing, other}
    account = env.zoho.accounts[existing]
    assert (account["Account_Name"], account["NIF"]) == ("Talleres Norte SA", "A58818501")
    assert account["Billing_City"] == "Madrid"  # no address given: the account's stays
    assert env.zoho.accounts[other]["Account_Name"] == "Otra SL"
    assert env.writes() == [("PUT", f"/crm/v2/Accounts/{existing}")]


def test_two_customers_one_new_one_known_make_one_account_and_update_the_other(env):
    env.new_customer("Ferretería López SL", "B91234567")
    [created] = env.zoho.accounts
    known = env.zoho.add_account("Acme (antiguo)", "B12345674")

    env.new_customer("Acme Soluciones SL", "B12345674")

    assert [r.status for r in env.all_runs()] == [RunStatus.SUCCEEDED] * 2
    assert set(env.zoho.accounts) == {created, known}
    assert env.zoho.accounts[known]["Account_Name"] == "Acme Soluciones SL"
    assert env.writes()[-1] == ("PUT", f"/crm/v2/Accounts/{known}")


def test_a_search_value_has_its_parentheses_commas_and_backslashes_escaped():
    # Puente's NIFs never hold them, but a NIF field's value goes into Zoho's criteria
    assert _criteria_text(r"X(1),2\3") == r"X\(1\)\,2\\3"
    assert _criteria_text("B91234567") == "B91234567"


def test_a_record_zoho_refuses_fails_the_run_with_zohos_reason(env):
    env.zoho.reject_next("DUPLICATE_DATA", "duplicate data")

    env.new_customer("Ferretería López SL", "B91234567")

    [run] = env.all_runs()
    assert run.status == RunStatus.FAILED
    assert "DUPLICATE_DATA" in str(run.error)
    assert env.zoho.accounts == {}


def test_a_nif_field_zoho_cannot_search_fails_the_run_saying_what_zoho_answered(
    local_rt: Runtime,
    zoho: FakeZoho,  # noqa: F811
):
    env = Env(local_rt, zoho)
    env.connect(tax_id_field="CIF_Cliente")
    env.flow()

    env.new_customer("Ferretería López SL", "B91234567")

    [run] = env.all_runs()
    assert run.status == RunStatus.FAILED
    assert "INVALID_QUERY" in str(run.error)
    assert zoho.accounts == {}
    assert env.writes() == []
