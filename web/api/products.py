"""Catalog: products by SKU, and CRM product codes mapped to them."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from invoicing import catalog
from invoicing.models import Product, SkuMapping
from web.api import ApiError, bp, iso, json_body, listing, not_found, page, sessions


def product_json(product: Product) -> dict[str, Any]:
    return {
        "id": product.id,
        "sku": product.sku,
        "name": product.name,
        "unit_price": format(product.unit_price.normalize(), "f"),
        "tax_rate": format(product.tax_rate.normalize(), "f"),
        "exemption_cause": product.exemption_cause,
        "withholding_rate": None
        if product.withholding_rate is None
        else format(product.withholding_rate.normalize(), "f"),
        "service": product.service,
        "active": product.active,
        "updated_at": iso(product.updated_at),
    }


def _text(data: dict[str, Any], name: str, required: bool = True) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ApiError(422, "invalid", f"{name} is required and must be text", name)
    return value


@bp.post("/products")
def create_product() -> Any:
    data = json_body()
    fields = {
        "sku",
        "name",
        "unit_price",
        "tax_rate",
        "exemption_cause",
        "withholding_rate",
        "service",
    }
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ApiError(422, "invalid", f"unknown fields: {', '.join(unknown)}", unknown[0])
    for name in ("unit_price", "tax_rate"):
        if name not in data:
            raise ApiError(422, "invalid", f"{name} is required", name)
    with sessions().begin() as s:
        product = catalog.create_product(
            s,
            catalog.ProductData(
                sku=_text(data, "sku") or "",
                name=_text(data, "name") or "",
                unit_price=data["unit_price"],
                tax_rate=data["tax_rate"],
                exemption_cause=_text(data, "exemption_cause", required=False),
                withholding_rate=data.get("withholding_rate"),
                service=_flag(data, "service"),
            ),
        )
        return jsonify(product_json(product)), 201


@bp.get("/products")
def list_products() -> Any:
    limit, offset = page()
    query = select(Product)
    if request.args.get("sku"):
        query = query.where(Product.sku == request.args["sku"])
    return listing(query, Product.sku, product_json, limit, offset)


@bp.get("/products/<int:product_id>")
def get_product(product_id: int) -> Any:
    with sessions()() as s:
        product = s.get(Product, product_id)
        if product is None:
            raise not_found("product", product_id)
        return jsonify(product_json(product))


@bp.post("/sku-mappings")
def map_sku() -> Any:
    """{"source": "hubspot", "external_code": "PRD-77", "sku": "CONS-H"}: the CRM's code → ours.
    201 when the code is new, 200 when it replaces the code's earlier product."""
    data = json_body()
    values = {name: _text(data, name) or "" for name in ("source", "external_code", "sku")}
    for name, value in values.items():
        if not value.strip():
            raise ApiError(422, "invalid", f"{name} must not be empty", name)
    with sessions().begin() as s:
        known = s.scalar(
            select(SkuMapping.id).where(
                SkuMapping.source == values["source"],
                SkuMapping.external_code == values["external_code"],
            )
        )
        mapping = catalog.map_code(s, values["source"], values["external_code"], values["sku"])
        return jsonify(mapping_json(mapping)), 200 if known else 201


def mapping_json(mapping: SkuMapping) -> dict[str, Any]:
    return {
        "source": mapping.source,
        "external_code": mapping.external_code,
        "sku": mapping.product.sku,
    }


@bp.get("/sku-mappings")
def list_mappings() -> Any:
    limit, offset = page()
    query = select(SkuMapping).options(selectinload(SkuMapping.product))
    if request.args.get("source"):
        query = query.where(SkuMapping.source == request.args["source"])
    query = query.order_by(SkuMapping.source)
    return listing(query, SkuMapping.external_code, mapping_json, limit, offset)


def _flag(data: dict[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise ApiError(422, "invalid", f"{name} must be true or false", name)
    return value
