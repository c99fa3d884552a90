"""Customers: one per tax id; creating an existing one answers the existing one."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from sqlalchemy import select

from connector import schemas
from invoicing.errors import InvalidDocumentError
from invoicing.fields import customer_problems
from invoicing.models import Customer
from invoicing.service import CustomerData, Invoicing, check_terms
from invoicing.tax_ids import TaxIdError, parse_tax_id
from web.api import ApiError, bp, iso, json_body, listing, not_found, page, sessions

ADDRESS = ("street", "postal_code", "city", "province", "country")


def customer_json(customer: Customer) -> dict[str, Any]:
    return {
        "id": customer.id,
        "tax_id": customer.tax_id,
        "tax_id_kind": customer.tax_id_kind,
        "name": customer.name,
        "individual": _individual(customer),
        "email": customer.email,
        "address": {k: getattr(customer, k) for k in ADDRESS},
        "equivalence_surcharge": customer.equivalence_surcharge,
        "payment_days": customer.payment_days,
        "created_at": iso(customer.created_at),
    }


def _individual(customer: Customer) -> dict[str, Any] | None:
    """A person's name apart, when it was given."""
    if not customer.first_surname:
        return None
    return {
        "given_name": customer.given_name,
        "first_surname": customer.first_surname,
        "second_surname": customer.second_surname,
    }


@bp.post("/customers")
def create_customer() -> Any:
    data = json_body()
    errors = schemas.validate("common/customer.json", data)
    if errors:
        raise ApiError.invalid(errors)
    with sessions().begin() as s:
        try:
            result = Invoicing(s).find_or_create_customer(CustomerData.from_json(data))
        except InvalidDocumentError as exc:  # paths relative to this body, not to an invoice
            exc.errors = [(p.removeprefix("customer."), m) for p, m in exc.errors]
            raise
        body = {
            **customer_json(result.customer),
            "created": result.created,
            "name_differs": result.name_differs,
        }
        return jsonify(body), 201 if result.created else 200


@bp.get("/customers")
def list_customers() -> Any:
    limit, offset = page()
    query = select(Customer)
    if request.args.get("tax_id"):
        try:
            tax_id = parse_tax_id(request.args["tax_id"], request.args.get("country"))
        except TaxIdError as exc:
            raise ApiError(400, "bad_request", str(exc), "tax_id") from None
        query = query.where(Customer.tax_id == tax_id.value)
    return listing(query, Customer.id, customer_json, limit, offset)


@bp.get("/customers/<int:customer_id>")
def get_customer(customer_id: int) -> Any:
    with sessions()() as s:
        customer = s.get(Customer, customer_id)
        if customer is None:
            raise not_found("customer", customer_id)
        return jsonify(customer_json(customer))


@bp.patch("/customers/<int:customer_id>")
def patch_customer(customer_id: int) -> Any:
    """Edit name, email, address, recargo de equivalencia and payment days; the tax id
    identifies the customer and never changes. Drafts are totalled again when issued."""
    data = json_body()
    if "tax_id" in data:
        raise ApiError(
            422,
            "invalid",
            "the tax id identifies the customer and cannot change; create a new customer instead",
            "tax_id",
        )
    allowed = {"name", "individual", "email", "address", "equivalence_surcharge", "payment_days"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ApiError(422, "invalid", f"unknown fields: {', '.join(unknown)}", unknown[0])
    with sessions().begin() as s:
        customer = s.get(Customer, customer_id)
        if customer is None:
            raise not_found("customer", customer_id)
        merged = {
            "name": customer.name,
            "tax_id": customer.tax_id,
            "email": customer.email,
            **({"individual": _individual(customer)} if customer.first_surname else {}),
            "address": {k: getattr(customer, k) for k in ADDRESS if getattr(customer, k)},
            "equivalence_surcharge": customer.equivalence_surcharge,
            "payment_days": customer.payment_days,
        }
        merged.update({k: v for k, v in data.items() if k != "address"})
        if "address" in data:
            if not isinstance(data["address"], dict):
                raise ApiError(422, "invalid", "address must be an object", "address")
            country = data["address"].get("country")
            if country is not None and country != customer.country:
                raise ApiError(
                    422,
                    "invalid",
                    f"the country comes from the tax id "
                    f"{customer.tax_id} ({customer.country}) and cannot change",
                    "address.country",
                )
            merged["address"] = {**merged["address"], **data["address"]}
        errors = schemas.validate("common/customer.json", merged)
        if errors:
            raise ApiError.invalid(errors)
        terms = check_terms(
            customer.country, merged["equivalence_surcharge"], merged["payment_days"]
        ) + customer_problems(
            customer.country, merged.get("email"), merged["address"].get("postal_code")
        )
        if terms:
            raise ApiError(
                422,
                "invalid",
                "; ".join(f"{path}: {message}" for path, message in terms),
                terms[0][0],
                [{"field": path, "message": message} for path, message in terms],
            )
        customer.equivalence_surcharge = merged["equivalence_surcharge"]
        customer.payment_days = merged["payment_days"]
        customer.name = merged["name"].strip()
        customer.email = merged.get("email")
        individual = merged.get("individual") or {}
        customer.given_name = individual.get("given_name")
        customer.first_surname = individual.get("first_surname")
        customer.second_surname = individual.get("second_surname")
        for key in ADDRESS:
            if key in merged["address"]:
                setattr(customer, key, merged["address"][key])
        return jsonify(customer_json(customer))
