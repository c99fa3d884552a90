"""Pipedrive write-back of customers: a customer created in Puente becomes a Pipedrive
organization (name and NIF), or updates the organization that already has its NIF, through a
real run of a flow on `invoicing.customer_created`. Against a local Pipedrive
(tests/fakes/pipedrive.py), through the real app, Redis and both databases."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from connector import admin, events
from connector.models import Run, RunStatus
from connector.runtime import Runtime
from invoicing.service import CustomerData, Invoicing
from tests.conftest import drain
from tests.factories import make_api_key
from tests.fakes.pipedrive import FakePipedrive
from tests.integrations.test_pipedrive import ORG, connect, crm  # noqa: F401
from web import create_app

FLOW: dict[str, Any] = {
    "name": "Cliente nuevo → organización de Pipedrive",
    "trigger": {"key": "invoicing.customer_created"},
    "steps": [
        {
            "id": "company",
            "name": "Crear o actualizar la organización",
            "action": "pipedrive.upsert_company",
            "connection": "pd",
            "input": {
                "customer": {
                    "name": {"$expr": "trigger.name"},
                    "tax_id": {"$expr": "trigger.tax_id"},
                }
            },
        }
    ],
}


def reconnect(rt: Runtime, crm: FakePipedrive, **settings: Any) -> None:  # noqa: F811
    client = create_app(runtime=rt).test_client()
    headers = {"Authorization": f"Bearer {make_api_key(rt)}"}
    answer = connect(client, headers, crm, **settings)
    assert answer.status_code == 200, answer.json


@pytest.fixture
def rt(local_rt: Runtime, crm: FakePipedrive) -> Runtime:  # noqa: F811
    reconnect(local_rt, crm)
    with local_rt.sessions.begin() as s:
        saved = admin.save_flow(s, local_rt.registry, FLOW, enabled=True)
        assert saved.report.errors == []
    return local_rt


def nif_key(crm: FakePipedrive) -> str:  # noqa: F811
    return next(f["key"] for f in crm.organization_fields if f["name"] == "NIF")


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


def test_a_new_customer_becomes_a_pipedrive_organization_with_its_name_and_nif(rt, crm):  # noqa: F811
    [run] = customer_created(rt, "Talleres Ebro SA", "A58818501")

    assert run.status == RunStatus.SUCCEEDED, run.error
    [new_id] = [i for i in crm.organizations if i != ORG]
    org = crm.organizations[new_id]
    assert (org["name"], org[nif_key(crm)]) == ("Talleres Ebro SA", "A58818501")
    assert outputs(rt, run) == {"company_id": str(new_id), "tax_id": "A58818501", "created": True}
    [search] = crm.calls_to("GET", "/v1/organizations/search")
    assert (search.query["term"], search.query["fields"], search.query["exact_match"]) == (
        "A58818501",
        "custom_fields",
        "true",
    )
    assert crm.calls_to("PUT", "/v1/organizations") == []


def test_a_customer_whose_nif_pipedrive_has_updates_that_organization_and_creates_none(
    rt,
    crm,  # noqa: F811
):
    [run] = customer_created(rt, "Acme Soluciones Sociedad Limitada", "B12345674")

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert list(crm.organizations) == [ORG]
    org = crm.organizations[ORG]
    assert (org["name"], org[nif_key(crm)]) == ("Acme Soluciones Sociedad Limitada", "B12345674")
    assert org["address"] == "Calle Mayor 1, 28013 Madrid, España"  # not given: kept
    assert outputs(rt, run) == {"company_id": str(ORG), "tax_id": "B12345674", "created": False}
    [put] = crm.calls_to("PUT", "/v1/organizations/")
    assert put.path == f"/v1/organizations/{ORG}"
    assert crm.calls_to("POST", "/v1/organizations") == []


def test_an_organization_with_the_value_in_another_custom_field_is_not_taken_for_it(
    rt,
    crm,  # noqa: F811
):
    reference = crm.add_field("organization", "Referencia interna")
    crm.organizations[ORG][reference] = "A58818501"  # found by the search, but not its NIF

    [run] = customer_created(rt, "Talleres Ebro SA", "A58818501")

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert outputs(rt, run)["created"] is True
    assert crm.organizations[ORG]["name"] == "Acme Soluciones SL"
    assert crm.organizations[ORG][nif_key(crm)] == "B12345674"
    assert crm.calls_to("PUT", "/v1/organizations") == []
    assert len(crm.organizations) == 2


def test_the_nif_goes_to_the_field_the_connection_names_and_a_missing_one_is_explained(
    rt,
    crm,  # noqa: F811
):
    reconnect(rt, crm, tax_id_field="CIF empresa")  # not created in Pipedrive yet

    [run] = customer_created(rt, "Talleres Ebro SA", "A58818501")

    assert run.status == RunStatus.FAILED
    assert "CIF empresa" in run.error["message"]
    assert "create it in Pipedrive" in run.error["message"]
    assert list(crm.organizations) == [ORG]

    cif = crm.add_field("organization", "CIF empresa")
    [_, again] = customer_created(rt, "Acme Soluciones SA", "B12345674")  # under "NIF" only

    assert again.status == RunStatus.SUCCEEDED, again.error
    [new_id] = [i for i in crm.organizations if i != ORG]
    assert crm.organizations[new_id][cif] == "B12345674"
    assert crm.organizations[new_id]["name"] == "Acme Soluciones SA"
