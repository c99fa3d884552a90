"""Pipedrive deals through its REST API (v1): read a deal with its products and organization,
write the invoice's fields on it, add a note to it.

Custom fields have 40-character hash keys in Pipedrive; the settings may name a field by that
key or by the field's name as shown in Pipedrive ("NIF", "puente_invoice_number"): names are
looked up in /v1/dealFields and /v1/organizationFields.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import actions.crm
from actions.crm import CrmApi, check
from connector.connections import Said, refused
from connector.spec import ActionContext
from providers.crm import Company, CrmSettings, Line, country_code, normalized

PAGE = 100  # items per page (Pipedrive allows up to 500)
MAX_PAGES = 50  # a bound on every paginated read
HASH_KEY = re.compile(r"^[0-9a-f]{40}$")


# Reading


def _call(ctx: ActionContext, method: str, path: str, what: str, payload: Any = None) -> Any:
    assert ctx.http is not None
    answer = check(
        ctx.http.request(
            method,
            path,
            connection=ctx.connection,
            payload=payload,
            idempotency_key=ctx.idempotency_key if method != "GET" else None,
        ),
        what,
    )
    return answer.body if isinstance(answer.body, dict) else {}


def _pages(ctx: ActionContext, path: str, what: str) -> Iterator[dict[str, Any]]:
    """Every item of a paginated list (start/limit, more_items_in_collection), bounded."""
    start = 0
    joiner = "&" if "?" in path else "?"
    for _ in range(MAX_PAGES):
        body = _call(ctx, "GET", f"{path}{joiner}start={start}&limit={PAGE}", what)
        for item in body.get("data") or []:  # Pipedrive answers "data": null when empty
            if isinstance(item, dict):
                yield item
        pagination = (body.get("additional_data") or {}).get("pagination") or {}
        if not pagination.get("more_items_in_collection"):
            return
        following = pagination.get("next_start")
        start = int(following) if following is not None else start + PAGE


def read_deal(ctx: ActionContext, crm: CrmSettings, deal_id: str) -> dict[str, Any]:
    """GET /v1/deals/{id}, its products and its organization → the normalized deal."""
    deal = _call(ctx, "GET", f"v1/deals/{deal_id}", f"reading Pipedrive deal {deal_id}")
    data = deal.get("data")
    if not isinstance(data, dict):
        raise refused(
            "deal_id",
            Said(
                f"Pipedrive has no deal {deal_id}",
                f"Pipedrive no tiene ninguna oportunidad {deal_id}",
            ),
        )
    stage = None if data.get("stage_id") is None else str(data["stage_id"])
    won_by_status = [stage] if data.get("status") == "won" and stage else []
    assert ctx.http is not None and ctx.connection is not None
    site = re.sub(r"/api$", "", ctx.http.view(ctx.connection).base_url.rstrip("/"))
    org_id = _id(data.get("org_id"))
    return normalized(
        source="pipedrive",
        deal_id=str(data.get("id") or deal_id),
        title=data.get("title"),
        stage=stage,
        won=crm.won(stage, won_by_status),
        won_at=_iso(data.get("won_time") or data.get("close_time") or data.get("update_time")),
        currency=data.get("currency"),
        amount=_plain(data.get("value")),
        owner=_owner(data.get("user_id") or data.get("owner_id")),
        company=_company(ctx, crm, org_id, _email(data.get("person_id"))) if org_id else None,
        lines=list(_lines(ctx, deal_id)),
        settings=crm,
        deal_url=f"{site}/deal/{data.get('id') or deal_id}",
    )


def _id(ref: Any) -> str | None:
    """A related object's id: v1 gives {"value": 5, "name": …}, v2 a plain 5."""
    if isinstance(ref, dict):
        ref = ref.get("value", ref.get("id"))
    return None if ref in (None, "", 0) else str(ref)


def _owner(user: Any) -> dict[str, Any] | None:
    if isinstance(user, dict):
        return {
            "id": str(user.get("id") or user.get("value") or ""),
            "name": user.get("name"),
            "email": user.get("email"),
        }
    return {"id": str(user)} if user not in (None, "") else None


def _email(person: Any) -> str | None:
    """The primary email of the deal's contact person (v1 embeds it in person_id)."""
    if not isinstance(person, dict):
        return None
    emails = [e for e in person.get("email") or [] if isinstance(e, dict) and e.get("value")]
    primary = [e for e in emails if e.get("primary")] or emails
    return str(primary[0]["value"]) if primary else None


def _iso(stamp: Any) -> str:
    """Pipedrive's times ("2026-11-27 10:15:00" in UTC in v1, ISO 8601 in v2) as ISO 8601."""
    if isinstance(stamp, str) and stamp.strip():
        try:
            when = datetime.fromisoformat(stamp.strip().replace("Z", "+00:00"))
        except ValueError:
            when = None
        if when is not None:
            return (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat()
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _decimal(value: Any) -> Decimal | None:
    if value in (None, "") or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _plain(value: Any) -> str | None:
    number = _decimal(value)
    if number is None:
        return None
    text = format(number.normalize(), "f")
    return text if "." not in text else text.rstrip("0").rstrip(".")


def _lines(ctx: ActionContext, deal_id: str) -> Iterator[Line]:
    """The deal's enabled products, with the product's code as SKU."""
    codes: dict[str, str | None] = {}
    what = f"reading the products of Pipedrive deal {deal_id}"
    for row in _pages(ctx, f"v1/deals/{deal_id}/products", what):
        if row.get("enabled_flag") is False or row.get("is_enabled") is False:
            continue  # Pipedrive leaves a disabled product out of the deal's value too
        yield _line(row, _code(ctx, row, codes))


def _code(ctx: ActionContext, row: dict[str, Any], codes: dict[str, str | None]) -> str | None:
    """The product's code (GET /v1/products/{id}), read once per product."""
    embedded = row.get("product")
    if isinstance(embedded, dict) and embedded.get("code"):
        return str(embedded["code"])
    product = _id(row.get("product_id"))
    if product is None:
        return None
    if product not in codes:
        body = _call(ctx, "GET", f"v1/products/{product}", f"reading Pipedrive product {product}")
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        codes[product] = str(data["code"]).strip() or None if data.get("code") else None
    return codes[product]


def _line(row: dict[str, Any], sku: str | None) -> Line:
    quantity = _decimal(row.get("quantity")) or Decimal(1)
    duration = _decimal(row.get("duration"))
    if duration is not None and duration > 0 and duration != 1:
        quantity *= duration  # Pipedrive's sum counts every period
    price = _decimal(row.get("item_price"))
    tax = _decimal(row.get("tax"))
    if price is not None and tax and row.get("tax_method") == "inclusive":
        price = (price / (1 + tax / 100)).quantize(Decimal("0.00000001"), ROUND_HALF_UP)
    discount = _decimal(row.get("discount"))
    percent: Decimal | None = None
    if discount and row.get("discount_type") == "amount" and price is not None:
        percent, price = _amount_off(discount, price, quantity)
    elif discount:
        percent = discount
    name = str(row.get("name") or (row.get("product") or {}).get("name") or sku or "")
    return Line(
        description=name,
        quantity=_plain(quantity),
        unit_price=_plain(price),
        sku=sku,
        discount_percent=_plain(percent),
        tax_rate=None if row.get("tax_method") == "none" or not tax else _plain(tax),
    )


def _amount_off(discount: Decimal, price: Decimal, quantity: Decimal) -> tuple[Any, Decimal]:
    """A discount of an amount off the line as the invoice line has it: a percentage when
    one of 4 decimals is exact, else a lower exact unit price, else the nearest percentage."""
    gross = price * quantity
    if not gross:
        return None, price
    percent = discount * 100 / gross
    if percent == percent.quantize(Decimal("0.0001")):
        return percent, price
    net = (gross - discount) / quantity
    if net == net.quantize(Decimal("0.00000001")):
        return None, net
    return percent.quantize(Decimal("0.0001"), ROUND_HALF_UP), price


def _company(ctx: ActionContext, crm: CrmSettings, org_id: str, email: str | None) -> Company:
    body = _call(
        ctx, "GET", f"v1/organizations/{org_id}", f"reading Pipedrive organization {org_id}"
    )
    org = body.get("data") if isinstance(body.get("data"), dict) else {}
    return _company_of(ctx, crm, org, email)


def _company_of(
    ctx: ActionContext, crm: CrmSettings, org: dict[str, Any], email: str | None
) -> Company:
    """The organization as a company: its NIF/CIF from settings.tax_id_field, its address."""
    tax_id = _field(org, crm.tax_id_field)
    if tax_id is None and not HASH_KEY.match(crm.tax_id_field):
        key = _keys(ctx, "organizationFields").get(crm.tax_id_field.casefold())
        tax_id = _field(org, key) if key else None
    street = " ".join(
        str(org[k]).strip() for k in ("address_route", "address_street_number") if org.get(k)
    )
    if not street and org.get("address"):
        street = str(org["address"]).split(",")[0].strip()
    return Company(
        name=org.get("name"),
        tax_id=str(tax_id).strip().upper().replace(" ", "").replace("-", "") or None
        if tax_id
        else None,
        email=email,
        street=street or None,
        postal_code=_text(org.get("address_postal_code")),
        city=_text(org.get("address_locality")),
        province=_text(org.get("address_admin_area_level_1")),
        country=_country(org.get("address_country")),
    )


def _field(record: dict[str, Any], key: str | None) -> Any:
    """A field's value, at the top (v1) or in custom_fields (v2)."""
    if not key:
        return None
    value = record.get(key)
    if value in (None, "") and isinstance(record.get("custom_fields"), dict):
        value = record["custom_fields"].get(key)
    if isinstance(value, dict):  # a field with a value object
        value = value.get("value")
    return None if value in (None, "") else value


def _text(value: Any) -> str | None:
    return str(value).strip() or None if value not in (None, "") else None


def _country(value: Any) -> str | None:
    return country_code(value)


def _keys(ctx: ActionContext, kind: str) -> dict[str, str]:
    """Field name (and key) → key, from /v1/dealFields or /v1/organizationFields."""
    found: dict[str, str] = {}
    for field in _pages(ctx, f"v1/{kind}", f"reading Pipedrive's {kind}"):
        key = field.get("key")
        if isinstance(key, str) and key:
            found[key.casefold()] = key
            if isinstance(field.get("name"), str):
                found.setdefault(field["name"].strip().casefold(), key)
    return found


# Writing


def write_deal(ctx: ActionContext, _crm: CrmSettings, deal_id: str, fields: dict[str, Any]) -> None:
    """PUT /v1/deals/{id} with each field under its Pipedrive key."""
    keys: dict[str, str] | None = None
    body: dict[str, Any] = {}
    for name, value in fields.items():
        if HASH_KEY.match(name):
            body[name] = value
            continue
        keys = keys if keys is not None else _keys(ctx, "dealFields")
        key = keys.get(name.casefold())
        if key is None:
            raise refused(
                "fields",
                Said(
                    f"Pipedrive has no deal field {name!r}: create it in Pipedrive (Settings → "
                    "Data fields → Deal) or set the connection's settings to its API key",
                    f"Pipedrive no tiene el campo de oportunidad {name!r}: créalo en Pipedrive "
                    "(Configuración → Campos de datos → Oportunidad) o pon su clave de API en "
                    "los ajustes de la conexión",
                ),
            )
        body[key] = value
    _call(ctx, "PUT", f"v1/deals/{deal_id}", f"writing on Pipedrive deal {deal_id}", body)


def write_note(ctx: ActionContext, _crm: CrmSettings, deal_id: str, text: str) -> str | None:
    """POST /v1/notes on the deal."""
    deal: int | str = int(deal_id) if deal_id.isdigit() else deal_id
    body = _call(
        ctx,
        "POST",
        "v1/notes",
        f"adding a note to Pipedrive deal {deal_id}",
        {"content": text, "deal_id": deal},
    )
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    return None if data.get("id") is None else str(data["id"])


def list_won(ctx: ActionContext, crm: CrmSettings, since: datetime) -> list[str]:
    """GET /v1/deals?status=won, newest won first: the ids of the deals won since `since`."""
    ids = []
    for deal in _pages(ctx, "v1/deals?status=won&sort=won_time%20DESC", "listing won deals"):
        won = deal.get("won_time") or deal.get("close_time")
        if won and datetime.fromisoformat(_iso(won)) >= since and deal.get("id") is not None:
            ids.append(str(deal["id"]))
    return ids


def write_company(
    ctx: ActionContext, crm: CrmSettings, company_id: str | None, customer: dict[str, Any]
) -> tuple[str, bool]:
    """PUT /v1/organizations/{id} on the organization with this id; without one, on the one
    whose NIF field holds the customer's tax id (GET /v1/organizations/search), else POST a
    new one. The address goes as Pipedrive's one `address` text (Pipedrive splits it into
    its parts itself); organizations have no e-mail of their own, so none is written."""
    tax_id = str(customer.get("tax_id") or "").strip()
    key = _nif_key(ctx, crm)
    body: dict[str, Any] = {"name": customer.get("name"), key: tax_id or None}
    address = _address_text(customer.get("address") or {})
    if address:
        body["address"] = address
    # Only what the customer has: a value missing here never empties the organization's.
    body = {k: v for k, v in body.items() if v not in (None, "")}
    found = company_id or _organization_with(ctx, key, tax_id)
    if found is None:
        created = _call(
            ctx,
            "POST",
            "v1/organizations",
            f"creating the Pipedrive organization of {tax_id}",
            body,
        )
        data = created.get("data") if isinstance(created.get("data"), dict) else {}
        return str(data["id"]), True
    assert ctx.http is not None
    path = f"v1/organizations/{found}"
    answer = ctx.http.request(
        "PUT", path, connection=ctx.connection, payload=body, idempotency_key=ctx.idempotency_key
    )
    if answer.status == 404:
        raise refused(
            "company_id",
            Said(
                f"Pipedrive has no organization {found} to write on",
                f"Pipedrive no tiene ninguna organización {found} en la que escribir",
            ),
        )
    check(answer, f"writing on Pipedrive organization {found}")
    return str(found), False


def _nif_key(ctx: ActionContext, crm: CrmSettings) -> str:
    """The organization field of the NIF: settings.tax_id_field as a key, or by its name."""
    if HASH_KEY.match(crm.tax_id_field):
        return crm.tax_id_field
    key = _keys(ctx, "organizationFields").get(crm.tax_id_field.casefold())
    if key is None:
        raise refused(
            "customer",
            Said(
                f"Pipedrive has no organization field {crm.tax_id_field!r} for the NIF: create "
                "it in Pipedrive (Settings → Data fields → Organization, text) or set the "
                "connection's tax_id_field to your field's name or API key",
                f"Pipedrive no tiene el campo de organización {crm.tax_id_field!r} para el NIF: "
                "créalo en Pipedrive (Configuración → Campos de datos → Organización, texto) o "
                "pon en tax_id_field de la conexión el nombre o la clave de API de tu campo",
            ),
        )
    return key


def _organization_with(ctx: ActionContext, key: str, tax_id: str) -> str | None:
    """The id of the organization whose NIF field equals the tax id; None if none has it.

    The search matches the term in any custom field, so each organization found is read and
    its NIF field compared (written as the reads normalize it: upper case, no spaces or
    dashes)."""
    wanted = _normal(tax_id)
    if not wanted:
        return None
    start, what = 0, f"searching the Pipedrive organization with NIF {tax_id}"
    term = quote(tax_id, safe="")
    for _ in range(MAX_PAGES):
        path = (
            f"v1/organizations/search?term={term}&fields=custom_fields&exact_match=true"
            f"&start={start}&limit={PAGE}"
        )
        body = _call(ctx, "GET", path, what)
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        for row in data.get("items") or []:
            item = row.get("item") if isinstance(row, dict) else None
            org_id = _id(item.get("id")) if isinstance(item, dict) else None
            if org_id is None:
                continue
            org = _call(
                ctx, "GET", f"v1/organizations/{org_id}", f"reading Pipedrive organization {org_id}"
            )
            record = org.get("data") if isinstance(org.get("data"), dict) else {}
            if _normal(_field(record, key)) == wanted:
                return org_id
        pagination = (body.get("additional_data") or {}).get("pagination") or {}
        if not pagination.get("more_items_in_collection"):
            return None
        following = pagination.get("next_start")
        start = int(following) if following is not None else start + PAGE
    return None


def _normal(tax_id: Any) -> str:
    return "" if tax_id is None else str(tax_id).strip().upper().replace(" ", "").replace("-", "")


def _address_text(address: dict[str, Any]) -> str:
    """ "Calle Mayor 1, 28013 Madrid, Madrid, ES": the one line Pipedrive geocodes."""
    town = " ".join(str(address[k]).strip() for k in ("postal_code", "city") if address.get(k))
    parts = [address.get("street"), town, address.get("province"), address.get("country")]
    return ", ".join(str(p).strip() for p in parts if p and str(p).strip())


API = CrmApi(
    read_deal=read_deal,
    write_deal=write_deal,
    write_note=write_note,
    list_won=list_won,
    write_company=write_company,
)


def get_deal(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    return actions.crm.get_deal(API, ctx, data)


def update_deal(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    return actions.crm.update_deal(API, ctx, data)


def add_note(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    return actions.crm.add_note(API, ctx, data)


GET_DEAL, UPDATE_DEAL, ADD_NOTE = actions.crm.specs(
    "pipedrive", "Pipedrive", get_deal, update_deal, add_note
)


def get_organization(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """GET /v1/organizations/{id} as a customer (name, NIF/CIF from settings.tax_id_field,
    address), and whether it has a NIF/CIF yet. Organizations have no e-mail of their own."""
    crm = actions.crm.settings(ctx)
    company_id = str(data["company_id"])
    assert ctx.http is not None and ctx.connection is not None
    path = f"v1/organizations/{company_id}"
    answer = ctx.http.request("GET", path, connection=ctx.connection)
    body = answer.body if isinstance(answer.body, dict) else {}
    org = body.get("data")
    if answer.status == 404 or (answer.status < 400 and not isinstance(org, dict)):
        raise refused(
            "company_id",
            Said(
                f"Pipedrive has no organization {company_id} (deleted, or of another company)",
                f"Pipedrive no tiene ninguna organización {company_id} (borrada, o de otra "
                "empresa)",
            ),
        )
    check(answer, f"reading Pipedrive organization {company_id}")
    assert isinstance(org, dict)
    company = _company_of(ctx, crm, org, None)
    site = re.sub(r"/api$", "", ctx.http.view(ctx.connection).base_url.rstrip("/"))
    found = str(org.get("id") or company_id)
    url = f"{site}/organization/{found}"
    return actions.crm.company_output(found, company, f"Organización {company_id}", url)


GET_ORGANIZATION = actions.crm.company_read_spec(
    "pipedrive", "Pipedrive", ("organization", "una organización"), get_organization
)


def upsert_company(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """The customer as a Pipedrive organization: found by id or by its NIF, else created."""
    return actions.crm.upsert_company(API, ctx, data)


UPSERT_COMPANY = actions.crm.company_spec("pipedrive", "Pipedrive", upsert_company)
