"""The built-in CRM: a company and an opportunity with lines; marked won, it starts the
deal-won flow like any CRM's deal, once, and shows its invoice and payment status."""

from __future__ import annotations

import copy
from typing import Any

from sqlalchemy import func, select

from connector import admin, events
from invoicing.models import Invoice
from tests.conftest import drain
from tests.factories import make_api_key, make_issuer
from web.demo import DEMO_FLOW


def auth(rt) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_api_key(rt)}"}


def won_flow(rt) -> int:
    flow = copy.deepcopy(DEMO_FLOW)
    flow["name"] = "CRM de Puente: ganada → borrador"
    flow["trigger"] = {"key": "crm.deal_won"}
    with rt.sessions.begin() as s:
        saved = admin.save_flow(s, rt.registry, flow, enabled=True)
        assert saved.report.errors == []
        return saved.flow.id


def opportunity(client, headers, expect: int = 201, **changes: Any) -> dict[str, Any]:
    company = client.post(
        "/api/v1/crm/companies",
        headers=headers,
        json={
            "name": "Acme Soluciones SL",
            "tax_id": "B12345674",
            "street": "Calle Mayor 1",
            "postal_code": "28013",
            "city": "Madrid",
            "province": "Madrid",
        },
    ).json
    body = {
        "title": "Implantación ERP",
        "company_id": company["id"],
        "owner_name": "Lucía Pérez",
        "campaign": "Feria Madrid 2026",
        "lines": [
            {
                "sku": "CONS-H",
                "description": "Consultoría",
                "quantity": "20",
                "unit_price": "95",
                "discount_percent": "10",
                "tax_rate": 21,
            },
            {"description": "Licencia ERP anual", "quantity": 1, "unit_price": "770.50"},
        ],
        **changes,
    }
    answer = client.post("/api/v1/crm/opportunities", headers=headers, json=body)
    assert answer.status_code == expect, answer.json
    return answer.json


def invoices(rt) -> int:
    with rt.sessions() as s:
        return s.scalar(select(func.count()).select_from(Invoice)) or 0


def test_an_opportunity_marked_won_becomes_a_draft_once_and_shows_its_status(rt, client):
    headers = auth(rt)
    won_flow(rt)
    opp = opportunity(client, headers)
    assert opp["amount"] == "2480.50" and opp["stage"] == "nueva"

    moved = client.post(
        f"/api/v1/crm/opportunities/{opp['id']}/stage", headers=headers, json={"stage": "ganada"}
    )
    again = client.post(f"/api/v1/crm/opportunities/{opp['id']}/won", headers=headers)
    assert moved.status_code == 200 and moved.json["won_at"] is not None
    assert again.status_code == 200
    assert len(events.dispatch(rt)) == 1  # marked won twice: one event
    drain(rt)

    shown = client.get(f"/api/v1/crm/opportunities/{opp['id']}", headers=headers).json
    [draft] = shown["documents"]
    assert (draft["kind"], draft["status"], draft["total"]) == ("invoice", "draft", "3001.41")
    with rt.sessions() as s:
        invoice = s.get_one(Invoice, draft["id"])
        assert (invoice.source, invoice.external_ref) == ("puente", str(opp["id"]))
        assert invoice.customer.tax_id == "B12345674"
    make_issuer(rt)
    client.post(f"/api/v1/invoices/{draft['id']}/issue", headers=headers)
    client.post(
        f"/api/v1/invoices/{draft['id']}/payments",
        headers=headers,
        json={"amount": "3001.41", "paid_on": "2026-12-04"},
    )
    shown = client.get(f"/api/v1/crm/opportunities/{opp['id']}", headers=headers).json
    assert shown["documents"][0]["payment_status"] == "Cobrado"


def test_won_lost_and_won_again_still_bills_the_opportunity_once(rt, client):
    headers = auth(rt)
    won_flow(rt)
    opp = opportunity(client, headers)
    for stage in ("ganada", "perdida", "ganada"):
        client.post(
            f"/api/v1/crm/opportunities/{opp['id']}/stage", headers=headers, json={"stage": stage}
        )

    assert len(events.dispatch(rt)) == 2
    drain(rt)

    assert invoices(rt) == 1


def test_an_opportunity_converts_to_a_quote_and_an_order_each_once(rt, client):
    headers = auth(rt)
    opp = opportunity(client, headers)

    quote = client.post(
        f"/api/v1/crm/opportunities/{opp['id']}/convert", headers=headers, json={"to": "quote"}
    )
    same = client.post(
        f"/api/v1/crm/opportunities/{opp['id']}/convert", headers=headers, json={"to": "quote"}
    )
    order = client.post(
        f"/api/v1/crm/opportunities/{opp['id']}/convert", headers=headers, json={"to": "order"}
    )

    assert (quote.status_code, same.status_code, order.status_code) == (201, 200, 201)
    assert quote.json["id"] == same.json["id"] and quote.json["kind"] == "quote"
    kinds = [
        d["kind"]
        for d in client.get(f"/api/v1/crm/opportunities/{opp['id']}", headers=headers).json[
            "documents"
        ]
    ]
    assert kinds == ["quote", "order"]


def test_bad_opportunities_are_refused_saying_which_field(rt, client):
    headers = auth(rt)
    opp = opportunity(client, headers)

    no_lines = opportunity(client, headers, lines=[])
    won_empty = client.post(f"/api/v1/crm/opportunities/{no_lines['id']}/won", headers=headers)
    bad_stage = client.post(
        f"/api/v1/crm/opportunities/{opp['id']}/stage", headers=headers, json={"stage": "cerrada"}
    )
    bad_line = client.post(
        "/api/v1/crm/opportunities",
        headers=headers,
        json={"title": "X", "company_id": opp["company"]["id"], "lines": [{"quantity": 1}]},
    )
    missing = client.post("/api/v1/crm/opportunities/999/won", headers=headers)

    assert (won_empty.status_code, won_empty.json["field"]) == (422, "lines")
    assert (bad_stage.status_code, bad_stage.json["field"]) == (422, "stage")
    assert (bad_line.status_code, bad_line.json["field"]) == (422, "lines[0]")
    assert missing.status_code == 404


def test_companies_contacts_and_opportunities_take_text_and_their_own_contacts(rt, client):
    headers = auth(rt)
    opp = opportunity(client, headers)
    company_id = opp["company"]["id"]
    other = client.post("/api/v1/crm/companies", headers=headers, json={"name": "Otra SL"}).json
    stranger = client.post(
        f"/api/v1/crm/companies/{other['id']}/contacts", headers=headers, json={"name": "Ana"}
    ).json

    numbers = client.post(
        "/api/v1/crm/companies", headers=headers, json={"name": 5, "city": ["Madrid"]}
    )
    too_long = client.post("/api/v1/crm/companies", headers=headers, json={"name": "x" * 121})
    bad_phone = client.post(
        f"/api/v1/crm/companies/{company_id}/contacts",
        headers=headers,
        json={"name": "Luis", "phone": 600000000},
    )
    unknown_contact = opportunity(client, headers, contact_id=999_999, expect=422)
    their_contact = opportunity(client, headers, contact_id=stranger["id"], expect=422)
    bad_owner = opportunity(client, headers, owner_email=7, expect=422)
    bad_filter = client.get("/api/v1/crm/opportunities?stage=cerrada", headers=headers)

    assert numbers.status_code == 422
    assert [e["field"] for e in numbers.json["errors"]] == ["name", "city"]
    assert (too_long.status_code, too_long.json["field"]) == (422, "name")
    assert "120" in too_long.json["message"]
    assert (bad_phone.status_code, bad_phone.json["field"]) == (422, "phone")
    assert unknown_contact["field"] == their_contact["field"] == "contact_id"
    assert bad_owner["field"] == "owner_email"
    assert (bad_filter.status_code, bad_filter.json["field"]) == (400, "stage")
    listed = client.get("/api/v1/crm/companies", headers=headers).json
    assert listed["total"] == 5  # the four opportunities' companies and "Otra SL": no refused one
    assert {c["name"] for c in listed["items"]} == {"Acme Soluciones SL", "Otra SL"}


def test_contact_data_is_refused_when_typed_not_when_the_deal_is_won(rt, client):
    """What the invoicing core would refuse once the deal is won (a tax id, country, postal
    code or e-mail it cannot take) is refused at once, every field named (the Spanish texts:
    tests/invoicing/test_said.py)."""
    headers = auth(rt)
    company = {"name": "Acme Soluciones SL", "tax_id": "B12345674", "postal_code": "28013"}
    bad = client.post(
        "/api/v1/crm/companies",
        headers=headers,
        json={
            "name": "Mala SL",
            "tax_id": "B12345675",
            "postal_code": "2801",
            "email": "compras@mala.es\r\nBcc: otro@mala.es",
        },
    )
    foreign = client.post(
        "/api/v1/crm/companies", headers=headers, json={**company, "country": "XX"}
    )
    good = client.post("/api/v1/crm/companies", headers=headers, json={**company, "country": "es"})
    contact = client.post(
        f"/api/v1/crm/companies/{good.json['id']}/contacts",
        headers=headers,
        json={"name": "Ana", "email": "ana@@acme.es"},
    )
    owner = opportunity(client, headers, owner_email="lucia", expect=422)

    assert bad.status_code == 422, bad.json
    assert [e["field"] for e in bad.json["errors"]] == ["postal_code", "tax_id", "email"]
    assert "postal code" in bad.json["errors"][0]["message"], bad.json
    assert (foreign.status_code, foreign.json["field"]) == (422, "country")
    assert good.status_code == 201 and good.json["country"] == "ES"
    assert (contact.status_code, contact.json["field"]) == (422, "email")
    assert owner["field"] == "owner_email"
    listed = client.get("/api/v1/crm/companies", headers=headers).json
    assert listed["total"] == 2  # the good one and the opportunity's: nothing refused stored
