"""The built-in CRM: companies, contacts, opportunities on the pipeline, won and converted.

/api/v1/crm/companies, /crm/opportunities (+ /<id>/stage, /<id>/won, /<id>/convert)."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import jsonify, request
from sqlalchemy import select

from invoicing import crm
from invoicing.errors import InvalidDocumentError
from invoicing.models import CrmCompany, Invoice, Opportunity
from invoicing.service import CustomerData, Invoicing, LineData
from web.api import ApiError, bp, is_id, iso, json_body, listing, not_found, page, sessions

COMPANY_FIELDS = ("name", "tax_id", "email", "street", "postal_code", "city", "province", "country")


def company_json(company: CrmCompany) -> dict[str, Any]:
    return {"id": company.id, **{f: getattr(company, f) for f in COMPANY_FIELDS}}


def document_json(doc: Invoice) -> dict[str, Any]:
    return {
        "id": doc.id,
        "kind": doc.kind,
        "status": doc.status,
        "number": doc.number,
        "total": str(doc.total),
        "paid": str(doc.paid_total),
        "payment_status": "Cobrado"
        if doc.status == "paid"
        else ("Pendiente" if doc.number else None),
    }


def opportunity_json(opp: Opportunity, documents: list[Invoice] | None = None) -> dict[str, Any]:
    data = {
        "id": opp.id,
        "title": opp.title,
        "stage": opp.stage,
        "stage_name": crm.STAGE_NAMES[opp.stage],
        "company": company_json(opp.company),
        "contact_id": opp.contact_id,
        "owner": {"name": opp.owner_name, "email": opp.owner_email},
        "campaign": opp.campaign,
        "currency": opp.currency,
        "amount": str(crm.amount_of(opp)),
        "expected_close": opp.expected_close.isoformat() if opp.expected_close else None,
        "won_at": iso(opp.won_at),
        "lines": [
            {
                "sku": line.sku,
                "description": line.description,
                "quantity": crm.plain(line.quantity),
                "unit_price": crm.plain(line.unit_price),
                "discount_percent": crm.plain(line.discount_percent),
                "tax_rate": crm.plain(line.tax_rate),
            }
            for line in opp.lines
        ],
    }
    if documents is not None:
        data["documents"] = [document_json(doc) for doc in documents]
    return data


@bp.post("/crm/companies")
def create_company() -> Any:
    data = json_body()
    unknown = sorted(set(data) - set(COMPANY_FIELDS))
    if unknown:
        raise ApiError(422, "invalid", f"unknown fields: {', '.join(unknown)}", unknown[0])
    with sessions().begin() as s:
        return jsonify(company_json(crm.add_company(s, **data))), 201


@bp.get("/crm/companies")
def list_companies() -> Any:
    limit, offset = page()
    return listing(select(CrmCompany), CrmCompany.id, company_json, limit, offset)


@bp.post("/crm/companies/<int:company_id>/contacts")
def create_contact(company_id: int) -> Any:
    data = json_body()
    if not isinstance(data.get("name"), str) or not data["name"].strip():
        raise ApiError(422, "invalid", "the contact needs a name", "name")
    with sessions().begin() as s:
        contact = crm.add_contact(
            s, company_id, name=data["name"], email=data.get("email"), phone=data.get("phone")
        )
        return jsonify({"id": contact.id, "company_id": company_id, "name": contact.name}), 201


@bp.post("/crm/opportunities")
def create_opportunity() -> Any:
    """{"title", "company_id", "lines": [{description, quantity, unit_price, sku?,
    discount_percent?, tax_rate?}], "stage"?, "owner_name"?, "owner_email"?, "campaign"?,
    "currency"?, "expected_close"?, "contact_id"?}"""
    data = json_body()
    if not isinstance(data.get("title"), str) or not data["title"].strip():
        raise ApiError(422, "invalid", "the opportunity needs a title", "title")
    if not is_id(data.get("company_id")):
        raise ApiError(422, "invalid", "company_id must be a company's id", "company_id")
    if data.get("contact_id") is not None and not is_id(data["contact_id"]):
        raise ApiError(422, "invalid", "contact_id must be a contact's id", "contact_id")
    lines = data.get("lines") or []
    if not isinstance(lines, list):
        raise ApiError(422, "invalid", "lines must be a list", "lines")
    parsed = []
    for i, line in enumerate(lines):
        try:
            parsed.append(crm.LineInput.from_json(line))
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise InvalidDocumentError(
                [(f"lines[{i}]", f"needs description, quantity and unit_price ({exc})")]
            ) from None
    try:
        close = date.fromisoformat(data["expected_close"]) if data.get("expected_close") else None
    except (TypeError, ValueError):
        raise ApiError(
            422, "invalid", "expected_close is a date: 2026-12-31", "expected_close"
        ) from None
    with sessions().begin() as s:
        opp = crm.add_opportunity(
            s,
            title=data["title"].strip()[:200],
            company_id=data["company_id"],
            lines=parsed,
            stage=str(data.get("stage") or "nueva"),
            owner_name=data.get("owner_name"),
            owner_email=data.get("owner_email"),
            campaign=data.get("campaign"),
            currency=str(data.get("currency") or "EUR"),
            expected_close=close,
            contact_id=data.get("contact_id"),
        )
        return jsonify(opportunity_json(opp, [])), 201


@bp.get("/crm/opportunities")
def list_opportunities() -> Any:
    limit, offset = page()
    query = select(Opportunity)
    stage = request.args.get("stage")
    if stage:
        if stage not in crm.STAGES:
            raise ApiError(
                400, "bad_request", f"stage must be one of: {', '.join(crm.STAGES)}", "stage"
            )
        query = query.where(Opportunity.stage == stage)
    return listing(query, Opportunity.id.desc(), opportunity_json, limit, offset)


@bp.get("/crm/opportunities/<int:opportunity_id>")
def get_opportunity(opportunity_id: int) -> Any:
    with sessions()() as s:
        opp = s.get(Opportunity, opportunity_id)
        if opp is None:
            raise not_found("opportunity", opportunity_id)
        return jsonify(opportunity_json(opp, crm.documents_of(s, opp.id)))


@bp.post("/crm/opportunities/<int:opportunity_id>/stage")
def move_opportunity(opportunity_id: int) -> Any:
    """{"stage": ...}; moving it to "ganada" marks it won (the deal-won flows start)."""
    stage = json_body().get("stage")
    if stage not in crm.STAGES:
        raise ApiError(422, "invalid", f"stage must be one of: {', '.join(crm.STAGES)}", "stage")
    with sessions().begin() as s:
        opp = crm.move(s, opportunity_id, stage)
        return jsonify(opportunity_json(opp))


@bp.post("/crm/opportunities/<int:opportunity_id>/won")
def win_opportunity(opportunity_id: int) -> Any:
    with sessions().begin() as s:
        return jsonify(opportunity_json(crm.mark_won(s, opportunity_id)))


@bp.post("/crm/opportunities/<int:opportunity_id>/convert")
def convert_opportunity(opportunity_id: int) -> Any:
    """{"to": "quote" | "order" | "invoice"} → the draft (one of each kind per opportunity)."""
    kind = json_body().get("to")
    if kind not in ("quote", "order", "invoice"):
        raise ApiError(422, "invalid", "to must be quote, order or invoice", "to")
    with sessions().begin() as s:
        opp = s.get(Opportunity, opportunity_id)
        if opp is None:
            raise not_found("opportunity", opportunity_id)
        deal = crm.deal_of(opp)
        result = Invoicing(s).create_draft_invoice(
            customer=CustomerData.from_json(deal["customer"]),
            lines=[LineData.from_json(line) for line in deal["lines"]],
            currency=opp.currency,
            source=crm.SOURCE,
            external_ref=str(opp.id),
            notes=opp.title,
            kind=kind,
        )
        return jsonify(document_json(result.invoice)), 201 if result.created else 200
