"""HubSpot write-back of customers: a customer created in Puente becomes a HubSpot company
(name and NIF), or updates the company that already has its NIF, through a real run of a flow
on `invoicing.customer_created`. Against a local HubSpot (tests/fakes/hubspot.py), through the
real app, Redis and both databases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from connector import admin, events
from connector.models import Run, RunStatus
from connector.runtime import Runtime
from invoicing.service import CustomerData, Invoicing
from tests.conftest import drain
from tests.factories import make_api_key
from tests.fakes.hubspot import FakeHubSpot, fake_hubspot
from web import create_app

FLOW: dict[str, Any] = {
    "name": "Cliente nuevo → empresa de HubSpot",
    "trigger": {"key": "invoicing.customer_created"},
    "steps": [
        {
            "id": "company",
            "name": "Crear o actualizar la empresa",
            "action": "hubspot.upsert_company",
            "connection": "hs",
            "input": {
                "customer": {
                    "name": {"$expr": "trigger.name"},
                    "tax_id": {"$expr": "trigger.tax_id"},
                }
            },
        }
    ],
}


@pytest.fixture
def crm() -> Iterator[FakeHubSpot]:
    with fake_hubspot() as api:
        api.companies["301"] = {
            "name": "Talleres Ebro (antiguo)",
            "nif": "A58818501",
            "address": "Paseo de la Independencia 8",
            "zip": "50004",
            "city": "Zaragoza",
        }
        yield api


def connect(local_rt: Runtime, crm: FakeHubSpot, **settings: Any) -> None:
    client = create_app(runtime=local_rt).test_client()
    answer = client.put(
        "/api/v1/connections/hs",
        headers={"Authorization": f"Bearer {make_api_key(local_rt)}"},
        json={
            "type": "hubspot",
            "base_url": crm.url,
            "secret": {"access_token": crm.token, "client_secret": "s3cr3t"},
            "settings": settings,
        },
    )
    assert answer.status_code == 200, answer.json


@pytest.fixture
def rt(local_rt: Runtime, crm: FakeHubSpot) -> Runtime:
    connect(local_rt, crm)
    with local_rt.sessions.begin() as s:
        saved = admin.save_flow(s, local_rt.registry, FLOW, enabled=True)
        assert saved.report.errors == []
    return local_rt


def customer_created(rt: Runtime, name: str, tax_id: str) -> list[Run]:
    with rt.sessions.begin() as s:
        Invoicing(s).find_or_create_customer(
            CustomerData.from_json({"name": name, "tax_id": tax_id})
        )
    events.dispatch(rt)
    drain(rt)
    with rt.sessions() as s:
        runs = list(s.scalars(select(Run).order_by(Run.id)))
        s.expunge_all()
    return runs


def outputs(rt: Runtime, run: Run) -> dict[str, Any]:
    with rt.sessions() as s:
        [step] = s.get_one(Run, run.id).steps
        return dict(step.output)


def test_a_new_customer_becomes_a_hubspot_company_with_its_name_and_nif(
    rt: Runtime, crm: FakeHubSpot
) -> None:
    [run] = customer_created(rt, "Acme Soluciones SL", "B12345674")

    assert run.status == RunStatus.SUCCEEDED, run.error
    [new_id] = [i for i in crm.companies if i != "301"]
    assert crm.companies[new_id] == {"name": "Acme Soluciones SL", "nif": "B12345674"}
    assert outputs(rt, run) == {"company_id": new_id, "tax_id": "B12345674", "created": True}
    [search] = crm.calls_to("POST", "/crm/v3/objects/companies/search")
    assert search.body["filterGroups"] == [
        {"filters": [{"propertyName": "nif", "operator": "EQ", "value": "B12345674"}]}
    ]
    assert crm.calls_to("PATCH", "/") == []


def test_a_customer_whose_nif_hubspot_has_updates_that_company_and_creates_none(
    rt: Runtime, crm: FakeHubSpot
) -> None:
    [run] = customer_created(rt, "Talleres Ebro SA", "A58818501")

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert list(crm.companies) == ["301"]
    company = crm.companies["301"]
    assert (company["name"], company["nif"]) == ("Talleres Ebro SA", "A58818501")
    assert company["address"] == "Paseo de la Independencia 8"  # not given: kept
    assert outputs(rt, run) == {"company_id": "301", "tax_id": "A58818501", "created": False}
    [patch] = crm.calls_to("PATCH", "/crm/v3/objects/companies/")
    assert patch.path == "/crm/v3/objects/companies/301"
    assert crm.calls_to("POST", "/crm/v3/objects/companies") == crm.calls_to(
        "POST", "/crm/v3/objects/companies/search"
    )


def test_the_nif_goes_to_the_property_the_connection_names_and_a_missing_one_is_explained(
    rt: Runtime, crm: FakeHubSpot
) -> None:
    connect(rt, crm, tax_id_field="cif_empresa")  # not created in HubSpot yet

    [run] = customer_created(rt, "Acme Soluciones SL", "B12345674")

    assert run.status == RunStatus.FAILED and run.error is not None
    assert "cif_empresa" in run.error["message"]
    assert "create it in HubSpot" in run.error["message"]
    assert list(crm.companies) == ["301"]

    crm.company_properties.add("cif_empresa")
    [_, again] = customer_created(rt, "Talleres Ebro SA", "A58818501")  # NIF under "nif" only

    assert again.status == RunStatus.SUCCEEDED, again.error
    [new_id] = [i for i in crm.companies if i != "301"]
    assert crm.companies[new_id] == {"name": "Talleres Ebro SA", "cif_empresa": "A58818501"}
