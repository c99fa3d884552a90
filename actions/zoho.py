"""Zoho CRM deals through its REST API (v2 by default, or the version base_url names): read a
deal with its products and account (NIF and billing address), write the invoice's fields on
it, leave it a note; read an account as a customer, and create or update one from a customer
(found by id, or by Zoho's search on its NIF field).

"Won" is the pipeline's say (the stages whose forecast type is "Closed Won" in the deal's
layout, GET /settings/pipeline) unless the connection lists its own won_stages. Zoho gives a
line's discount as an amount: it becomes a percentage when one with four decimals is exact,
else the unit price is the net one, so the invoice adds up to what Zoho shows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote, urlsplit

from actions import crm
from connector.connections import ConnectionView, Said, refused
from connector.errors import ConfigurationError, ValidationError
from connector.spec import ActionContext
from providers.crm import Company, CrmSettings, Line, country_code, normalized
from providers.zoho import ACCOUNTS, api_url

SOURCE = "zoho"
MAX_PAGES = 25  # 200 products a page: 5,000 lines is more than any invoice takes
MAX_SEARCH_PAGES = 10  # 200 deals a page: Zoho's search gives 2,000 records at most
API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,99}$")  # a field's API name (NIF)
DEFAULT_WON = ("Closed Won",)  # Zoho's own closed-won stage, when the pipeline says nothing
NOTE_TITLE = "Puente"
# Zoho's billing country is free text: the names people write, to ISO 3166-1 alpha-2.


# Reading


def _get(ctx: ActionContext, view: ConnectionView, path: str, what: str) -> Any:
    assert ctx.http is not None
    answer = crm.check(
        ctx.http.request("GET", api_url(view, path), connection=ctx.connection), what
    )
    return answer


def _record(ctx: ActionContext, view: ConnectionView, module: str, record_id: str) -> dict:
    what = f"reading Zoho CRM {module} {record_id}"
    answer = _get(ctx, view, f"{module}/{record_id}", what)
    data = answer.body.get("data") if isinstance(answer.body, dict) else None
    if answer.status == 204 or not data or not isinstance(data[0], dict):
        raise ValidationError(
            f"{what}: Zoho CRM has no such record (deleted, or not visible to the connected user)"
        )
    record: dict[str, Any] = data[0]
    return record


def read_deal(ctx: ActionContext, settings: CrmSettings, deal_id: str) -> dict[str, Any]:
    """The deal, its product lines and its account, normalized."""
    assert ctx.http is not None and ctx.connection is not None
    view = ctx.http.view(ctx.connection)
    deal = _record(ctx, view, "Deals", deal_id)
    stage = deal.get("Stage")
    won_by_metadata = () if settings.won_stages else _won_stages(ctx, view, deal)
    account = _lookup_id(deal.get("Account_Name"))
    company = _company(_record(ctx, view, "Accounts", account), settings) if account else None
    owner = deal.get("Owner") if isinstance(deal.get("Owner"), dict) else None
    return normalized(
        source=SOURCE,
        deal_id=deal_id,
        title=deal.get("Deal_Name"),
        stage=str(stage) if stage is not None else None,
        won=settings.won(str(stage) if stage is not None else None, won_by_metadata),
        won_at=_won_at(deal),
        currency=deal.get("Currency"),
        amount=_text(deal.get("Amount")),
        owner=_owner(owner),
        company=company,
        lines=_lines(ctx, view, deal_id, deal),
        settings=settings,
        deal_url=_deal_url(view, deal_id),
    )


def _lookup_id(value: Any) -> str | None:
    if isinstance(value, dict) and value.get("id"):
        return str(value["id"])
    return None


def _owner(owner: dict[str, Any] | None) -> dict[str, Any] | None:
    if not owner:
        return None
    return {
        "id": str(owner["id"]) if owner.get("id") else None,
        "name": owner.get("name"),
        "email": owner.get("email"),
    }


def _won_at(deal: dict[str, Any]) -> str:
    """The closing date (Zoho: YYYY-MM-DD) at midnight UTC; else when it was last modified."""
    closing = deal.get("Closing_Date")
    if isinstance(closing, str) and closing:
        try:
            return datetime.fromisoformat(closing).replace(tzinfo=UTC).isoformat()
        except ValueError:
            pass
    modified = deal.get("Modified_Time")
    if isinstance(modified, str) and modified:
        try:
            return datetime.fromisoformat(modified).isoformat()
        except ValueError:
            pass
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _won_stages(ctx: ActionContext, view: ConnectionView, deal: dict[str, Any]) -> list[str]:
    """The stages whose forecast type is "Closed Won" in the deal's layout's pipelines (its
    own pipeline's when the deal names it)."""
    layout = _lookup_id(deal.get("Layout"))
    if layout is None:
        return list(DEFAULT_WON)
    answer = _get(ctx, view, f"settings/pipeline?layout_id={layout}", "reading Zoho pipelines")
    pipelines = answer.body.get("pipeline") if isinstance(answer.body, dict) else None
    if answer.status == 204 or not pipelines:
        return list(DEFAULT_WON)
    named = deal.get("Pipeline")
    name = named.get("name") if isinstance(named, dict) else named
    mine = [
        p for p in pipelines if name and name in (p.get("display_value"), p.get("actual_value"))
    ]
    won: list[str] = []
    for pipeline in mine or pipelines:
        for stage in pipeline.get("maps") or []:
            if stage.get("forecast_type") == "Closed Won":
                won += [
                    str(v) for v in (stage.get("display_value"), stage.get("actual_value")) if v
                ]
    return won


def _company(account: dict[str, Any], settings: CrmSettings) -> Company:
    return Company(
        name=account.get("Account_Name"),
        tax_id=_field(account, settings.tax_id_field),
        email=_field(account, "Email"),
        street=account.get("Billing_Street"),
        postal_code=_text(account.get("Billing_Code")),
        city=account.get("Billing_City"),
        province=account.get("Billing_State"),
        country=_country(account.get("Billing_Country")),
    )


def _field(record: dict[str, Any], name: str) -> str | None:
    """A field by its API name, or the one that differs only in case ("nif" finds "NIF")."""
    value = record.get(name)
    if value is None:
        lower = name.lower()
        value = next((v for k, v in record.items() if k.lower() == lower), None)
    text = str(value).strip() if value not in (None, "") else ""
    return text or None


def _country(value: Any) -> str | None:
    return country_code(value)


def _deal_url(view: ConnectionView, deal_id: str) -> str | None:
    """The deal in Zoho's web app (crm.zoho.<dc>/crm/org<id>/tab/Potentials/<deal>), when
    the data centre and the organization (set by "Probar conexión") are known."""
    return _web_url(view, "Potentials", deal_id)


def _web_url(view: ConnectionView, tab: str, record_id: str) -> str | None:
    host = (urlsplit(view.base_url).hostname or "").lower()
    accounts = next((url for end, url in ACCOUNTS.items() if host.endswith(end)), None)
    if accounts is None or not view.account_id:
        return None
    web = accounts.replace("://accounts.", "://crm.")
    return f"{web}/crm/org{view.account_id}/tab/{tab}/{record_id}"


# Lines


def _lines(
    ctx: ActionContext, view: ConnectionView, deal_id: str, deal: dict[str, Any]
) -> list[Line]:
    """The deal's Product_Details when it has them, else its Products related list."""
    items = deal.get("Product_Details")
    if isinstance(items, list) and items:
        return [_line(item, item.get("product") or {}) for item in items if isinstance(item, dict)]
    return [_line(p, p) for p in _related_products(ctx, view, deal_id)]


def _related_products(
    ctx: ActionContext, view: ConnectionView, deal_id: str
) -> Iterator[dict[str, Any]]:
    for page in range(1, MAX_PAGES + 1):
        answer = _get(
            ctx,
            view,
            f"Deals/{deal_id}/Products?page={page}&per_page=200",
            f"reading the products of Zoho CRM deal {deal_id}",
        )
        body = answer.body if isinstance(answer.body, dict) else {}
        if answer.status == 204 or not body.get("data"):
            return
        yield from (p for p in body["data"] if isinstance(p, dict))
        if not (body.get("info") or {}).get("more_records"):
            return
    raise ValidationError(
        f"Zoho CRM deal {deal_id} has more than {MAX_PAGES * 200} products: too many lines "
        "for one invoice"
    )


def _line(item: dict[str, Any], product: dict[str, Any]) -> Line:
    quantity = _decimal(_first(item, "quantity", "Quantity")) or Decimal(1)
    price = _decimal(_first(item, "list_price", "List_Price", "unit_price", "Unit_Price"))
    discount = _discount(item.get("Discount"), quantity, price)
    name = _first(product, "name", "Product_Name") or _first(item, "Product_Name")
    description = _first(item, "product_description", "Description") or name or ""
    tax = next(
        (t.get("percentage") for t in item.get("line_tax") or [] if isinstance(t, dict)), None
    )
    unit, percent = discount
    return Line(
        description=str(description),
        quantity=_plain(quantity),
        unit_price=_plain(unit) if unit is not None else None,
        sku=_first(product, "Product_Code") or _first(item, "Product_Code"),
        discount_percent=_plain(percent) if percent else None,
        tax_rate=tax,
    )


def _discount(
    raw: Any, quantity: Decimal, price: Decimal | None
) -> tuple[Decimal | None, Decimal | None]:
    """(unit price, discount %) for Zoho's line discount, an amount (or "10%")."""
    if price is None:
        return None, None
    if isinstance(raw, str) and raw.strip().endswith("%"):
        return price, _decimal(raw.strip()[:-1])
    amount = _decimal(raw)
    gross = quantity * price
    if not amount or not gross:
        return price, None
    percent = amount * 100 / gross
    exact = percent.quantize(Decimal("0.0001"), ROUND_HALF_UP)
    if exact == percent:
        return price, exact
    net = ((gross - amount) / quantity).quantize(Decimal("0.00000001"), ROUND_HALF_UP)
    return net, None


def _first(record: dict[str, Any], *keys: str) -> Any:
    return next((record[k] for k in keys if record.get(k) not in (None, "")), None)


def _decimal(value: Any) -> Decimal | None:
    if value in (None, "") or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def _text(value: Any) -> str | None:
    if value in (None, ""):
        return None
    number = _decimal(value) if isinstance(value, int | float) else None
    return _plain(number) if number is not None else str(value)


# Reconciliation


def list_won(ctx: ActionContext, settings: CrmSettings, since: datetime) -> list[str]:
    """The deals won with a closing date from `since`'s day (UTC) on: Zoho's search
    (GET /Deals/search?criteria=((Closing_Date:greater_equal:<day>)), 200 a page while
    info.more_records), then those whose stage is won, as read_deal decides it (the
    configured won_stages, else the Closed Won stages of the deal's pipeline)."""
    assert ctx.http is not None and ctx.connection is not None
    view = ctx.http.view(ctx.connection)
    criteria = quote(f"((Closing_Date:greater_equal:{since.astimezone(UTC).date().isoformat()}))")
    pipelines: dict[tuple[str | None, str | None], list[str]] = {}
    found: list[str] = []
    for page in range(1, MAX_SEARCH_PAGES + 1):
        answer = _get(
            ctx,
            view,
            f"Deals/search?criteria={criteria}&page={page}&per_page=200",
            "searching the Zoho CRM deals closed lately",
        )
        body = answer.body if isinstance(answer.body, dict) else {}
        if answer.status == 204 or not body.get("data"):
            break  # Zoho answers 204 with no body when nothing matches
        for deal in body["data"]:
            if (
                isinstance(deal, dict)
                and deal.get("id")
                and _won(ctx, view, settings, deal, pipelines)
            ):
                found.append(str(deal["id"]))
        if not (body.get("info") or {}).get("more_records"):
            break
    return found


def _won(
    ctx: ActionContext,
    view: ConnectionView,
    settings: CrmSettings,
    deal: dict[str, Any],
    pipelines: dict[tuple[str | None, str | None], list[str]],
) -> bool:
    """read_deal's "won", reading each layout and pipeline's won stages once."""
    stage = deal.get("Stage")
    if settings.won_stages:
        return settings.won(str(stage) if stage is not None else None, ())
    named = deal.get("Pipeline")
    key = (_lookup_id(deal.get("Layout")), named.get("name") if isinstance(named, dict) else named)
    if key not in pipelines:
        pipelines[key] = _won_stages(ctx, view, deal)
    return settings.won(str(stage) if stage is not None else None, pipelines[key])


# Writing


def _result(answer: Any, what: str) -> dict[str, Any]:
    """Zoho's per-record result ({"code", "details", "message", "status"}), or why not."""
    body = answer.body if isinstance(answer.body, dict) else {}
    first = (body.get("data") or [{}])[0]
    if first.get("status") == "error":
        raise ValidationError(
            f"{what}: Zoho CRM answered {first.get('code')}: {first.get('message')} "
            f"{first.get('details') or ''}".strip()
        )
    return dict(first)


def write_deal(ctx: ActionContext, _settings: CrmSettings, deal_id: str, fields: dict) -> None:
    """PUT /Deals/{id} with the fields, by their API names."""
    assert ctx.http is not None and ctx.connection is not None
    view = ctx.http.view(ctx.connection)
    what = f"writing Zoho CRM deal {deal_id}"
    answer = ctx.http.request(
        "PUT",
        api_url(view, f"Deals/{deal_id}"),
        connection=ctx.connection,
        payload={"data": [fields]},
        idempotency_key=ctx.idempotency_key,
    )
    _result(crm.check(answer, what), what)


def write_note(ctx: ActionContext, _settings: CrmSettings, deal_id: str, text: str) -> str | None:
    """POST /Deals/{id}/Notes: a note for the deal's owner; its id."""
    assert ctx.http is not None and ctx.connection is not None
    view = ctx.http.view(ctx.connection)
    what = f"adding a note to Zoho CRM deal {deal_id}"
    answer = ctx.http.request(
        "POST",
        api_url(view, f"Deals/{deal_id}/Notes"),
        connection=ctx.connection,
        payload={"data": [{"Note_Title": NOTE_TITLE, "Note_Content": text}]},
        idempotency_key=ctx.idempotency_key,
    )
    found = _result(crm.check(answer, what), what).get("details") or {}
    return str(found["id"]) if found.get("id") else None


def _criteria_text(value: str) -> str:
    """A value for Zoho's search criteria: its parentheses, commas (and backslashes) escaped
    with a backslash, as Zoho's search API asks; the URL encoding comes after."""
    return re.sub(r"([\\(),])", r"\\\1", value)


def _find_account(ctx: ActionContext, view: ConnectionView, field: str, tax_id: str) -> str | None:
    """GET /Accounts/search?criteria=((<field>:equals:<tax id>)): the first account's id;
    None when Zoho answers 204 (nothing found)."""
    if not API_NAME.match(field):
        raise ConfigurationError(
            f"the connection's tax_id_field {field[:80]!r} is not a Zoho CRM field API name "
            "(letters, digits and _, such as NIF)"
        )
    criteria = quote(f"(({field}:equals:{_criteria_text(tax_id)}))", safe="")
    answer = _get(
        ctx,
        view,
        f"Accounts/search?criteria={criteria}&page=1&per_page=1",
        f"looking for the Zoho CRM account with NIF {tax_id}",
    )
    rows = answer.body.get("data") if isinstance(answer.body, dict) else None
    if answer.status == 204 or not rows:
        return None
    found = next((str(r["id"]) for r in rows if isinstance(r, dict) and r.get("id")), None)
    return found


def write_company(
    ctx: ActionContext, settings: CrmSettings, company_id: str | None, customer: dict[str, Any]
) -> tuple[str, bool]:
    """The customer as an Account: PUT /Accounts/{id} on the one with this id, or (with none)
    on the one whose NIF field holds its tax id; else POST /Accounts. Each {"data": [{…}]};
    a record whose "status" is "error" fails the step."""
    assert ctx.http is not None and ctx.connection is not None
    view = ctx.http.view(ctx.connection)
    tax_id = str(customer["tax_id"])
    address = customer.get("address") or {}
    fields: dict[str, Any] = {"Account_Name": customer["name"], settings.tax_id_field: tax_id}
    for name, key in (
        ("Billing_Street", "street"),
        ("Billing_Code", "postal_code"),
        ("Billing_City", "city"),
        ("Billing_State", "province"),
        ("Billing_Country", "country"),
    ):
        if address.get(key):
            fields[name] = address[key]
    if customer.get("email"):
        fields["Email"] = customer["email"]
    if company_id is not None:
        account_id = str(company_id)
        if not account_id.isdigit():
            raise refused(
                "company_id",
                Said(
                    f"{account_id[:80]!r} is not a Zoho CRM record id (digits only)",
                    f"{account_id[:80]!r} no es un id de registro de Zoho CRM (solo cifras)",
                ),
            )
    else:
        account_id = _find_account(ctx, view, settings.tax_id_field, tax_id) or ""
    if account_id:
        what = f"writing on Zoho CRM account {account_id}"
        answer = ctx.http.request(
            "PUT",
            api_url(view, f"Accounts/{account_id}"),
            connection=ctx.connection,
            payload={"data": [fields]},
            idempotency_key=ctx.idempotency_key,
        )
        if answer.status == 204:
            raise ValidationError(f"{what}: Zoho CRM has no such account")
        _result(crm.check(answer, what), what)
        return account_id, False
    what = f"creating the Zoho CRM account with NIF {tax_id}"
    answer = ctx.http.request(
        "POST",
        api_url(view, "Accounts"),
        connection=ctx.connection,
        payload={"data": [fields]},
        idempotency_key=ctx.idempotency_key,
    )
    made = _result(crm.check(answer, what), what).get("details") or {}
    if not made.get("id"):
        raise ValidationError(f"{what}: Zoho CRM answered no id: {str(answer.body)[:300]}")
    return str(made["id"]), True


API = crm.CrmApi(
    read_deal=read_deal,
    write_deal=write_deal,
    write_note=write_note,
    list_won=list_won,
    write_company=write_company,
)


def get_deal(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Read the deal with its lines and account."""
    return crm.get_deal(API, ctx, data)


def update_deal(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Write the invoice's number, link and payment status on the deal."""
    return crm.update_deal(API, ctx, data)


def add_note(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Leave the deal's owner a note."""
    return crm.add_note(API, ctx, data)


GET_DEAL, UPDATE_DEAL, ADD_NOTE = crm.specs("zoho", "Zoho CRM", get_deal, update_deal, add_note)


def get_account(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """GET /Accounts/{id} as a customer (name, NIF/CIF from settings.tax_id_field, billing
    address), and whether it has a NIF/CIF yet."""
    settings = crm.settings(ctx)
    company_id = str(data["company_id"])
    assert ctx.http is not None and ctx.connection is not None
    view = ctx.http.view(ctx.connection)
    what = f"reading Zoho CRM account {company_id}"
    answer = _get(ctx, view, f"Accounts/{company_id}", what)
    rows = answer.body.get("data") if isinstance(answer.body, dict) else None
    if answer.status == 204 or not rows or not isinstance(rows[0], dict):
        raise refused(
            "company_id",
            Said(
                f"Zoho CRM has no account {company_id} (deleted, or not visible to the "
                "connected user)",
                f"Zoho CRM no tiene ninguna cuenta {company_id} (borrada, o que el usuario "
                "conectado no puede ver)",
            ),
        )
    account = rows[0]
    company = _company(account, settings)
    url = _web_url(view, "Accounts", company_id)
    return crm.company_output(
        str(account.get("id") or company_id), company, f"Cuenta {company_id}", url
    )


GET_ACCOUNT = crm.company_read_spec("zoho", "Zoho CRM", ("account", "una cuenta"), get_account)


def upsert_company(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """The customer as an Account (name, NIF field, e-mail, billing address), by id or NIF."""
    return crm.upsert_company(API, ctx, data)


UPSERT_COMPANY = crm.company_spec("zoho", "Zoho CRM", upsert_company)
