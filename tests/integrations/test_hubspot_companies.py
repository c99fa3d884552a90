"""HubSpot companies → Puente's customers: a company created or changed in HubSpot (webhook
`company.creation` / `company.propertyChange`, signed as deal events are) is read through the
API and found or created as a customer by its NIF/CIF, once. Against the local HubSpot
(tests/fakes/hubspot.py), through the real app, Redis and both databases."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from connector.models import Event, Run, RunStatus
from connector.runtime import Runtime
from invoicing.models import Customer
from tests.conftest import drain
from tests.factories import make_api_key
from tests.fakes.hubspot import FakeHubSpot, company_creation, company_property_change
from tests.integrations.test_hubspot import (  # noqa: F401
    COMPANY,
    Env,
    connect,
    crm,
    signed_v3,
    stage_change,
)
from triggers.hubspot import parse_company
from web import create_app

NEW = "302"


@dataclass
class Companies:
    env: Env

    @property
    def crm(self) -> FakeHubSpot:
        return self.env.crm

    def send(self, *events: dict[str, Any], secret: str | None = None) -> Any:
        body = json.dumps(list(events), separators=(",", ":")).encode()
        signing = {"secret": secret} if secret else {}
        headers = signed_v3(self.env.url, body, **signing)
        return self.env.client.post(self.env.hook, data=body, headers=headers)

    def customers(self) -> list[Customer]:
        with self.env.rt.sessions() as s:
            found = s.scalars(select(Customer).order_by(Customer.id)).all()
            s.expunge_all()
            return list(found)

    def runs(self) -> list[Run]:
        return [r for r in self.env.runs() if r.key("company_ref") is not None]


_ids = iter(range(1228700000, 1228800000))


@pytest.fixture
def companies(local_rt: Runtime, crm: FakeHubSpot) -> Companies:  # noqa: F811
    client = create_app(runtime=local_rt).test_client()
    headers = {"Authorization": f"Bearer {make_api_key(local_rt)}"}
    answer = connect(client, headers, crm)
    assert answer.status_code == 200, answer.json
    for key in ("hubspot.company_to_customer", "hubspot.deal_won_to_invoice"):
        installed = client.post(
            f"/api/v1/templates/{key}/install", headers=headers, json={"connection": "hs"}
        )
        assert installed.status_code == 201, installed.json
    return Companies(Env(local_rt, client, headers, crm, answer.json["webhook_url"]))


def created(api: FakeHubSpot, nif: str | None) -> list[dict[str, Any]]:
    """A company created in HubSpot's UI: the creation and its first properties, one batch."""
    api.companies[NEW] = {
        "name": "Ferretería López SL",
        "nif": nif,
        "address": "Calle Real 3",
        "address2": "Local 2",
        "zip": "41001",
        "city": "Sevilla",
        "state": "Sevilla",
        "country": "España",
        "domain": "ferreterialopez.example",
    }
    return [
        company_creation(NEW, next(_ids)),
        company_property_change(NEW, next(_ids), "name", "Ferretería López SL"),
        company_property_change(NEW, next(_ids), "nif", nif),
    ]


def test_a_company_created_with_its_nif_becomes_one_customer_with_its_name_and_address(
    companies,
):
    answer = companies.send(*created(companies.crm, "b-9123456-7"))

    assert answer.status_code == 202, answer.json
    assert len(answer.json["run_ids"]) == 1  # one company in the batch, one run
    drain(companies.env.rt)

    [run] = companies.runs()
    assert run.status == RunStatus.SUCCEEDED, run.error
    [customer] = companies.customers()
    assert (customer.tax_id, customer.name) == ("B91234567", "Ferretería López SL")
    address = (customer.street, customer.postal_code, customer.city, customer.province)
    assert address == ("Calle Real 3, Local 2", "41001", "Sevilla", "Sevilla")
    assert customer.country == "ES"
    [read] = companies.crm.calls_to("GET", f"/crm/v3/objects/companies/{NEW}")
    assert "nif" in read.query["properties"].split(",")


def test_a_company_without_nif_stops_its_run_and_makes_no_customer_until_it_has_one(companies):
    companies.send(*created(companies.crm, None))
    drain(companies.env.rt)

    [run] = companies.runs()
    assert run.status == RunStatus.STOPPED
    assert "la empresa no tiene NIF/CIF todavía" in run.error["message"]
    assert companies.customers() == []

    companies.crm.companies[NEW]["nif"] = "B91234567"
    companies.send(company_property_change(NEW, next(_ids), "nif", "B91234567"))
    drain(companies.env.rt)

    [customer] = companies.customers()
    assert customer.tax_id == "B91234567"


def test_the_same_company_changed_again_is_still_one_customer(companies):
    companies.send(*created(companies.crm, "B91234567"))
    drain(companies.env.rt)

    companies.crm.companies[NEW]["city"] = "Dos Hermanas"
    companies.send(company_property_change(NEW, next(_ids), "city", "Dos Hermanas"))
    companies.crm.companies[NEW]["name"] = "Ferretería López e Hijos SL"
    companies.send(company_property_change(NEW, next(_ids), "name", "Ferretería López e Hijos SL"))
    drain(companies.env.rt)

    runs = companies.runs()
    assert [r.status for r in runs] == [RunStatus.SUCCEEDED] * 3, [r.error for r in runs]
    [customer] = companies.customers()
    assert customer.tax_id == "B91234567"


def test_a_batch_with_a_deal_and_a_company_event_starts_each_flow_once(companies):
    batch = [stage_change(), *created(companies.crm, "B91234567")]

    answer = companies.send(*batch)

    assert answer.status_code == 202, answer.json
    assert len(answer.json["run_ids"]) == 2
    drain(companies.env.rt)
    assert {c.tax_id for c in companies.customers()} == {"B91234567", "B12345674"}
    assert len(companies.env.invoices()) == 1


def test_a_company_event_not_signed_with_the_client_secret_is_refused(companies):
    answer = companies.send(*created(companies.crm, "B91234567"), secret="not-the-secret")

    assert answer.status_code == 401
    with companies.env.rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 0
    assert companies.customers() == []


def test_only_company_creations_and_changes_are_company_items():
    deal = stage_change()
    contact = {**company_creation(NEW, 1), "subscriptionType": "contact.creation"}
    generic = {**company_creation("303", 2), "subscriptionType": "object.creation"}
    generic["objectTypeId"] = "0-2"
    other = {**generic, "objectId": 304, "objectTypeId": "0-1"}

    items = parse_company([deal, contact, generic, other], "d", {})

    assert [i.data["company_id"] for i in items] == ["303"]
    assert items[0].data["event_id"] == "2" and items[0].data["account_id"] == "62515"
