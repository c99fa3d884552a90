"""Zoho CRM accounts → Puente's customers: an account created or edited in Zoho CRM (a
notification of its own channel for Accounts.create/Accounts.edit, with the same token as the
deals one, to the same address) is read through the API and found or created as a customer by
its NIF/CIF, once. Against the local Zoho (tests/fakes/zoho.py), through the real app, Redis
and both databases."""

from __future__ import annotations

import itertools
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from connector import lifecycle
from connector.models import Event, Run, RunStatus, TriggerState
from connector.runtime import Runtime
from database import utcnow
from invoicing.models import Customer
from tests.conftest import drain
from tests.fakes.zoho import FakeZoho
from tests.integrations.test_zoho import NOTIFY_TOKEN, Crm, won_deal, zoho  # noqa: F401
from triggers.zoho import parse, parse_account

_later = itertools.count(1)


class Accounts(Crm):
    def channel(self, module: str) -> str:
        [found] = [c for c, ch in self.zoho.channels.items() if ch["events"][0].startswith(module)]
        return found

    def send(self, ids: list[str], operation: str = "update", **changes: Any) -> Any:
        """An Accounts notification; each a millisecond apart, as Zoho's server_time."""
        token = changes.pop("token", NOTIFY_TOKEN)
        changes.setdefault("server_time", int(time.time() * 1000) + next(_later))
        body = self.zoho.notification(
            self.channel("Accounts"), token, ids, operation=operation, module="Accounts", **changes
        )
        return self.post(body)

    def customers(self) -> list[Customer]:
        with self.rt.sessions() as s:
            found = s.scalars(select(Customer).order_by(Customer.id)).all()
            s.expunge_all()
            return list(found)

    def account_runs(self) -> list[Run]:
        return [r for r in self.runs() if r.key("company_ref") is not None]

    def flows(self, trigger: str) -> list[int]:
        items = self.client.get("/api/v1/flows", headers=self.headers).json["items"]
        return [f["id"] for f in items if f["trigger"] == trigger]


@pytest.fixture
def accounts(local_rt: Runtime, zoho: FakeZoho) -> Accounts:  # noqa: F811
    made = Accounts(local_rt, zoho)
    made.connect()
    for key in ("zoho.account_to_customer", "zoho.deal_won_to_invoice"):
        answer = made.client.post(
            f"/api/v1/templates/{key}/install", headers=made.headers, json={"connection": "zoho"}
        )
        assert answer.status_code == 201, answer.json
    lifecycle.sync(local_rt)
    made.channel_id = made.channel("Deals")
    return made


def new_account(fake: FakeZoho, nif: str | None) -> str:
    return fake.add_account(
        "Ferretería López SL",
        nif,
        Billing_Street="Calle Real 3",
        Billing_Code="41001",
        Billing_City="Sevilla",
        Billing_State="Sevilla",
        Email="facturas@ferreterialopez.example",
    )


def test_each_trigger_has_its_own_channel_with_the_same_address_and_token(accounts):
    deals = accounts.zoho.channels[accounts.channel("Deals")]
    mine = accounts.zoho.channels[accounts.channel("Accounts")]

    assert mine["events"] == ["Accounts.edit", "Accounts.create"]
    assert deals["events"] == ["Deals.edit", "Deals.create"]
    assert mine["notify_url"] == deals["notify_url"] == accounts.webhook_url
    assert mine["token"] == deals["token"] == NOTIFY_TOKEN


def test_an_account_created_with_its_nif_becomes_one_customer_with_its_name_and_address(
    accounts,
):
    account_id = new_account(accounts.zoho, "b-9123456-7")

    answer = accounts.send([account_id], operation="insert")

    assert answer.status_code == 202, answer.json
    assert len(answer.json["run_ids"]) == 1  # the account's flow only, not the deal's
    drain(accounts.rt)
    [run] = accounts.account_runs()
    assert run.status == RunStatus.SUCCEEDED, run.error
    [customer] = accounts.customers()
    assert (customer.tax_id, customer.name) == ("B91234567", "Ferretería López SL")
    address = (customer.street, customer.postal_code, customer.city, customer.province)
    assert address == ("Calle Real 3", "41001", "Sevilla", "Sevilla")
    assert customer.country == "ES"
    assert customer.email == "facturas@ferreterialopez.example"
    assert accounts.zoho.calls("GET", f"/crm/v2/Accounts/{account_id}")


def test_an_account_without_nif_stops_its_run_and_makes_no_customer_until_it_has_one(accounts):
    account_id = new_account(accounts.zoho, None)
    accounts.send([account_id], operation="insert")
    drain(accounts.rt)

    [run] = accounts.account_runs()
    assert run.status == RunStatus.STOPPED
    assert "la cuenta no tiene NIF/CIF todavía" in run.error["message"]
    assert accounts.customers() == []

    accounts.zoho.accounts[account_id]["NIF"] = "B91234567"
    accounts.send([account_id], fields=["NIF"])
    drain(accounts.rt)

    [customer] = accounts.customers()
    assert customer.tax_id == "B91234567"


def test_the_same_account_edited_again_is_still_one_customer(accounts):
    account_id = new_account(accounts.zoho, "B91234567")
    accounts.send([account_id], operation="insert")
    accounts.zoho.accounts[account_id]["Billing_City"] = "Dos Hermanas"
    accounts.send([account_id])
    drain(accounts.rt)

    runs = accounts.account_runs()
    assert [r.status for r in runs] == [RunStatus.SUCCEEDED] * 2, [r.error for r in runs]
    [customer] = accounts.customers()
    assert customer.tax_id == "B91234567"


def test_a_deal_notification_starts_only_the_deal_flow_and_an_account_one_only_the_account_s(
    accounts,
):
    deal_id = won_deal(accounts.zoho)

    dealt = accounts.notify(deal_id)
    account_id = new_account(accounts.zoho, "B91234567")
    accounted = accounts.send([account_id], operation="insert")

    assert dealt.status_code == 202 and accounted.status_code == 202
    assert len(dealt.json["run_ids"]) == 1 and len(accounted.json["run_ids"]) == 1
    drain(accounts.rt)
    runs = accounts.runs()
    assert len(runs) == 2
    assert {(r.key("deal_ref"), r.key("company_ref")) for r in runs} == {
        (deal_id, None),
        (None, account_id),
    }
    assert {c.tax_id for c in accounts.customers()} == {"B91234567", "B12345674"}
    assert len(accounts.invoices(deal_id)) == 1


def test_an_account_notification_with_another_token_is_refused(accounts):
    account_id = new_account(accounts.zoho, "B91234567")

    answer = accounts.send([account_id], token="not-the-token")

    assert answer.status_code == 401
    with accounts.rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 0
    assert accounts.customers() == []


def test_the_accounts_channel_is_renewed_and_disabled_with_its_own_flow(accounts):
    deals, mine = accounts.channel("Deals"), accounts.channel("Accounts")

    done = lifecycle.sync(accounts.rt, now=utcnow() + timedelta(hours=13))

    assert len(done["renewed"]) == 2
    patched = {p.body["watch"][0]["channel_id"]: p.body for p in accounts.zoho.calls("PATCH")}
    assert patched[mine]["watch"][0]["events"] == ["Accounts.edit", "Accounts.create"]
    assert patched[deals]["watch"][0]["events"] == ["Deals.edit", "Deals.create"]

    for flow in accounts.flows("zoho.account_changed"):
        accounts.client.post(f"/api/v1/flows/{flow}/disable", headers=accounts.headers)
    lifecycle.sync(accounts.rt)

    assert list(accounts.zoho.channels) == [deals]
    assert accounts.zoho.calls("DELETE", f"channel_ids={mine}")
    with accounts.rt.sessions() as s:
        assert len(s.scalars(select(TriggerState)).all()) == 1


def test_the_deal_and_account_parsers_take_only_their_own_module(accounts):
    fake = accounts.zoho
    for_accounts = fake.notification("1", NOTIFY_TOKEN, ["7", "8"], module="Accounts")
    for_deals = fake.notification("2", NOTIFY_TOKEN, ["9"], module="Deals")
    deleted = fake.notification("1", NOTIFY_TOKEN, ["7"], module="Accounts", operation="delete")

    assert parse(for_accounts, "d", {}) == []
    assert parse_account(for_deals, "d", {}) == []
    assert parse_account(deleted, "d", {}) == []
    items = parse_account(for_accounts, "d", {})
    assert [i.data["company_id"] for i in items] == ["7", "8"]
    when = for_accounts["server_time"]
    assert items[0].data["event_id"] == f"1:{when}:7"
    assert items[0].data["occurred_at"].startswith(str(utcnow().year))
