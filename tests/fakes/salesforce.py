"""A local Salesforce: the OAuth 2 token endpoint, UserInfo and the REST API (v59.0) calls
Puente makes, with Salesforce's shapes, codes and errors, on 127.0.0.1.

What it follows (Salesforce's REST API and OAuth documentation):
- POST /services/oauth2/token, grant_type=refresh_token with client_id, client_secret and
  refresh_token (form-encoded) → {"access_token", "instance_url", "id", "token_type":
  "Bearer", "issued_at", "signature"} (no expires_in); a wrong grant → 400 invalid_grant.
- Every API call needs `Authorization: Bearer <access token>`; an expired or unknown one →
  401 [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}].
- GET /services/oauth2/userinfo → organization_id, user_id, preferred_username, …
- GET /services/data/v59.0/sobjects/<Object>/<id> → the record with "attributes"; 404
  [{"errorCode": "NOT_FOUND"}] when missing.
- GET /services/data/v59.0/query?q=<SOQL> → {"totalSize", "done", "records",
  "nextRecordsUrl"}; the next pages at /services/data/v59.0/query/<locator>. It knows two
  shapes: an opportunity's line items, and the won opportunities since a day
  (`SELECT Id FROM Opportunity WHERE IsWon = true|StageName IN ('…', …) AND CloseDate >=
  YYYY-MM-DD`: a date literal is never quoted; strings escape ' and \\ with a backslash).
  And the poll's two: the newest change (`SELECT SystemModstamp FROM Opportunity ORDER BY
  SystemModstamp DESC LIMIT 1`) and the changes since a dateTime (`SELECT Id, StageName,
  IsWon, SystemModstamp FROM Opportunity WHERE SystemModstamp >= <dateTime> AND <field> =
  null ORDER BY SystemModstamp ASC`: a dateTime literal is never quoted either, and a field
  the object lacks → 400 INVALID_FIELD). Anything else → 400 MALFORMED_QUERY.
- PATCH /sobjects/Opportunity/<id> → 204 (its SystemModstamp moves on); a field the object
  lacks → 400 INVALID_FIELD.
- POST /sobjects/Note → 201 {"id", "success": true, "errors": []}.
- Accounts written from customers: `SELECT Id FROM Account WHERE <field> = '<text>' LIMIT 1`
  (a text comparison, without regard to case, as SOQL's `=` on text; a field the object
  lacks → 400 INVALID_FIELD); POST /sobjects/Account → 201 {"id", "success": true,
  "errors": []} (no Name → 400 REQUIRED_FIELD_MISSING); PATCH /sobjects/Account/<id> → 204.
  A field the Account lacks → 400 INVALID_FIELD.
- Scripted failures: 429 with Retry-After, 503, 403 REQUEST_LIMIT_EXCEEDED.
IsWon follows the stage, as Salesforce's OpportunityStage does ("Closed Won" is won).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API = "/services/data/v59.0"
ORG_ID = "00D7F00000107XsUAI"
USER_ID = "0057F000001AbCdQAK"
WON_STAGES = {"Closed Won"}
CLOSED_STAGES = {"Closed Won", "Closed Lost"}
OPPORTUNITY_FIELDS = {
    "Id",
    "Name",
    "StageName",
    "IsWon",
    "IsClosed",
    "CloseDate",
    "Amount",
    "CurrencyIsoCode",
    "AccountId",
    "OwnerId",
    "LastModifiedDate",
    "SystemModstamp",
    "Puente_Invoice_Number__c",
    "Puente_Invoice_URL__c",
    "Puente_Payment_Status__c",
}
LINES = re.compile(r"FROM\s+OpportunityLineItem\s+WHERE\s+OpportunityId\s*=\s*'(\w+)'", re.I)
WON = re.compile(
    r"^SELECT\s+Id\s+FROM\s+Opportunity\s+WHERE\s+"
    r"(?:(?P<is_won>IsWon\s*=\s*true)|StageName\s+IN\s*\((?P<stages>.*)\))"
    r"\s+AND\s+CloseDate\s*>=\s*(?P<day>\S+)\s*$",
    re.I | re.S,
)
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ACCOUNT_FIELDS = {
    "Id",
    "Name",
    "NIF__c",
    "BillingStreet",
    "BillingPostalCode",
    "BillingCity",
    "BillingState",
    "BillingCountry",
    "BillingCountryCode",
    "LastModifiedDate",
}
ACCOUNT_BY = re.compile(
    r"^SELECT\s+Id\s+FROM\s+Account\s+WHERE\s+(?P<field>\w+)\s*=\s*(?P<value>'.*')"
    r"\s+LIMIT\s+1$",
    re.I | re.S,
)
NEWEST = re.compile(
    r"^SELECT\s+SystemModstamp\s+FROM\s+Opportunity\s+ORDER\s+BY\s+SystemModstamp\s+DESC"
    r"\s+LIMIT\s+1$",
    re.I,
)
CHANGED = re.compile(
    r"^SELECT\s+Id\s*,\s*StageName\s*,\s*IsWon\s*,\s*SystemModstamp\s+FROM\s+Opportunity\s+"
    r"WHERE\s+SystemModstamp\s*(?P<op>>=|>)\s*(?P<since>\S+)"
    r"(?:\s+AND\s+(?P<field>\w+)\s*=\s*null)?\s+ORDER\s+BY\s+SystemModstamp\s+ASC$",
    re.I,
)
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:\d{2})$")
START = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


@dataclass
class FakeSalesforce:
    url: str = ""
    org_id: str = ORG_ID
    client_id: str = "3MVG9fake-consumer-key"
    client_secret: str = "fake-consumer-secret"
    refresh_token: str = "5Aep861fake-refresh-token"
    opportunities: dict[str, dict[str, Any]] = field(default_factory=dict)
    line_items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[dict[str, Any]] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)  # access tokens still valid
    tokens_issued: int = 0
    page_size: int = 2  # records per query page (Salesforce: up to 2,000)
    # Served once each, before anything else: (method, text in the path, status, headers).
    failures: list[tuple[str, str, int, dict[str, str]]] = field(default_factory=list)
    seen: list[tuple[str, str]] = field(default_factory=list)
    _cursors: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _clock: Iterator[int] = field(default_factory=lambda: itertools.count(0))
    lock: threading.Lock = field(default_factory=threading.Lock)

    # Setting the org up

    def secret(self) -> dict[str, str]:
        """The connection's secret for this org."""
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "refresh_token": self.refresh_token,
            "organization_id": self.org_id,
        }

    def new_id(self, prefix: str) -> str:
        """An 18-character id of the kind `prefix` names, unique in this org."""
        return f"{prefix}7F{next(self._ids):010d}QAA"

    def add_account(self, **fields: Any) -> str:
        account_id = self.new_id("001")
        self.accounts[account_id] = {"Id": account_id, **fields}
        return account_id

    def add_opportunity(
        self, account_id: str | None, lines: list[dict[str, Any]], **fields: Any
    ) -> str:
        """An opportunity with its line items ({"name", "code", "quantity", "price",
        "discount", "description"})."""
        deal_id = self.new_id("006")
        self.opportunities[deal_id] = {
            "Id": deal_id,
            "Name": "Implantación ERP",
            "StageName": "Negotiation/Review",
            "CloseDate": "2026-12-04",
            "Amount": 2480.5,
            "AccountId": account_id,
            "OwnerId": USER_ID,
            "LastModifiedDate": "2026-12-04T10:00:00.000+0000",
            **fields,
        }
        self.opportunities[deal_id]["SystemModstamp"] = self._tick()
        self.set_stage(deal_id, self.opportunities[deal_id]["StageName"])
        self.line_items[deal_id] = [
            {
                "Id": self.new_id("00k"),
                "Quantity": line["quantity"],
                "UnitPrice": line["price"],
                "Discount": line.get("discount"),
                "Description": line.get("description"),
                "Product2": {
                    "attributes": {"type": "Product2"},
                    "Name": line["name"],
                    "ProductCode": line.get("code"),
                },
            }
            for line in lines
        ]
        return deal_id

    def _tick(self) -> str:
        """The org's next change time: one second after the one before, as Salesforce writes
        a dateTime (2026-12-04T10:00:01.000+0000)."""
        when = START + timedelta(seconds=next(self._clock))
        return when.strftime("%Y-%m-%dT%H:%M:%S.000+0000")

    def touch_opportunity(self, deal_id: str, stage: str | None = None, **fields: Any) -> str:
        """Someone changed the opportunity (its stage, its fields); its new SystemModstamp."""
        if stage is not None:
            self.set_stage(deal_id, stage)
        self.opportunities[deal_id].update(fields)
        stamp = self._tick()
        self.opportunities[deal_id].update(SystemModstamp=stamp, LastModifiedDate=stamp)
        return stamp

    def set_stage(self, deal_id: str, stage: str) -> None:
        deal = self.opportunities[deal_id]
        deal.update(StageName=stage, IsWon=stage in WON_STAGES, IsClosed=stage in CLOSED_STAGES)

    def expire_tokens(self) -> None:
        """Every access token handed out stops working (the session timed out)."""
        self.tokens.clear()

    def fail_once(
        self, method: str, path_part: str, status: int, headers: dict[str, str] | None = None
    ) -> None:
        self.failures.append((method, path_part, status, headers or {}))

    def outbound_message(
        self, deal_id: str, notification_id: str, org_id: str | None = None
    ) -> bytes:
        """The SOAP Outbound Message Salesforce posts when the opportunity's rule fires."""
        deal = self.opportunities[deal_id]
        fields = ("Id", "AccountId", "Amount", "CloseDate", "IsWon", "Name", "StageName")
        return self.message([(notification_id, "Opportunity", deal, fields)], org_id)

    def account_message(self, *notifications: tuple[str, str], org_id: str | None = None) -> bytes:
        """The Outbound Message of an Account rule: (notification Id, account Id) each."""
        fields = ("Id", "Name", "NIF__c", "LastModifiedDate")
        return self.message(
            [(n, "Account", self.accounts[a], fields) for n, a in notifications], org_id
        )

    def message(
        self,
        notifications: list[tuple[str, str, dict[str, Any], tuple[str, ...]]],
        org_id: str | None = None,
    ) -> bytes:
        """An Outbound Message with these notifications: (Id, object, record, its fields)."""
        notes = "".join(
            f"<Notification><Id>{note_id}</Id>"
            f'<sObject xsi:type="sf:{kind}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
            + "".join(
                f"<sf:{name}>{_xml_value(record[name])}</sf:{name}>"
                for name in names
                if record.get(name) is not None
            )
            + "</sObject></Notification>"
            for note_id, kind, record, names in notifications
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
            '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
            f"<OrganizationId>{org_id or self.org_id}</OrganizationId>"
            "<ActionId>04k7F0000008V3hQAE</ActionId>"
            '<SessionId xsi:nil="true"/>'
            f"<EnterpriseUrl>{self.url}/services/Soap/c/59.0/{self.org_id[:15]}</EnterpriseUrl>"
            f"<PartnerUrl>{self.url}/services/Soap/u/59.0/{self.org_id[:15]}</PartnerUrl>"
            f"{notes}"
            "</notifications></soapenv:Body></soapenv:Envelope>"
        ).encode()

    # Answering

    def answer(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], Any]:
        with self.lock:
            self.seen.append((method, path))
            for failure in self.failures:
                if failure[0] == method and failure[1] in path:
                    self.failures.remove(failure)
                    status, extra = failure[2], failure[3]
                    if status == 403:
                        return (
                            status,
                            extra,
                            _error("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
                        )
                    return status, extra, _error("SERVER_UNAVAILABLE", "Try again later")
            parts = urlsplit(path)
            if method == "POST" and parts.path == "/services/oauth2/token":
                return self._token(raw)
            auth = headers.get("authorization", "")
            if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
                return 401, {}, _error("INVALID_SESSION_ID", "Session expired or invalid")
            if method == "GET" and parts.path == "/services/oauth2/userinfo":
                return (
                    200,
                    {},
                    {
                        "sub": f"{self.url}/id/{self.org_id}/{USER_ID}",
                        "user_id": USER_ID,
                        "organization_id": self.org_id,
                        "preferred_username": "integracion@acme.example",
                        "name": "Integración Puente",
                    },
                )
            return self._api(method, parts.path, parts.query, raw)

    def _token(self, raw: bytes) -> tuple[int, dict[str, str], Any]:
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        if form.get("grant_type") != "refresh_token" or (
            form.get("client_id"),
            form.get("client_secret"),
            form.get("refresh_token"),
        ) != (self.client_id, self.client_secret, self.refresh_token):
            return (
                400,
                {},
                {
                    "error": "invalid_grant",
                    "error_description": "expired access/refresh token",
                },
            )
        self.tokens_issued += 1
        token = f"{self.org_id[:15]}!AQ{self.tokens_issued:04d}fake"
        self.tokens.add(token)
        return (
            200,
            {},
            {
                "access_token": token,
                "instance_url": self.url,
                "id": f"{self.url}/id/{self.org_id}/{USER_ID}",
                "token_type": "Bearer",
                "issued_at": "1764842400000",
                "signature": "c2lnbmF0dXJl",
                "scope": "api refresh_token",
            },
        )

    def _api(
        self, method: str, path: str, query: str, raw: bytes
    ) -> tuple[int, dict[str, str], Any]:
        if not path.startswith(API + "/"):
            return 404, {}, _error("NOT_FOUND", "The requested resource does not exist")
        rest = path[len(API) + 1 :].split("/")
        if method == "GET" and rest == ["query"]:
            return self._query(parse_qs(query).get("q", [""])[0])
        if method == "GET" and len(rest) == 2 and rest[0] == "query":
            return self._page(rest[1])
        if rest[0] != "sobjects" or len(rest) < 2:
            return 404, {}, _error("NOT_FOUND", "The requested resource does not exist")
        kind = rest[1]
        if method == "POST" and kind == "Note" and len(rest) == 2:
            return self._note(json.loads(raw or b"{}"))
        if method == "POST" and kind == "Account" and len(rest) == 2:
            return self._new_account(json.loads(raw or b"{}"))
        record_id = rest[2] if len(rest) == 3 else ""
        table = {
            "Opportunity": self.opportunities,
            "Account": self.accounts,
            "User": self.users,
        }.get(kind)
        if table is None or record_id not in table:
            return 404, {}, _error("NOT_FOUND", "The requested resource does not exist")
        if method == "GET":
            record = {"attributes": {"type": kind, "url": f"{API}/sobjects/{kind}/{record_id}"}}
            return 200, {}, {**record, **table[record_id]}
        if method == "PATCH" and kind == "Opportunity":
            return self._patch(record_id, json.loads(raw or b"{}"))
        if method == "PATCH" and kind == "Account":
            fields = json.loads(raw or b"{}")
            unknown = _unknown(fields, ACCOUNT_FIELDS - {"Id"}, "Account")
            if unknown is not None:
                return unknown
            self.accounts[record_id].update(_canonical(fields, ACCOUNT_FIELDS))
            return 204, {}, None
        return 405, {}, _error("METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed")

    def _query(self, soql: str) -> tuple[int, dict[str, str], Any]:
        won = WON.match(soql.strip())
        match = LINES.search(soql)
        changed = CHANGED.match(soql.strip())
        account_by = ACCOUNT_BY.match(soql.strip())
        if account_by is not None:
            rows = self._accounts_by(account_by)
            if isinstance(rows, tuple):
                return 400, {}, _error(*rows)
            records = rows
        elif NEWEST.match(soql.strip()):
            newest = sorted(self.opportunities.values(), key=lambda o: _moment(o["SystemModstamp"]))
            records = [
                {"attributes": {"type": "Opportunity"}, "SystemModstamp": o["SystemModstamp"]}
                for o in newest[-1:]
            ]
        elif changed is not None:
            rows = self._changed_since(changed)
            if isinstance(rows, tuple):
                return 400, {}, _error(*rows)
            records = rows
        elif won is not None:
            found = self._won_since(won)
            if isinstance(found, str):
                return 400, {}, _error("MALFORMED_QUERY", found)
            records = [{"attributes": {"type": "Opportunity"}, "Id": i} for i in found]
        elif match is not None:
            deal_id = match.group(1)
            records = [
                {"attributes": {"type": "OpportunityLineItem"}, **item}
                for item in self.line_items.get(deal_id, [])
            ]
        else:
            return 400, {}, _error("MALFORMED_QUERY", "this fake answers two query shapes only")
        locator = f"01g7F00000{next(self._ids):05d}"
        self._cursors[locator] = records
        return self._page(f"{locator}-0", total=len(records))

    def _won_since(self, won: re.Match[str]) -> list[str] | str:
        """The ids the won-opportunities query finds, or why Salesforce would refuse it."""
        day = won.group("day")
        if not DAY.match(day):
            return (
                f"value of filter criterion for field 'CloseDate' must be of type date and "
                f"should not be enclosed in quotes: {day}"
            )
        if won.group("is_won"):
            return [
                d for d, o in self.opportunities.items() if o.get("IsWon") and o["CloseDate"] >= day
            ]
        stages = _soql_strings(won.group("stages"))
        if stages is None:
            return f"unexpected token in the IN list: {won.group('stages')}"
        return [
            d
            for d, o in self.opportunities.items()
            if o["StageName"] in stages and o["CloseDate"] >= day
        ]

    def _changed_since(self, changed: re.Match[str]) -> list[dict[str, Any]] | tuple[str, str]:
        """The opportunities the poll's query finds, oldest change first, or why Salesforce
        would refuse it (errorCode, message)."""
        since = changed.group("since")
        if not DATETIME.match(since):
            return (
                "MALFORMED_QUERY",
                f"value of filter criterion for field 'SystemModstamp' must be of type "
                f"dateTime and should not be enclosed in quotes: {since}",
            )
        linked = changed.group("field")
        known = {name.lower(): name for name in OPPORTUNITY_FIELDS}
        if linked and linked.lower() not in known:
            return ("INVALID_FIELD", f"No such column '{linked}' on entity 'Opportunity'")
        moment = _moment(since)
        strict = changed.group("op") == ">"
        rows = sorted(self.opportunities.values(), key=lambda o: _moment(o["SystemModstamp"]))
        return [
            {
                "attributes": {"type": "Opportunity"},
                **{k: o.get(k) for k in ("Id", "StageName", "IsWon", "SystemModstamp")},
            }
            for o in rows
            if (
                _moment(o["SystemModstamp"]) > moment
                if strict
                else _moment(o["SystemModstamp"]) >= moment
            )
            and not (linked and o.get(known[linked.lower()]))
        ]

    def _accounts_by(self, found: re.Match[str]) -> list[dict[str, Any]] | tuple[str, str]:
        """The account whose field holds the text (at most one: LIMIT 1), or why Salesforce
        would refuse the query (errorCode, message)."""
        known = {name.lower(): name for name in ACCOUNT_FIELDS}
        name = known.get(found.group("field").lower())
        if name is None:
            return ("INVALID_FIELD", f"No such column '{found.group('field')}' on entity 'Account'")
        values = _soql_strings(found.group("value"))
        if values is None or len(values) != 1:
            return ("MALFORMED_QUERY", f"unexpected token: {found.group('value')}")
        wanted = values[0].lower()
        return [
            {"attributes": {"type": "Account"}, "Id": a["Id"]}
            for a in self.accounts.values()
            if isinstance(a.get(name), str) and a[name].lower() == wanted
        ][:1]

    def _new_account(self, fields: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        unknown = _unknown(fields, ACCOUNT_FIELDS - {"Id"}, "Account")
        if unknown is not None:
            return unknown
        if not fields.get("Name"):
            return (
                400,
                {},
                _error("REQUIRED_FIELD_MISSING", "Required fields are missing: [Name]", ["Name"]),
            )
        account_id = self.add_account(**_canonical(fields, ACCOUNT_FIELDS))
        return 201, {}, {"id": account_id, "success": True, "errors": []}

    def _page(self, cursor: str, total: int | None = None) -> tuple[int, dict[str, str], Any]:
        locator, _, start_text = cursor.rpartition("-")
        records = self._cursors.get(locator)
        if records is None or not start_text.isdigit():
            return 400, {}, _error("INVALID_QUERY_LOCATOR", "invalid query locator")
        start = int(start_text)
        page = records[start : start + self.page_size]
        following = start + self.page_size
        body: dict[str, Any] = {
            "totalSize": len(records) if total is None else total,
            "done": following >= len(records),
            "records": page,
        }
        if not body["done"]:
            body["nextRecordsUrl"] = f"{API}/query/{locator}-{following}"
        return 200, {}, body

    def _patch(self, deal_id: str, fields: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        canonical = {name.lower(): name for name in OPPORTUNITY_FIELDS}
        for name in fields:
            if name.lower() not in canonical:
                return (
                    400,
                    {},
                    _error(
                        "INVALID_FIELD",
                        f"No such column '{name}' on sobject of type Opportunity",
                        [name],
                    ),
                )
        for name, value in fields.items():
            self.opportunities[deal_id][canonical[name.lower()]] = value
        self.opportunities[deal_id]["SystemModstamp"] = self._tick()
        return 204, {}, None

    def _note(self, note: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        missing = [k for k in ("ParentId", "Title") if not note.get(k)]
        if missing:
            return (
                400,
                {},
                _error(
                    "REQUIRED_FIELD_MISSING", f"Required fields are missing: {missing}", missing
                ),
            )
        if len(note["Title"]) > 80:
            return 400, {}, _error("STRING_TOO_LONG", "Title: data value too large", ["Title"])
        note_id = self.new_id("002")
        self.notes.append({"Id": note_id, **note})
        return 201, {}, {"id": note_id, "success": True, "errors": []}


def _soql_strings(text: str) -> list[str] | None:
    """The values of a SOQL list of string literals ('a', 'b\\'c'), or None if malformed."""
    unescape = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}
    values: list[str] = []
    rest = text.strip()
    while rest:
        if not rest.startswith("'"):
            return None
        value, index, closed = [], 1, False
        while index < len(rest):
            char = rest[index]
            if char == "\\" and index + 1 < len(rest):
                value.append(unescape.get(rest[index + 1], rest[index + 1]))
                index += 2
            elif char == "'":
                closed = True
                break
            else:
                value.append(char)
                index += 1
        if not closed:
            return None
        values.append("".join(value))
        rest = rest[index + 1 :].strip()
        if rest.startswith(","):
            rest = rest[1:].strip()
            if not rest:
                return None
        elif rest:
            return None
    return values or None


def _unknown(
    fields: dict[str, Any], known: set[str], kind: str
) -> tuple[int, dict[str, str], Any] | None:
    """400 INVALID_FIELD for the first field the object lacks (names without regard to case)."""
    lowered = {name.lower() for name in known}
    for name in fields:
        if name.lower() not in lowered:
            message = f"No such column '{name}' on sobject of type {kind}"
            return 400, {}, _error("INVALID_FIELD", message, [name])
    return None


def _canonical(fields: dict[str, Any], known: set[str]) -> dict[str, Any]:
    """The fields under their API names' own spelling."""
    names = {name.lower(): name for name in known}
    return {names[name.lower()]: value for name, value in fields.items()}


def _moment(stamp: str) -> datetime:
    """A dateTime as Salesforce writes it (…+0000) or as SOQL takes it (…Z)."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC)


def _error(code: str, message: str, fields: list[str] | None = None) -> list[dict[str, Any]]:
    return [{"message": message, "errorCode": code, "fields": fields or []}]


def _xml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _handler(org: FakeSalesforce) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, body = org.answer(self.command, self.path, headers, raw)
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            if body is not None:
                self.send_header("Content-Type", "application/json;charset=UTF-8")
            for key, value in extra.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _serve

    return Handler


@contextmanager
def fake_salesforce() -> Iterator[FakeSalesforce]:
    org = FakeSalesforce()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(org))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    org.url = f"http://127.0.0.1:{server.server_port}"
    org.users[USER_ID] = {"Id": USER_ID, "Name": "Lucía Pérez", "Email": "lucia@acme.example"}
    try:
        yield org
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
