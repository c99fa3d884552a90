"""Pipedrive organizations → Puente's customers: an organization added or updated in Pipedrive
(webhooks v2 create/change, v1 added/updated.organization, with the same HTTP Basic user and
password as deal events) is read through the API and found or created as a customer by its
NIF/CIF, once. Against the local Pipedrive (tests/fakes/pipedrive.py), through the real app,
Redis and both databases."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select, update

from connector import lifecycle
from connector.models import Event, Flow, Run, RunStatus
from connector.runtime import Runtime
from invoicing.models import Customer
from tests.conftest import drain
from tests.factories import make_api_key
from tests.fakes.pipedrive import COMPANY_ID, FakePipedrive
from tests.integrations.test_pipedrive import (  # noqa: F401
    ORG,
    PASSWORD,
    USER,
    Env,
    basic,
    connect,
    crm,
    v1_updated,
    v2_change,
)
from triggers.pipedrive import parse, parse_organization
from web import create_app

NEW = 40  # an organization added in Pipedrive during the test


@dataclass
class Organizations:
    env: Env

    @property
    def crm(self) -> FakePipedrive:
        return self.env.crm

    def send(self, payload: dict[str, Any], user: str = USER, password: str = PASSWORD) -> Any:
        body = json.dumps(payload).encode()
        return self.env.client.post(self.env.hook, data=body, headers=basic(user, password))

    def customers(self) -> list[Customer]:
        with self.env.rt.sessions() as s:
            found = s.scalars(select(Customer).order_by(Customer.id)).all()
            s.expunge_all()
            return list(found)

    def runs(self) -> list[Run]:
        return [r for r in self.env.runs() if r.key("company_ref") is not None]

    def nif_key(self) -> str:
        return next(f["key"] for f in self.crm.organization_fields if f["name"] == "NIF")

    def add(self, nif: str | None) -> None:
        """An organization added in Pipedrive's UI, with its address."""
        self.crm.organizations[NEW] = {
            "id": NEW,
            "name": "Ferretería López SL",
            self.nif_key(): nif,
            "address": "Calle Real 3, 41001 Sevilla, España",
            "address_route": "Calle Real",
            "address_street_number": "3",
            "address_postal_code": "41001",
            "address_locality": "Sevilla",
            "address_admin_area_level_1": "Andalucía",
            "address_country": "España",
        }
        self.crm.touch_organization(NEW)


@pytest.fixture
def orgs(local_rt: Runtime, crm: FakePipedrive) -> Organizations:  # noqa: F811
    client = create_app(runtime=local_rt).test_client()
    headers = {"Authorization": f"Bearer {make_api_key(local_rt)}"}
    answer = connect(client, headers, crm)
    assert answer.status_code == 200, answer.json
    for key in ("pipedrive.organization_to_customer", "pipedrive.deal_won_to_invoice"):
        installed = client.post(
            f"/api/v1/templates/{key}/install", headers=headers, json={"connection": "pd"}
        )
        assert installed.status_code == 201, installed.json
    hook = answer.json["webhook_url"].removeprefix(local_rt.settings.public_url)
    return Organizations(Env(local_rt, client, headers, crm, hook))


def v2_organization(
    org_id: int = NEW, action: str = "create", previous: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A webhooks v2 event of an organization, shaped as Pipedrive sends it."""
    return {
        "meta": {
            "action": action,
            "entity": "organization",
            "company_id": str(COMPANY_ID),
            "correlation_id": str(uuid.uuid4()),
            "entity_id": str(org_id),
            "id": str(uuid.uuid4()),
            "is_bulk_edit": False,
            "timestamp": "2026-12-04T10:00:00.000Z",
            "type": "general",
            "user_id": "11",
            "version": "2.0",
            "webhook_id": "78",
            "webhook_owner_id": "11",
            "attempt": 1,
            "host": "acme.pipedrive.com",
            "change_source": "app",
            "permitted_user_ids": ["11"],
        },
        "data": {
            "id": org_id,
            "name": "Ferretería López SL",
            "owner_id": 11,
            "address": {"value": "Calle Real 3, 41001 Sevilla, España"},
            "custom_fields": {},
        },
        "previous": previous,
    }


def v1_organization(org_id: int = NEW, micro: int = 1764842400000001) -> dict[str, Any]:
    """A webhooks v1 "updated.organization": the whole organization now and before."""
    current = {"id": org_id, "name": "Ferretería López SL"}
    return {
        "v": 1,
        "meta": {
            "v": 1,
            "action": "updated",
            "object": "organization",
            "id": org_id,
            "company_id": COMPANY_ID,
            "user_id": 11,
            "host": "acme.pipedrive.com",
            "timestamp": micro // 1_000_000,
            "timestamp_micro": micro,
            "webhook_id": "78",
        },
        "retry": 0,
        "current": current,
        "previous": {**current, "name": "Ferreteria Lopez"},
        "event": "updated.organization",
    }


def test_an_organization_added_with_a_nif_becomes_one_customer_even_when_updated_again(orgs):
    orgs.add("B12345674")

    answer = orgs.send(v2_organization())

    assert answer.status_code == 202, answer.json
    drain(orgs.env.rt)
    [run] = orgs.runs()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert (run.key("company_ref"), run.key("customer_tax_id")) == (str(NEW), "B12345674")
    [customer] = orgs.customers()
    assert (customer.tax_id, customer.name) == ("B12345674", "Ferretería López SL")
    assert (customer.street, customer.postal_code, customer.city, customer.province) == (
        "Calle Real 3",
        "41001",
        "Sevilla",
        "Andalucía",
    )
    assert customer.country == "ES"

    orgs.crm.touch_organization(NEW, name="Ferretería López Sociedad Limitada")
    assert orgs.send(v2_organization(action="change", previous={"name": "x"})).status_code == 202
    assert orgs.send(v1_organization()).status_code == 202
    drain(orgs.env.rt)

    assert [c.tax_id for c in orgs.customers()] == ["B12345674"]
    runs = orgs.runs()
    assert [r.status for r in runs] == [RunStatus.SUCCEEDED] * 3
    assert [r for r in orgs.env.runs() if r.key("deal_ref") is not None] == []
    assert orgs.env.invoices() == []


def test_an_organization_without_a_nif_stops_its_run_and_makes_no_customer_until_it_has_one(orgs):
    orgs.add(None)

    assert orgs.send(v2_organization()).status_code == 202
    drain(orgs.env.rt)

    [run] = orgs.runs()
    assert run.status == RunStatus.STOPPED
    assert "NIF/CIF" in run.error["message"]
    assert orgs.customers() == []

    orgs.crm.touch_organization(NEW, **{orgs.nif_key(): "b-12345674"})
    orgs.send(v2_organization(action="change", previous={orgs.nif_key(): None}))
    drain(orgs.env.rt)

    assert [c.tax_id for c in orgs.customers()] == ["B12345674"]


def test_the_same_event_delivered_twice_runs_once_and_bad_credentials_are_refused(orgs):
    orgs.add("B12345674")
    event = v2_organization()

    first, again = orgs.send(event), orgs.send(event)
    refused = orgs.send(v2_organization(), password="not-the-password")

    assert (first.status_code, again.status_code, refused.status_code) == (202, 200, 401)
    drain(orgs.env.rt)
    assert len(orgs.runs()) == 1
    with orgs.env.rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 1


def test_a_deleted_organization_or_a_deal_event_starts_no_customer_run(orgs):
    deleted = v2_organization(ORG, action="delete")

    assert parse_organization(deleted, "d", {}) == []
    assert parse_organization(v2_change(), "d", {}) == []
    assert parse_organization(v1_updated(), "d", {}) == []
    assert parse(v2_organization(ORG, action="change", previous={"name": "x"}), "d", {}) == []
    assert parse(v1_organization(ORG), "d", {}) == []
    orgs.send(deleted)
    drain(orgs.env.rt)
    assert orgs.runs() == [] and orgs.customers() == []


def test_an_organization_event_is_an_item_keyed_by_pipedrive_s_event_id():
    event = v2_organization(ORG, action="change", previous={"name": "x"})

    [item] = parse_organization(event, "d", {})

    assert item.dedup_key == f"pipedrive-organization:v2:{event['meta']['id']}"
    assert item.data == {
        "company_id": str(ORG),
        "event_id": f"v2:{event['meta']['id']}",
        "occurred_at": "2026-12-04T10:00:00+00:00",
        "account_id": str(COMPANY_ID),
    }
    [old] = parse_organization(v1_organization(ORG), "d", {})
    assert old.data["company_id"] == str(ORG)
    assert old.data["event_id"] == f"v1:{ORG}:1764842400000001"


def test_the_organization_webhook_is_registered_while_its_flow_is_enabled(orgs):
    url = f"{orgs.env.rt.settings.public_url}{orgs.env.hook}"

    assert len(lifecycle.sync(orgs.env.rt)["subscribed"]) == 2  # deals and organizations
    assert lifecycle.sync(orgs.env.rt)["subscribed"] == []

    hooks = sorted(orgs.crm.webhooks.values(), key=lambda h: h["event_object"])
    assert [(h["event_object"], h["event_action"]) for h in hooks] == [
        ("deal", "change"),
        ("organization", "*"),
    ]
    for hook in hooks:
        assert (hook["subscription_url"], hook["version"]) == (url, "2.0")
        assert (hook["http_auth_user"], hook["http_auth_password"]) == (USER, PASSWORD)

    with orgs.env.rt.sessions.begin() as s:
        s.execute(
            update(Flow)
            .where(Flow.trigger_key == "pipedrive.organization_changed")
            .values(enabled=False)
        )
    assert len(lifecycle.sync(orgs.env.rt)["unsubscribed"]) == 1

    [left] = orgs.crm.webhooks.values()
    assert left["event_object"] == "deal"
