"""HubSpot deals through the CRM API v3: read a deal with its line items and company, write
the invoice's properties on it, add a note to it.

A deal is won when its stage is closed with probability 1.0 in its own pipeline (each pipeline
has its own won stages), unless the connection names its `won_stages`. Line items carry their
SKU (`hs_sku`) when they come from the product library; otherwise the product's is read.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import actions.crm
from actions.crm import CrmApi, check
from connector.connections import Said, refused
from connector.outbound import Answer
from connector.spec import ActionContext
from providers.crm import Company, CrmSettings, Line, country_code, normalized

DEAL_PROPERTIES = (
    "dealname",
    "dealstage",
    "pipeline",
    "amount",
    "closedate",
    "deal_currency_code",
    "hubspot_owner_id",
)
LINE_PROPERTIES = [
    "name",
    "description",
    "quantity",
    "price",
    "hs_sku",
    "hs_discount_percentage",
    "discount",
    "hs_product_id",
    "hs_position_on_quote",
]
COMPANY_PROPERTIES = ("name", "address", "address2", "zip", "city", "state", "country", "domain")
BATCH = 100  # HubSpot's batch read takes up to 100 ids
PAGE = 500  # associations per page (v4 allows 500)
MAX_PAGES = 20  # a bound on every paginated read
NOTE_TO_DEAL = 214  # HubSpot-defined association type: note → deal
PRIMARY_COMPANY = "deal_to_company"  # the primary company; others are "…_unlabeled"
APP = "https://app.hubspot.com"


# Calling


def _send(ctx: ActionContext, method: str, path: str, payload: Any = None) -> Answer:
    assert ctx.http is not None
    return ctx.http.request(method, path, connection=ctx.connection, payload=payload)


def _body(answer: Answer) -> dict[str, Any]:
    return answer.body if isinstance(answer.body, dict) else {}


def _call(ctx: ActionContext, method: str, path: str, what: str, payload: Any = None) -> Any:
    return _body(check(_send(ctx, method, path, payload), what))


def _id(value: Any) -> str:
    """An id as a path segment: HubSpot's are digits; anything else cannot leave the path."""
    return quote(str(value), safe="")


# Reading


def read_deal(ctx: ActionContext, crm: CrmSettings, deal_id: str) -> dict[str, Any]:
    """GET the deal with its associations, then its pipeline, line items and company."""
    what = f"reading HubSpot deal {deal_id}"
    answer = _send(
        ctx,
        "GET",
        f"crm/v3/objects/deals/{_id(deal_id)}?properties={','.join(DEAL_PROPERTIES)}"
        "&associations=line_items,companies&archived=false",
    )
    if answer.status == 404:
        raise refused(
            "deal_id",
            Said(
                f"HubSpot has no deal {deal_id} (deleted, or of another account)",
                f"HubSpot no tiene ninguna oportunidad {deal_id} (borrada, o de otra cuenta)",
            ),
        )
    deal = _body(check(answer, what))
    props = deal.get("properties") or {}
    stage = props.get("dealstage") or None
    won = crm.won(stage, () if crm.won_stages else _won_stages(ctx, props.get("pipeline")))
    associations = deal.get("associations") or {}
    line_ids = _associated(ctx, deal_id, associations, "line_items")
    companies = _associated(ctx, deal_id, associations, "companies")
    assert ctx.http is not None and ctx.connection is not None
    portal = ctx.http.view(ctx.connection).account_id
    return normalized(
        source="hubspot",
        deal_id=str(deal.get("id") or deal_id),
        title=props.get("dealname"),
        stage=stage,
        won=won,
        won_at=_iso(props.get("closedate")),
        currency=props.get("deal_currency_code"),
        amount=_plain(props.get("amount")),
        owner={"id": str(props["hubspot_owner_id"])} if props.get("hubspot_owner_id") else None,
        company=_company(ctx, crm, companies[0]) if companies else None,
        lines=_lines(ctx, line_ids),
        settings=crm,
        deal_url=f"{APP}/contacts/{portal}/record/0-3/{deal_id}" if portal else None,
    )


def _won_stages(ctx: ActionContext, pipeline: Any) -> list[str]:
    """The pipeline's closed stages with probability 1.0 (its "Closed won")."""
    if not pipeline:
        return []
    answer = _send(ctx, "GET", f"crm/v3/pipelines/deals/{_id(pipeline)}")
    if answer.status == 404:
        return []
    body = _body(check(answer, f"reading HubSpot deal pipeline {pipeline}"))
    won = []
    for stage in body.get("stages") or []:
        meta = stage.get("metadata") or {} if isinstance(stage, dict) else {}
        closed = str(meta.get("isClosed", "")).lower() == "true"
        if closed and _decimal(meta.get("probability")) == 1 and stage.get("id"):
            won.append(str(stage["id"]))
    return won


def _associated(
    ctx: ActionContext, deal_id: str, associations: dict[str, Any], kind: str
) -> list[str]:
    """The ids of the deal's associated records of a kind, each once, primary first.

    The deal's embedded associations name line items "line items" (with a space); the same
    company comes once per association label. When HubSpot pages them, all are read from
    the v4 associations API instead."""
    found = associations.get(kind) or associations.get(kind.replace("_", " ")) or {}
    if (found.get("paging") or {}).get("next"):
        rows = list(_all_associated(ctx, deal_id, kind))
    else:
        rows = [
            (str(r["id"]), str(r.get("type") or ""))
            for r in found.get("results") or []
            if isinstance(r, dict) and r.get("id") not in (None, "")
        ]
    primary = [i for i, kind_ in rows if kind_ == PRIMARY_COMPANY]
    return list(dict.fromkeys([*primary, *(i for i, _ in rows)]))


def _all_associated(ctx: ActionContext, deal_id: str, kind: str) -> Iterator[tuple[str, str]]:
    after: str | None = None
    what = f"reading the {kind.replace('_', ' ')} of HubSpot deal {deal_id}"
    for _ in range(MAX_PAGES):
        cursor = f"&after={quote(after, safe='')}" if after else ""
        body = _call(
            ctx,
            "GET",
            f"crm/v4/objects/deals/{_id(deal_id)}/associations/{kind}?limit={PAGE}{cursor}",
            what,
        )
        for row in body.get("results") or []:
            if isinstance(row, dict) and row.get("toObjectId") not in (None, ""):
                labels = [t for t in row.get("associationTypes") or [] if isinstance(t, dict)]
                primary = any(str(t.get("label") or "").lower() == "primary" for t in labels)
                yield str(row["toObjectId"]), PRIMARY_COMPANY if primary else ""
        after = ((body.get("paging") or {}).get("next") or {}).get("after")
        if not after:
            return


def _batch(ctx: ActionContext, kind: str, ids: list[str], properties: list[str]) -> list[dict]:
    """POST /crm/v3/objects/{kind}/batch/read, 100 ids at a time."""
    found: list[dict[str, Any]] = []
    for start in range(0, len(ids), BATCH):
        body = _call(
            ctx,
            "POST",
            f"crm/v3/objects/{kind}/batch/read",
            f"reading HubSpot {kind.replace('_', ' ')}",
            {
                "inputs": [{"id": i} for i in ids[start : start + BATCH]],
                "properties": properties,
                "propertiesWithHistory": [],
            },
        )
        found += [r for r in body.get("results") or [] if isinstance(r, dict)]
    return found


def _lines(ctx: ActionContext, ids: list[str]) -> list[Line]:
    """The line items in the deal's order (their position on the quote, else as associated)."""
    if not ids:
        return []
    rows = {
        str(r.get("id")): r.get("properties") or {}
        for r in _batch(ctx, "line_items", ids, LINE_PROPERTIES)
    }
    ordered = [rows[i] for i in ids if i in rows]
    ordered.sort(key=_position)
    missing = [
        str(p["hs_product_id"]) for p in ordered if not p.get("hs_sku") and p.get("hs_product_id")
    ]
    skus: dict[str, str] = {}
    if missing:
        for product in _batch(ctx, "products", list(dict.fromkeys(missing)), ["hs_sku", "name"]):
            sku = (product.get("properties") or {}).get("hs_sku")
            if sku:
                skus[str(product.get("id"))] = str(sku).strip()
    return [_line(p, p.get("hs_sku") or skus.get(str(p.get("hs_product_id")))) for p in ordered]


def _position(props: dict[str, Any]) -> Decimal:
    """Where the line sits on the quote; lines without one keep their order, after."""
    position = _decimal(props.get("hs_position_on_quote"))
    return Decimal(10**9) if position is None else position


def _line(props: dict[str, Any], sku: Any) -> Line:
    quantity = _decimal(props.get("quantity")) or Decimal(1)
    price = _decimal(props.get("price"))
    percent = _decimal(props.get("hs_discount_percentage"))
    unit_off = _decimal(props.get("discount"))  # HubSpot's "unit discount": an amount per unit
    if not percent and unit_off and price:
        percent, price = _amount_off(unit_off, price)
    name = props.get("name") or props.get("description") or sku or ""
    return Line(
        description=str(name).strip(),
        quantity=_plain(quantity),
        unit_price=_plain(price),
        sku=str(sku).strip() if sku else None,
        discount_percent=_plain(percent) if percent else None,
    )


def _amount_off(unit_off: Decimal, price: Decimal) -> tuple[Decimal | None, Decimal]:
    """An amount off each unit as the invoice line has it: a percentage when one of 4
    decimals is exact, else the lower unit price (exact: both are money)."""
    percent = unit_off * 100 / price
    if percent == percent.quantize(Decimal("0.0001")):
        return percent, price
    return None, price - unit_off


def _company_path(crm: CrmSettings, company_id: str) -> str:
    properties = ",".join(dict.fromkeys([*COMPANY_PROPERTIES, crm.tax_id_field]))
    return f"crm/v3/objects/companies/{_id(company_id)}?properties={quote(properties, safe=',')}"


def _company(ctx: ActionContext, crm: CrmSettings, company_id: str) -> Company:
    path = _company_path(crm, company_id)
    body = _call(ctx, "GET", path, f"reading HubSpot company {company_id}")
    return _company_of(body.get("properties") or {}, crm)


def _company_of(props: dict[str, Any], crm: CrmSettings) -> Company:
    tax_id = _text(props.get(crm.tax_id_field))
    street = ", ".join(t for t in (_text(props.get("address")), _text(props.get("address2"))) if t)
    return Company(
        name=_text(props.get("name")),
        tax_id=tax_id.upper().replace(" ", "").replace("-", "").replace(".", "")
        if tax_id
        else None,
        street=street or None,
        postal_code=_text(props.get("zip")),
        city=_text(props.get("city")),
        province=_text(props.get("state")),
        country=_country(props.get("country")),
    )


def _text(value: Any) -> str | None:
    return (str(value).strip() or None) if value not in (None, "") else None


def _country(value: Any) -> str | None:
    return country_code(value)


def _iso(stamp: Any) -> str:
    """HubSpot's dates (ISO 8601 in UTC, "…Z"; or milliseconds) as ISO 8601."""
    text = _text(stamp)
    if text is not None:
        try:
            if text.isdigit():
                return datetime.fromtimestamp(int(text) / 1000, UTC).isoformat()
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat()
        except (ValueError, OverflowError, OSError):
            pass
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _decimal(value: Any) -> Decimal | None:
    if value in (None, "") or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _plain(value: Any) -> str | None:
    number = value if isinstance(value, Decimal) else _decimal(value)
    if number is None:
        return None
    text = format(number.normalize(), "f")
    return text if "." not in text else text.rstrip("0").rstrip(".")


def list_won(ctx: ActionContext, crm: CrmSettings, since: datetime) -> list[str]:
    """The deals won (closed) since `since`: POST /crm/v3/objects/deals/search, paged."""
    closed = {
        "propertyName": "closedate",
        "operator": "GTE",
        "value": str(int(since.timestamp() * 1000)),
    }
    won = (
        {"propertyName": "dealstage", "operator": "IN", "values": list(crm.won_stages)}
        if crm.won_stages
        else {"propertyName": "hs_is_closed_won", "operator": "EQ", "value": "true"}
    )
    found: list[str] = []
    after: str | None = None
    for _ in range(MAX_PAGES):
        query: dict[str, Any] = {
            "filterGroups": [{"filters": [won, closed]}],
            "properties": ["dealstage", "closedate"],
            "limit": 100,
        }
        if after:
            query["after"] = after
        body = _call(
            ctx, "POST", "crm/v3/objects/deals/search", "searching won HubSpot deals", query
        )
        found += [
            str(r["id"]) for r in body.get("results") or [] if isinstance(r, dict) and r.get("id")
        ]
        after = ((body.get("paging") or {}).get("next") or {}).get("after")
        if not after:
            break
    return found


# Writing


def write_deal(ctx: ActionContext, _crm: CrmSettings, deal_id: str, fields: dict[str, Any]) -> None:
    """PATCH /crm/v3/objects/deals/{id} with the fields as deal properties."""
    properties = {k: "" if v is None else v for k, v in fields.items()}
    answer = _send(ctx, "PATCH", f"crm/v3/objects/deals/{_id(deal_id)}", {"properties": properties})
    if answer.status == 400 and "PROPERTY_DOESNT_EXIST" in str(answer.body):
        names = ", ".join(_missing(answer.body, fields))
        raise refused(
            "fields",
            Said(
                f"HubSpot has no deal property {names}: create it in HubSpot (Settings → "
                "Properties → Deal properties, single-line text) with exactly that internal "
                "name, or set the connection's settings to the names you use",
                f"HubSpot no tiene la propiedad de oportunidad {names}: créala en HubSpot "
                "(Configuración → Propiedades → Propiedades de negocio, texto de una línea) con "
                "ese nombre interno exacto, o pon en los ajustes de la conexión los nombres que "
                "uses",
            ),
        )
    if answer.status == 404:
        raise refused(
            "deal_id",
            Said(
                f"HubSpot has no deal {deal_id} to write on",
                f"HubSpot no tiene ninguna oportunidad {deal_id} en la que escribir",
            ),
        )
    check(answer, f"writing on HubSpot deal {deal_id}")


def _missing(body: Any, fields: dict[str, Any]) -> list[str]:
    """The properties HubSpot says do not exist (errors[].context.propertyName), else all."""
    named: list[str] = []
    for error in (body.get("errors") if isinstance(body, dict) else None) or []:
        if isinstance(error, dict) and error.get("code") == "PROPERTY_DOESNT_EXIST":
            named += [str(n) for n in (error.get("context") or {}).get("propertyName") or []]
    return [n for n in fields if n in named] or list(fields)


def write_note(ctx: ActionContext, _crm: CrmSettings, deal_id: str, text: str) -> str | None:
    """POST /crm/v3/objects/notes, associated with the deal (note → deal, type 214)."""
    body = _call(
        ctx,
        "POST",
        "crm/v3/objects/notes",
        f"adding a note to HubSpot deal {deal_id}",
        {
            "properties": {
                # The body is HTML: the text is shown as written, line breaks kept.
                "hs_note_body": html.escape(text, quote=False).replace("\n", "<br>"),
                "hs_timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
            },
            "associations": [
                {
                    "to": {"id": deal_id},
                    "types": [
                        {
                            "associationCategory": "HUBSPOT_DEFINED",
                            "associationTypeId": NOTE_TO_DEAL,
                        }
                    ],
                }
            ],
        },
    )
    return str(body["id"]) if body.get("id") not in (None, "") else None


def write_company(
    ctx: ActionContext, crm: CrmSettings, company_id: str | None, customer: dict[str, Any]
) -> tuple[str, bool]:
    """PATCH the company with this id; without one, the company whose NIF property equals the
    customer's tax id (POST /crm/v3/objects/companies/search), else POST a new one. HubSpot
    companies have no e-mail of their own: the customer's is not written."""
    address = customer.get("address") or {}
    given = {
        "name": customer.get("name"),
        crm.tax_id_field: customer.get("tax_id"),
        "address": address.get("street"),
        "zip": address.get("postal_code"),
        "city": address.get("city"),
        "state": address.get("province"),
        "country": address.get("country"),
    }
    # Only what the customer has: a value missing here never empties the company's.
    properties = {k: str(v) for k, v in given.items() if v not in (None, "")}
    tax_id = str(customer.get("tax_id") or "")
    found = company_id or _company_with(ctx, crm, tax_id)
    if found is None:
        answer = _send(ctx, "POST", "crm/v3/objects/companies", {"properties": properties})
        _refuse_missing(answer, crm, properties)
        body = _body(check(answer, f"creating the HubSpot company of {tax_id}"))
        return str(body["id"]), True
    path = f"crm/v3/objects/companies/{_id(found)}"
    answer = _send(ctx, "PATCH", path, {"properties": properties})
    if answer.status == 404:
        raise refused(
            "company_id",
            Said(
                f"HubSpot has no company {found} to write on",
                f"HubSpot no tiene ninguna empresa {found} en la que escribir",
            ),
        )
    _refuse_missing(answer, crm, properties)
    check(answer, f"writing on HubSpot company {found}")
    return str(found), False


def _company_with(ctx: ActionContext, crm: CrmSettings, tax_id: str) -> str | None:
    """The id of the company whose NIF property equals the tax id; None if none has it."""
    if not tax_id:
        return None
    rule = {"propertyName": crm.tax_id_field, "operator": "EQ", "value": tax_id}
    query = {"filterGroups": [{"filters": [rule]}], "properties": ["name"], "limit": 1}
    what = f"searching the HubSpot company with NIF {tax_id}"
    answer = _send(ctx, "POST", "crm/v3/objects/companies/search", query)
    _refuse_missing(answer, crm, {crm.tax_id_field: tax_id})
    body = _body(check(answer, what))
    for row in body.get("results") or []:
        if isinstance(row, dict) and row.get("id") not in (None, ""):
            return str(row["id"])
    return None


def _refuse_missing(answer: Answer, crm: CrmSettings, properties: dict[str, Any]) -> None:
    """HubSpot's 400 for a company property that does not exist (most often the NIF's)."""
    if answer.status != 400 or "PROPERTY_DOESNT_EXIST" not in str(answer.body):
        return
    names = ", ".join(_missing(answer.body, properties))
    raise refused(
        "customer",
        Said(
            f"HubSpot has no company property {names}: create it in HubSpot (Settings → "
            "Properties → Company properties, single-line text) with exactly that internal "
            f"name, or set the connection's tax_id_field (now '{crm.tax_id_field}') to yours",
            f"HubSpot no tiene la propiedad de empresa {names}: créala en HubSpot "
            "(Configuración → Propiedades → Propiedades de empresa, texto de una línea) con ese "
            f"nombre interno exacto, o pon en tax_id_field de la conexión (ahora "
            f"'{crm.tax_id_field}') el nombre que uses",
        ),
    )


API = CrmApi(
    read_deal=read_deal,
    write_deal=write_deal,
    write_note=write_note,
    list_won=list_won,
    write_company=write_company,
)


def get_deal(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """The HubSpot deal with its line items and company, normalized."""
    return actions.crm.get_deal(API, ctx, data)


def update_deal(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """The invoice's number, link and payment status, into the deal's properties."""
    return actions.crm.update_deal(API, ctx, data)


def add_note(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """A note on the HubSpot deal for its owner."""
    return actions.crm.add_note(API, ctx, data)


GET_DEAL, UPDATE_DEAL, ADD_NOTE = actions.crm.specs(
    "hubspot", "HubSpot", get_deal, update_deal, add_note
)


def get_company(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """The HubSpot company as a customer (name, NIF/CIF from settings.tax_id_field, address),
    and whether it has a NIF/CIF yet. HubSpot companies have no e-mail of their own."""
    crm = actions.crm.settings(ctx)
    company_id = str(data["company_id"])
    answer = _send(ctx, "GET", _company_path(crm, company_id))
    if answer.status == 404:
        raise refused(
            "company_id",
            Said(
                f"HubSpot has no company {company_id} (deleted, or of another account)",
                f"HubSpot no tiene ninguna empresa {company_id} (borrada, o de otra cuenta)",
            ),
        )
    body = _body(check(answer, f"reading HubSpot company {company_id}"))
    props = body.get("properties") or {}
    company = _company_of(props, crm)
    assert ctx.http is not None and ctx.connection is not None
    portal = ctx.http.view(ctx.connection).account_id
    url = f"{APP}/contacts/{portal}/record/0-2/{company_id}" if portal else None
    return actions.crm.company_output(
        str(body.get("id") or company_id),
        company,
        _text(props.get("domain")) or f"Empresa {company_id}",
        url,
    )


GET_COMPANY = actions.crm.company_read_spec(
    "hubspot", "HubSpot", ("company", "una empresa"), get_company
)


def upsert_company(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """The customer as a HubSpot company: found by id or by its NIF, else created."""
    return actions.crm.upsert_company(API, ctx, data)


UPSERT_COMPANY = actions.crm.company_spec("hubspot", "HubSpot", upsert_company)
