"""Customers (search, fiscal data, their documents, editing) and the catalog (products and CRM
code mappings) for people."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload

from connector import schemas
from invoicing import catalog
from invoicing.errors import DocumentStateError, InvalidDocumentError
from invoicing.models import Customer, DocumentKind, Invoice, Product, SkuMapping
from web.i18n import translate
from web.ui.common import HELPERS, PAGE, allow, blueprint, page_number, sessions, typed_amount

bp = blueprint("catalog", __name__)

EDITABLE = ("name", "email", "street", "postal_code", "city", "province")
ADDRESS = ("street", "postal_code", "city", "province")
RATES = ("21", "10", "4", "0")
PRODUCT_FIELDS = ("sku", "name", "unit_price", "tax_rate", "exemption_cause")
MAPPING_FIELDS = ("source", "external_code", "sku")
# Column sizes the core does not check itself.
LONGEST = {"sku": 64, "name": 200, "source": 40, "external_code": 100}
PRICE_DECIMALS = 8


# --- customers ------------------------------------------------------------------------------


@bp.get("/customers")
def customers() -> Any:
    q = (request.args.get("q") or "").strip()
    page = page_number()
    query = select(Customer)
    if q:
        compact = "".join(ch for ch in q if ch.isalnum()).upper()
        matches = [Customer.name.icontains(q, autoescape=True)]
        if compact:
            matches.append(Customer.tax_id.contains(compact, autoescape=True))
        query = query.where(or_(*matches))
    with sessions()() as s:
        total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = s.scalars(
            query.order_by(Customer.name, Customer.id).limit(PAGE).offset((page - 1) * PAGE)
        ).all()
        return render_template(
            "ui/customers.html",
            customers=rows,
            q=q,
            total=total,
            page=page,
            has_next=page * PAGE < total,
        )


@bp.route("/customers/<int:customer_id>", methods=["GET", "POST"])
@allow("billing")
def customer_detail(customer_id: int) -> Any:
    """The customer's fiscal data and documents; the form changes name, email and address."""
    errors: dict[str, str] = {}
    values: dict[str, str] | None = None
    if request.method == "POST":
        values = {k: (request.form.get(k) or "").strip() for k in EDITABLE}
        with sessions().begin() as s:
            customer = s.get(Customer, customer_id)
            if customer is None:
                abort(404)
            errors = _customer_errors(customer, values)
            if not errors:
                customer.name = values["name"]
                customer.email = values["email"] or None
                for key in ADDRESS:
                    setattr(customer, key, values[key] or None)
        if not errors:
            flash("cat_customer_saved", "ok")
            return redirect(url_for("catalog.customer_detail", customer_id=customer_id))
    with sessions()() as s:
        customer = s.get(Customer, customer_id)
        if customer is None:
            abort(404)
        if values is None:
            values = {k: getattr(customer, k) or "" for k in EDITABLE}
        invoices, invoice_count = _documents(s, customer_id, invoices=True)
        others, other_count = _documents(s, customer_id, invoices=False)
        return render_template(
            "ui/customer.html",
            customer=customer,
            values=values,
            errors=errors,
            invoices=invoices,
            invoice_count=invoice_count,
            others=others,
            other_count=other_count,
            shown=PAGE,
            **HELPERS,
        ), 422 if errors else 200


def _customer_errors(customer: Customer, values: dict[str, str]) -> dict[str, str]:
    """Problems with the edited data, by form field, in the page's language."""
    errors: dict[str, str] = {}
    # Read-only on the form; anything else sent for them is refused, never applied.
    tax_id = "".join(ch for ch in request.form.get("tax_id", "") if ch.isalnum()).upper()
    if tax_id and tax_id != customer.tax_id:
        errors["tax_id"] = translate("cat_err_tax_id_fixed")
    country = (request.form.get("country") or "").strip().upper()
    if country and country != customer.country:
        errors["country"] = translate("cat_err_country_fixed")
    party = {
        "name": values["name"],
        "tax_id": customer.tax_id,
        "email": values["email"] or None,
        "address": {k: values[k] for k in ADDRESS if values[k]},
    }
    for problem in schemas.validate("common/party.json", party):
        name = problem.path.removeprefix("address.")
        if name in errors:
            continue
        if problem.code == "maxLength":
            errors[name] = translate("cat_err_too_long").format(n=problem.params["expected"])
        elif problem.code == "format" and name == "email":
            errors[name] = translate("cat_err_email")
        elif problem.code in ("minLength", "pattern", "required"):
            errors[name] = translate("cat_err_required")
        else:
            errors[name] = problem.message
    return errors


def _documents(s: Session, customer_id: int, *, invoices: bool) -> tuple[list[Invoice], int]:
    """The customer's latest invoices (or other documents), and how many there are."""
    query = select(Invoice).where(Invoice.customer_id == customer_id)
    if invoices:
        query = query.where(Invoice.kind == DocumentKind.INVOICE)
    else:
        query = query.where(Invoice.kind != DocumentKind.INVOICE)
    total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = s.scalars(
        query.options(selectinload(Invoice.converted_from)).order_by(Invoice.id.desc()).limit(PAGE)
    ).all()
    return list(rows), total


# --- catalog --------------------------------------------------------------------------------


@bp.get("/products")
def products() -> Any:
    return _catalog_page()


@bp.post("/products")
@allow("billing")
def product_create() -> Any:
    values = {k: (request.form.get(k) or "").strip() for k in PRODUCT_FIELDS}
    errors = _lengths(values)
    values["service"] = "on" if request.form.get("service") else ""
    price = typed_amount(values["unit_price"])
    if not _decimal_ok(price):
        errors.setdefault("unit_price", translate("cat_err_price"))
    if not errors:
        try:
            with sessions().begin() as s:
                catalog.create_product(
                    s,
                    catalog.ProductData(
                        sku=values["sku"],
                        name=values["name"],
                        unit_price=price,
                        tax_rate=values["tax_rate"],
                        exemption_cause=values["exemption_cause"] or None,
                        service=bool(values["service"]),
                    ),
                )
        except InvalidDocumentError as exc:
            errors = {path: _product_problem(path, values, message) for path, message in exc.errors}
        except DocumentStateError:
            errors = {"sku": translate("cat_err_sku_exists")}
    if errors:
        return _catalog_page(product=values, product_errors=errors)
    flash("cat_product_created", "ok")
    return redirect(url_for("catalog.products"))


@bp.post("/products/mappings")
@allow("billing")
def mapping_create() -> Any:
    values = {k: (request.form.get(k) or "").strip() for k in MAPPING_FIELDS}
    errors = _lengths(values)
    if not errors:
        try:
            with sessions().begin() as s:
                catalog.map_code(s, values["source"], values["external_code"], values["sku"])
        except InvalidDocumentError as exc:
            errors = {
                path: translate("cat_err_unknown_sku").format(sku=values["sku"])
                if path == "sku"
                else message
                for path, message in exc.errors
            }
    if errors:
        return _catalog_page(mapping=values, mapping_errors=errors)
    flash("cat_mapping_saved", "ok")
    return redirect(url_for("catalog.products"))


def _lengths(values: dict[str, str]) -> dict[str, str]:
    """Empty or too long text fields (the database column decides how long)."""
    errors: dict[str, str] = {}
    for name, value in values.items():
        if name in ("unit_price", "tax_rate", "exemption_cause"):
            continue
        if not value:
            errors[name] = translate("cat_err_required")
        elif len(value) > LONGEST[name]:
            errors[name] = translate("cat_err_too_long").format(n=LONGEST[name])
    return errors


def _decimal_ok(text: str) -> bool:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return False
    exponent = value.as_tuple().exponent
    return isinstance(exponent, int) and -exponent <= PRICE_DECIMALS and value >= 0


def _product_problem(path: str, values: dict[str, str], message: str) -> str:
    """The core's refusal, said in the page's language for the fields the form has."""
    if path == "unit_price":
        return translate("cat_err_price")
    if path == "tax_rate":
        return translate("cat_err_tax_rate")
    if path == "exemption_cause":
        known = values["exemption_cause"] in catalog.EXEMPTIONS
        key = "cat_err_exempt_needs_zero" if known else "cat_err_exemption"
        return translate(key)
    if path in ("sku", "name"):
        return translate("cat_err_required")
    return message


def _catalog_page(
    product: dict[str, str] | None = None,
    product_errors: dict[str, str] | None = None,
    mapping: dict[str, str] | None = None,
    mapping_errors: dict[str, str] | None = None,
) -> Any:
    page = page_number()
    mpage = max(request.args.get("mpage", 1, type=int) or 1, 1)
    with sessions()() as s:
        total = s.scalar(select(func.count()).select_from(Product)) or 0
        rows = s.scalars(
            select(Product).order_by(Product.sku).limit(PAGE).offset((page - 1) * PAGE)
        ).all()
        mapped = s.scalar(select(func.count()).select_from(SkuMapping)) or 0
        mappings = s.scalars(
            select(SkuMapping)
            .options(selectinload(SkuMapping.product))
            .order_by(SkuMapping.source, SkuMapping.external_code, SkuMapping.id)
            .limit(PAGE)
            .offset((mpage - 1) * PAGE)
        ).all()
        # Suggestions for the mapping form (a datalist: any other value may still be typed).
        skus = s.scalars(select(Product.sku).order_by(Product.sku).limit(500)).all()
        sources = s.scalars(select(SkuMapping.source).distinct().order_by(SkuMapping.source)).all()
        failed = bool(product_errors or mapping_errors)
        return render_template(
            "ui/products.html",
            products=rows,
            page=page,
            has_next=page * PAGE < total,
            mappings=mappings,
            mpage=mpage,
            mappings_next=mpage * PAGE < mapped,
            skus=skus,
            sources=sources,
            rates=RATES,
            exemptions=catalog.EXEMPTIONS,
            product=product or {"tax_rate": "21"},
            product_errors=product_errors or {},
            mapping=mapping or {},
            mapping_errors=mapping_errors or {},
        ), 422 if failed else 200
