"""Salesforce Opportunities through the REST API (v59.0): read one with its line items and
account, write the invoice's fields on it, add a Note to it; read an Account as a customer,
and create or update one from a customer (found by id, or by SOQL on its NIF field).

Reads: GET /sobjects/Opportunity/{id}, a SOQL query of its OpportunityLineItems (followed
through nextRecordsUrl), GET /sobjects/Account/{AccountId} and GET /sobjects/User/{OwnerId}.
Writes: PATCH /sobjects/Opportunity/{id} with the custom fields the settings name, and a
classic Note (POST /sobjects/Note, ParentId = the opportunity): it shows under "Notes &
Attachments" of the opportunity. Field names are Salesforce API names (NIF__c…), matched
without regard to case as Salesforce does.

An expired access token (401 INVALID_SESSION_ID) is refreshed and the call made once more
by the HTTP client; 429 and 5xx are retried by the runner, and so is 403
REQUEST_LIMIT_EXCEEDED (the org's API allowance is spent for now).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

import actions.crm
from actions.crm import CrmApi, check
from connector.connections import Said, refused
from connector.errors import ConfigurationError, TransientError, ValidationError
from connector.outbound import Answer
from connector.spec import ActionContext
from providers.crm import Company, CrmSettings, Line, country_code, normalized
from providers.salesforce import API

MAX_PAGES = 20  # a bound on following nextRecordsUrl (2,000 records a page at most)
RECORD_ID = re.compile(r"^[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?$")
API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")  # a field's API name (NIF__c)
LINES_QUERY = (
    "SELECT Id, Quantity, UnitPrice, Discount, Description, Product2.Name, "
    "Product2.ProductCode FROM OpportunityLineItem WHERE OpportunityId = '{id}' "
    "ORDER BY SortOrder, CreatedDate"
)


# Calls


def _errors(answer: Answer) -> list[dict[str, Any]]:
    """Salesforce's error list: [{"message", "errorCode", "fields"}]."""
    body = answer.body
    if isinstance(body, dict):
        body = [body]
    return [e for e in body if isinstance(e, dict)] if isinstance(body, list) else []


def _checked(answer: Answer, what: str) -> Answer:
    """The answer, or the error it means (actions.crm.check, plus Salesforce's own codes)."""
    codes = {str(e.get("errorCode")) for e in _errors(answer)}
    if answer.status == 403 and "REQUEST_LIMIT_EXCEEDED" in codes:
        raise TransientError(f"{what}: Salesforce says the org's API request limit is spent")
    if answer.status == 400 and codes & {"INVALID_FIELD", "INVALID_FIELD_FOR_INSERT_UPDATE"}:
        said = "; ".join(str(e.get("message", ""))[:200] for e in _errors(answer))
        raise ValidationError(
            f"{what}: Salesforce does not know a field ({said}); create the custom fields "
            "the README lists, or fix their names in the connection's settings"
        )
    return check(answer, what)


def _send(ctx: ActionContext, method: str, path: str, payload: Any = None) -> Answer:
    assert ctx.http is not None
    return ctx.http.request(
        method,
        path,
        connection=ctx.connection,
        payload=payload,
        idempotency_key=ctx.idempotency_key if method != "GET" else None,
    )


def _call(ctx: ActionContext, method: str, path: str, what: str, payload: Any = None) -> Answer:
    return _checked(_send(ctx, method, path, payload), what)


def _record(ctx: ActionContext, kind: str, record_id: str, what: str) -> dict[str, Any] | None:
    """GET /sobjects/{kind}/{id}; None when Salesforce has no such record."""
    answer = _send(ctx, "GET", f"{API}/sobjects/{kind}/{record_id}")
    if answer.status == 404:
        return None
    body = _checked(answer, what).body
    return body if isinstance(body, dict) else None


def _query(
    ctx: ActionContext, soql: str, what: str, *, whole: bool = True
) -> Iterator[dict[str, Any]]:
    """Every record a SOQL query finds, page after page (nextRecordsUrl), bounded: past the
    bound, an error when the whole answer is needed (`whole`), else what was read."""
    path = f"{API}/query?{urlencode({'q': soql})}"
    for _ in range(MAX_PAGES):
        body = _call(ctx, "GET", path, what).body
        if not isinstance(body, dict):
            return
        for record in body.get("records") or []:
            if isinstance(record, dict):
                yield record
        following = body.get("nextRecordsUrl")
        if body.get("done", True) or not isinstance(following, str) or not following:
            return
        path = following
    if whole:
        raise ValidationError(f"{what}: more than {MAX_PAGES} pages of results; too many lines")


# Reading


def _field(record: Mapping[str, Any], name: str) -> Any:
    """A field by its API name, whatever its case (Salesforce's names are case-insensitive)."""
    if name in record:
        return record[name]
    lowered = name.lower()
    return next((v for k, v in record.items() if k.lower() == lowered), None)


def _checked_id(deal_id: str) -> str:
    if not RECORD_ID.match(deal_id):
        raise refused(
            "deal_id",
            Said(
                f"{deal_id!r} is not a Salesforce record id (15 or 18 letters and digits)",
                f"{deal_id!r} no es un id de registro de Salesforce (15 o 18 letras y cifras)",
            ),
        )
    return deal_id


def read_deal(ctx: ActionContext, crm: CrmSettings, deal_id: str) -> dict[str, Any]:
    """The Opportunity, its line items, its Account and its owner → the normalized deal."""
    deal_id = _checked_id(deal_id)
    deal = _record(ctx, "Opportunity", deal_id, f"reading Salesforce opportunity {deal_id}")
    if deal is None:
        raise refused(
            "deal_id",
            Said(
                f"Salesforce has no opportunity {deal_id} (deleted, or the connection's user "
                "cannot see it)",
                f"Salesforce no tiene la oportunidad {deal_id} (borrada, o el usuario de la "
                "conexión no puede verla)",
            ),
        )
    stage = deal.get("StageName")
    won_by_metadata = [stage] if deal.get("IsWon") is True and stage else []
    account_id = deal.get("AccountId")
    assert ctx.http is not None and ctx.connection is not None
    site = ctx.http.view(ctx.connection).base_url.rstrip("/")
    return normalized(
        source="salesforce",
        deal_id=str(deal.get("Id") or deal_id),
        title=deal.get("Name"),
        stage=stage,
        won=crm.won(stage, won_by_metadata),
        won_at=_won_at(deal),
        currency=deal.get("CurrencyIsoCode"),
        amount=_plain(deal.get("Amount")),
        owner=_owner(ctx, deal.get("OwnerId")),
        company=_company(ctx, crm, str(account_id)) if account_id else None,
        lines=list(_lines(ctx, deal_id)),
        settings=crm,
        # The classic record address: Salesforce sends it on to Lightning when that is on.
        deal_url=f"{site}/{deal.get('Id') or deal_id}",
    )


def _won_at(deal: Mapping[str, Any]) -> str:
    """CloseDate (a date: the day it was won) as an ISO 8601 date-time, else the last change."""
    close = deal.get("CloseDate")
    if isinstance(close, str) and re.match(r"^\d{4}-\d{2}-\d{2}$", close):
        return f"{close}T00:00:00+00:00"
    changed = str(deal.get("LastModifiedDate") or "")
    # Salesforce writes 2026-12-04T10:00:00.000+0000
    match = re.match(
        r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})$", changed
    )
    if match:
        zone = match.group(2)
        zone = "+00:00" if zone == "Z" else f"{zone[:3]}:{zone[-2:]}"
        return f"{match.group(1)}{zone}"
    raise ValidationError(
        "the Salesforce opportunity has neither a close date nor a modification date"
    )


def _plain(value: Any) -> str | None:
    """A JSON number as a plain decimal text (120000.0 → "120000.0"), exactly as written."""
    if value in (None, ""):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    text = format(number, "f")
    return text


def _owner(ctx: ActionContext, owner_id: Any) -> dict[str, Any] | None:
    if not owner_id:
        return None
    user = _record(ctx, "User", str(owner_id), f"reading Salesforce user {owner_id}")
    owner = {"id": str(owner_id)}
    if user:
        owner["name"] = str(user.get("Name") or "")[:120]
        email = user.get("Email")
        if isinstance(email, str) and "@" in email:
            owner["email"] = email
    return owner


def _company(ctx: ActionContext, crm: CrmSettings, account_id: str) -> Company | None:
    account = _record(ctx, "Account", account_id, f"reading Salesforce account {account_id}")
    if account is None:
        return None
    tax_id = _field(account, crm.tax_id_field)
    return Company(
        name=_text(account.get("Name")),
        tax_id=_text(tax_id),
        street=_text(account.get("BillingStreet")),
        postal_code=_text(account.get("BillingPostalCode")),
        city=_text(account.get("BillingCity")),
        province=_text(account.get("BillingState")),
        country=_country(account.get("BillingCountryCode"), account.get("BillingCountry")),
    )


def _text(value: Any) -> str | None:
    if value in (None, ""):
        return None
    text = " ".join(str(value).split())  # BillingStreet may span lines
    return text or None


def _country(code: Any, name: Any) -> str | None:
    """ISO alpha-2: the picklist's code when the org uses State and Country picklists, else
    the name as typed."""
    return country_code(code, name)


def _lines(ctx: ActionContext, deal_id: str) -> Iterator[Line]:
    what = f"reading the products of Salesforce opportunity {deal_id}"
    for item in _query(ctx, LINES_QUERY.format(id=deal_id), what):
        product = item.get("Product2") if isinstance(item.get("Product2"), dict) else {}
        name = _text(product.get("Name")) if product else None
        note = _text(item.get("Description"))
        description = " — ".join(t for t in (name, note) if t) or "(sin descripción)"
        yield Line(
            description=description,
            quantity=_plain(item.get("Quantity")) or "1",
            unit_price=_plain(item.get("UnitPrice")),
            sku=_text(product.get("ProductCode")) if product else None,
            discount_percent=_plain(item.get("Discount")),
        )


# Reconciliation


def list_won(ctx: ActionContext, crm: CrmSettings, since: datetime) -> list[str]:
    """The opportunities won with a close date from `since`'s day (UTC) on, by a SOQL query
    (dates go unquoted in SOQL): IsWon, or the stages of settings.won_stages when it is set.

    CloseDate, not LastModifiedDate: any later edit changes LastModifiedDate, so an old won
    opportunity touched by someone would count as won now. The won_at of a deal is its
    CloseDate too (read_deal)."""
    day = since.astimezone(UTC).date().isoformat()
    won = (
        f"StageName IN ({', '.join(_soql_text(stage) for stage in crm.won_stages)})"
        if crm.won_stages
        else "IsWon = true"
    )
    soql = f"SELECT Id FROM Opportunity WHERE {won} AND CloseDate >= {day}"
    found = _query(ctx, soql, "listing the won Salesforce opportunities", whole=False)
    return [str(record["Id"]) for record in found if record.get("Id")]


def _soql_text(value: str) -> str:
    """A SOQL string literal: quotes and backslashes escaped with a backslash, and the
    control characters SOQL names (\\n \\r \\t \\b \\f)."""
    escapes = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r",
               "\t": "\\t", "\b": "\\b", "\f": "\\f"}  # fmt: skip
    return "'" + "".join(escapes.get(char, char) for char in value) + "'"


# Writing


def write_deal(ctx: ActionContext, _crm: CrmSettings, deal_id: str, fields: dict[str, Any]) -> None:
    """PATCH the opportunity's fields (Salesforce answers 204 No Content)."""
    deal_id = _checked_id(deal_id)
    _call(
        ctx,
        "PATCH",
        f"{API}/sobjects/Opportunity/{deal_id}",
        f"writing on Salesforce opportunity {deal_id}",
        fields,
    )


def write_note(ctx: ActionContext, _crm: CrmSettings, deal_id: str, text: str) -> str | None:
    """A Note on the opportunity (its Notes & Attachments); the new Note's id."""
    deal_id = _checked_id(deal_id)
    title = f"Puente: {text}"
    note = {
        "ParentId": deal_id,
        "Title": title if len(title) <= 80 else title[:79] + "…",
        "Body": text[:32000],
    }
    answer = _call(
        ctx,
        "POST",
        f"{API}/sobjects/Note",
        f"adding a note to Salesforce opportunity {deal_id}",
        note,
    )
    body = answer.body if isinstance(answer.body, dict) else {}
    return str(body["id"]) if body.get("id") else None


def write_company(
    ctx: ActionContext, crm: CrmSettings, company_id: str | None, customer: dict[str, Any]
) -> tuple[str, bool]:
    """The customer as an Account: PATCH the one with this id, or (with none) the one whose
    NIF field holds its tax id, found by SOQL; POST a new one when there is none (201
    {"id", "success", "errors"}). Accounts have no standard e-mail field: none is written."""
    nif_field = crm.tax_id_field
    if not API_NAME.match(nif_field):
        raise ConfigurationError(
            f"the connection's tax_id_field {nif_field[:80]!r} is not a Salesforce field API "
            "name (letters, digits and _, such as NIF__c)"
        )
    tax_id = str(customer["tax_id"])
    address = customer.get("address") or {}
    fields: dict[str, Any] = {"Name": customer["name"], nif_field: tax_id}
    for name, key in (
        ("BillingStreet", "street"),
        ("BillingPostalCode", "postal_code"),
        ("BillingCity", "city"),
        ("BillingState", "province"),
        ("BillingCountry", "country"),
    ):
        if address.get(key):
            fields[name] = address[key]
    if company_id is not None:
        account_id: str | None = _checked_account_id(str(company_id))
    else:
        soql = f"SELECT Id FROM Account WHERE {nif_field} = {_soql_text(tax_id)} LIMIT 1"
        what = f"looking for the Salesforce account with NIF {tax_id}"
        found = [str(r["Id"]) for r in _query(ctx, soql, what, whole=False) if r.get("Id")]
        account_id = found[0] if found else None
    if account_id is not None:
        _call(
            ctx,
            "PATCH",
            f"{API}/sobjects/Account/{account_id}",
            f"writing on Salesforce account {account_id}",
            fields,
        )
        return account_id, False
    answer = _call(
        ctx, "POST", f"{API}/sobjects/Account", f"creating the Salesforce account {tax_id}", fields
    )
    body = answer.body if isinstance(answer.body, dict) else {}
    if not body.get("id"):
        raise ValidationError(
            f"creating the Salesforce account {tax_id}: Salesforce answered no id: "
            f"{str(answer.body)[:300]}"
        )
    return str(body["id"]), True


def _checked_account_id(account_id: str) -> str:
    if not RECORD_ID.match(account_id):
        raise refused(
            "company_id",
            Said(
                f"{account_id!r} is not a Salesforce record id (15 or 18 letters and digits)",
                f"{account_id!r} no es un id de registro de Salesforce (15 o 18 letras y cifras)",
            ),
        )
    return account_id


API_CALLS = CrmApi(
    read_deal=read_deal,
    write_deal=write_deal,
    write_note=write_note,
    list_won=list_won,
    write_company=write_company,
)


def get_deal(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """The opportunity with its line items and account, normalized."""
    return actions.crm.get_deal(API_CALLS, ctx, data)


def update_deal(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """The invoice's number, link and payment status, into the opportunity's fields."""
    return actions.crm.update_deal(API_CALLS, ctx, data)


def add_note(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """A Note on the opportunity for its owner."""
    return actions.crm.add_note(API_CALLS, ctx, data)


GET_DEAL, UPDATE_DEAL, ADD_NOTE = actions.crm.specs(
    "salesforce", "Salesforce", get_deal, update_deal, add_note
)


def get_account(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """The Salesforce account as a customer (name, NIF/CIF from settings.tax_id_field,
    billing address), and whether it has a NIF/CIF yet."""
    crm = actions.crm.settings(ctx)
    account_id = str(data["company_id"])
    if not RECORD_ID.match(account_id):
        raise refused(
            "company_id",
            Said(
                f"{account_id!r} is not a Salesforce record id (15 or 18 letters and digits)",
                f"{account_id!r} no es un id de registro de Salesforce (15 o 18 letras y cifras)",
            ),
        )
    company = _company(ctx, crm, account_id)
    if company is None:
        raise refused(
            "company_id",
            Said(
                f"Salesforce has no account {account_id} (deleted, or the connection's user "
                "cannot see it)",
                f"Salesforce no tiene la cuenta {account_id} (borrada, o el usuario de la "
                "conexión no puede verla)",
            ),
        )
    assert ctx.http is not None and ctx.connection is not None
    site = ctx.http.view(ctx.connection).base_url.rstrip("/")
    # The classic record address: Salesforce sends it on to Lightning when that is on.
    return actions.crm.company_output(
        account_id, company, f"Cuenta {account_id}", f"{site}/{account_id}"
    )


GET_ACCOUNT = actions.crm.company_read_spec(
    "salesforce", "Salesforce", ("account", "una cuenta"), get_account
)


def upsert_company(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """The customer as an Account (name, NIF field, billing address), found by id or NIF."""
    return actions.crm.upsert_company(API_CALLS, ctx, data)


UPSERT_COMPANY = actions.crm.company_spec("salesforce", "Salesforce", upsert_company)
