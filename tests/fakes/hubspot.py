"""A local HubSpot (CRM API v3) for tests: deals with their line items and companies, products,
deal pipelines, deal properties and notes, kept in memory so a test can see what was written.

As HubSpot documents it: a private app's token as `Authorization: Bearer …`, 401
(INVALID_AUTHENTICATION) without a valid one; records as {"id", "properties", "createdAt",
"updatedAt", "archived"} with every value a text (null when asked for and unset); a deal read
with `associations=line_items,companies` embeds them under "line items" (with a space, as a
captured answer shows) and "companies", the same company once per association label
(deal_to_company, the primary, and deal_to_company_unlabeled), at most `embed_limit` each with
paging.next; the v4 associations API pages with `after`; batch reads take up to 100 ids;
pipelines' stages have metadata.isClosed and metadata.probability as texts; PATCH of a deal
property that does not exist is 400 VALIDATION_ERROR / PROPERTY_DOESNT_EXIST; a note is created
with its associations (note → deal is type 214); 429 comes with Retry-After and the
X-HubSpot-RateLimit-* headers. `fail` scripts answers for the next calls to a path (429, 5xx).

The CRM search (POST /crm/v3/objects/{deals,companies}/search): filterGroups OR'ed, the
filters of a group AND'ed (EQ, IN, GTE, HAS_PROPERTY, NOT_HAS_PROPERTY; a datetime compared in
milliseconds, given as milliseconds or ISO 8601), `sorts` on one property, `limit` at most 200,
paged with `after`.
HubSpot keeps each deal's `hs_lastmodifieddate`: `touch_deal` changes a deal as a person would,
and a PATCH that changes a value moves it too. `company_creation` / `company_property_change`
make the webhook events HubSpot posts for companies. Companies are created (POST, 201) and
updated (PATCH, 200) as {"properties": {…}}; a property that does not exist (built-in, or
in `company_properties`) is 400 PROPERTY_DOESNT_EXIST, as for deals.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "pat-eu1-5b1c2d3e-0000-4000-8000-000000000001"
PORTAL_ID = 62515
NOTE_TO_DEAL = 214
BUILT_IN_DEAL_PROPERTIES = {
    "dealname",
    "dealstage",
    "pipeline",
    "amount",
    "closedate",
    "deal_currency_code",
    "hubspot_owner_id",
    "hs_is_closed_won",
}
BUILT_IN_COMPANY_PROPERTIES = {
    "name",
    "domain",
    "address",
    "address2",
    "zip",
    "city",
    "state",
    "country",
}


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    body: Any


@dataclass
class FakeHubSpot:
    url: str = ""
    token: str = TOKEN
    portal_id: int = PORTAL_ID
    deals: dict[str, dict[str, Any]] = field(default_factory=dict)  # id → properties
    deal_line_items: dict[str, list[str]] = field(default_factory=dict)
    deal_companies: dict[str, list[str]] = field(default_factory=dict)  # the first is primary
    line_items: dict[str, dict[str, Any]] = field(default_factory=dict)
    products: dict[str, dict[str, Any]] = field(default_factory=dict)
    companies: dict[str, dict[str, Any]] = field(default_factory=dict)
    pipelines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # id → stages
    # Custom deal properties that exist (the user creates them in HubSpot).
    deal_properties: set[str] = field(default_factory=set)
    # Custom company properties that exist (the NIF's, created by the user).
    company_properties: set[str] = field(default_factory=lambda: {"nif"})
    notes: list[dict[str, Any]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    failures: dict[tuple[str, str], list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    embed_limit: int = 100  # associations embedded in a record read before paging.next
    page_limit: int = 500  # the most associations the v4 API gives in one page
    _ids: int = 90000
    _clock: int = 0  # the last hs_lastmodifieddate given, in milliseconds (always moves on)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_id(self) -> str:
        self._ids += 1
        return str(self._ids)

    def fail(self, method: str, path: str, status: int, retry_after: int | None = None) -> None:
        """The next call to (method, path) answers `status` (429: with Retry-After)."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        if status == 429:
            headers |= {
                "X-HubSpot-RateLimit-Max": "100",
                "X-HubSpot-RateLimit-Remaining": "0",
                "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            }
        self.failures.setdefault((method, path), []).append((status, headers))

    def modified_now(self) -> str:
        """A new hs_lastmodifieddate, later than any given before (as HubSpot writes it)."""
        now = int(datetime.now(UTC).timestamp() * 1000)
        self._clock = max(now, self._clock + 1)
        when = datetime.fromtimestamp(self._clock / 1000, UTC)
        return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def touch_deal(self, deal_id: str, **properties: Any) -> str:
        """Change a deal as a person does in HubSpot; its new hs_lastmodifieddate."""
        with self.lock:
            deal = self.deals.setdefault(deal_id, {})
            deal.update(properties)
            deal["hs_lastmodifieddate"] = self.modified_now()
            return str(deal["hs_lastmodifieddate"])

    def calls_to(self, method: str, prefix: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.path.startswith(prefix)]

    def deal_notes(self, deal_id: str) -> list[str]:
        return [n["properties"]["hs_note_body"] for n in self.notes if deal_id in n["deals"]]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _record(record_id: str, props: dict[str, Any], wanted: list[str] | None) -> dict[str, Any]:
    """A record as HubSpot answers it: the asked properties (null when unset), as texts."""
    names = wanted if wanted is not None else list(props)
    shown = {n: None if props.get(n) is None else str(props[n]) for n in names}
    shown["hs_object_id"] = record_id
    return {
        "id": record_id,
        "properties": shown,
        "createdAt": "2026-11-20T09:00:00.000Z",
        "updatedAt": _now(),
        "archived": False,
    }


def _error(status: int, message: str, category: str, **extra: Any) -> dict[str, Any]:
    return {
        "status": "error",
        "message": message,
        "correlationId": "8a2f3c1e-0000-4000-8000-000000000000",
        "category": category,
        **extra,
    }


def _handler(api: FakeHubSpot) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            raw = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            with api.lock:
                api.calls.append(Call(self.command, parts.path, query, body))
                scripted = api.failures.get((self.command, parts.path))
                failure = scripted.pop(0) if scripted else None
            if self.headers.get("Authorization") != f"Bearer {api.token}":
                self._send(
                    401,
                    _error(
                        401,
                        "Authentication credentials not found. This API supports OAuth 2.0 "
                        "authentication and you can find more details at "
                        "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                        "INVALID_AUTHENTICATION",
                    ),
                )
                return
            if failure is not None:
                status, headers = failure
                if status == 429:
                    answer = {
                        "status": "error",
                        "message": "You have reached your secondly limit.",
                        "errorType": "RATE_LIMIT",
                        "correlationId": "c033cdaa-0000-4000-8000-000000000000",
                        "policyName": "SECONDLY",
                    }
                else:
                    answer = _error(status, "internal error", "INTERNAL_ERROR")
                self._send(status, answer, headers)
                return
            with api.lock:
                status, answer = self._route(self.command, parts.path.strip("/"), query, body)
            self._send(status, answer)

        def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> Any:
            segments = path.split("/")
            if method == "GET" and path == "account-info/v3/details":
                return 200, {
                    "portalId": api.portal_id,
                    "accountType": "STANDARD",
                    "timeZone": "Europe/Madrid",
                    "companyCurrency": "EUR",
                    "additionalCurrencies": [],
                    "utcOffset": "+01:00",
                    "utcOffsetMilliseconds": 3600000,
                    "uiDomain": "app-eu1.hubspot.com",
                    "dataHostingLocation": "eu1",
                }
            if segments[:3] == ["crm", "v3", "objects"]:
                return self._objects(method, segments[3:], query, body)
            if segments[:4] == ["crm", "v4", "objects", "deals"] and len(segments) == 7:
                return self._associations_v4(segments[4], segments[6], query)
            if method == "GET" and segments[:4] == ["crm", "v3", "pipelines", "deals"]:
                if len(segments) == 4:
                    return 200, {"results": [self._pipeline(p) for p in api.pipelines]}
                if segments[4] in api.pipelines:
                    return 200, self._pipeline(segments[4])
            return 404, _error(404, f"no such resource: {path}", "OBJECT_NOT_FOUND")

        def _pipeline(self, pipeline_id: str) -> dict[str, Any]:
            stages = [
                {
                    "id": s["id"],
                    "label": s["label"],
                    "displayOrder": n,
                    "metadata": {
                        "isClosed": "true" if s["closed"] else "false",
                        "probability": s["probability"],
                    },
                    "archived": False,
                }
                for n, s in enumerate(api.pipelines[pipeline_id])
            ]
            return {"id": pipeline_id, "label": pipeline_id, "stages": stages, "archived": False}

        def _objects(self, method: str, rest: list[str], query: dict[str, str], body: Any) -> Any:
            kind = rest[0] if rest else ""
            store = {
                "deals": api.deals,
                "line_items": api.line_items,
                "products": api.products,
                "companies": api.companies,
            }.get(kind)
            if kind == "notes" and method == "POST" and len(rest) == 1:
                return self._note(body)
            if store is None:
                return 404, _error(404, f"unknown object type {kind}", "OBJECT_NOT_FOUND")
            wanted = query["properties"].split(",") if "properties" in query else None
            if method == "POST" and rest[1:] == ["batch", "read"]:
                inputs = body.get("inputs") or []
                if len(inputs) > 100:
                    return 400, _error(400, "too many inputs (100 at most)", "VALIDATION_ERROR")
                ids = [str(i["id"]) for i in inputs]
                found = [_record(i, store[i], body.get("properties")) for i in ids if i in store]
                # HubSpot does not promise the order of a batch's results.
                return 200, {
                    "status": "COMPLETE",
                    "results": list(reversed(found)),
                    "startedAt": _now(),
                    "completedAt": _now(),
                }
            if kind == "deals" and method == "GET" and len(rest) == 1:
                limit = int(query.get("limit", 10))
                results = [_record(i, p, ["dealname"]) for i, p in list(api.deals.items())[:limit]]
                return 200, {"results": results}
            if kind in ("deals", "companies") and method == "POST" and rest[1:] == ["search"]:
                return self._search(body, store)
            if kind == "companies" and method == "POST" and len(rest) == 1:
                return self._write_company(None, body)
            if len(rest) != 2 or rest[1] not in store:
                return 404, _error(404, "resource not found", "OBJECT_NOT_FOUND")
            record_id = rest[1]
            if method == "GET":
                record = _record(record_id, store[record_id], wanted)
                if kind == "deals" and "associations" in query:
                    record["associations"] = self._embedded(record_id, query["associations"])
                return 200, record
            if method == "PATCH" and kind == "deals":
                return self._update_deal(record_id, body)
            if method == "PATCH" and kind == "companies":
                return self._write_company(record_id, body)
            return 405, _error(405, "method not allowed", "VALIDATION_ERROR")

        def _embedded(self, deal_id: str, asked: str) -> dict[str, Any]:
            found: dict[str, Any] = {}
            kinds = asked.split(",")
            if "line_items" in kinds and api.deal_line_items.get(deal_id):
                rows = [
                    {"id": i, "type": "deal_to_line_item"} for i in api.deal_line_items[deal_id]
                ]
                found["line items"] = self._capped(rows)
            if "companies" in kinds and api.deal_companies.get(deal_id):
                rows = []
                for n, company in enumerate(api.deal_companies[deal_id]):
                    if n == 0:
                        rows.append({"id": company, "type": "deal_to_company"})
                    rows.append({"id": company, "type": "deal_to_company_unlabeled"})
                found["companies"] = self._capped(rows)
            return found

        def _capped(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
            shown: dict[str, Any] = {"results": rows[: api.embed_limit]}
            if len(rows) > api.embed_limit:
                shown["paging"] = {
                    "next": {"after": "MTAw", "link": "https://api.hubapi.com/crm/v3/…?after=MTAw"}
                }
            return shown

        def _associations_v4(self, deal_id: str, kind: str, query: dict[str, str]) -> Any:
            if deal_id not in api.deals:
                return 404, _error(404, "resource not found", "OBJECT_NOT_FOUND")
            ids = (api.deal_line_items if kind == "line_items" else api.deal_companies).get(
                deal_id, []
            )
            start = int(query.get("after") or 0)
            limit = min(int(query.get("limit", 500)), api.page_limit)
            chunk = ids[start : start + limit]
            results = []
            for n, i in enumerate(chunk, start):
                types = [{"category": "HUBSPOT_DEFINED", "typeId": 19, "label": None}]
                if kind == "companies":
                    types = [{"category": "HUBSPOT_DEFINED", "typeId": 341, "label": None}]
                    if n == 0:
                        types.append(
                            {"category": "HUBSPOT_DEFINED", "typeId": 5, "label": "Primary"}
                        )
                results.append({"toObjectId": int(i), "associationTypes": types})
            answer: dict[str, Any] = {"results": results}
            if start + limit < len(ids):
                answer["paging"] = {"next": {"after": str(start + limit), "link": "…"}}
            return 200, answer

        def _update_deal(self, deal_id: str, body: Any) -> Any:
            properties = (body or {}).get("properties") or {}
            unknown = self._unknown(properties, BUILT_IN_DEAL_PROPERTIES | api.deal_properties)
            if unknown is not None:
                return unknown
            deal = api.deals[deal_id]
            changed = any(deal.get(k) != v for k, v in properties.items())
            deal.update(properties)
            if changed:  # writing the same values again changes nothing
                deal["hs_lastmodifieddate"] = api.modified_now()
            return 200, _record(deal_id, api.deals[deal_id], list(properties))

        def _write_company(self, company_id: str | None, body: Any) -> Any:
            """POST (company_id None: 201 and a new id) or PATCH (200) of a company."""
            properties = (body or {}).get("properties") or {}
            known = BUILT_IN_COMPANY_PROPERTIES | api.company_properties
            unknown = self._unknown(properties, known)
            if unknown is not None:
                return unknown
            if company_id is None:
                company_id = api.next_id()
                api.companies[company_id] = dict(properties)
                return 201, _record(company_id, api.companies[company_id], None)
            api.companies[company_id].update(properties)
            return 200, _record(company_id, api.companies[company_id], list(properties))

        @staticmethod
        def _unknown(properties: dict[str, Any], known: set[str]) -> Any:
            """HubSpot's 400 for properties that do not exist; None when all do."""
            unknown = [name for name in properties if name not in known]
            if unknown:
                return 400, _error(
                    400,
                    "Property values were not valid: "
                    + json.dumps(
                        [
                            {
                                "isValid": False,
                                "message": f'Property "{n}" does not exist',
                                "error": "PROPERTY_DOESNT_EXIST",
                                "name": n,
                            }
                            for n in unknown
                        ]
                    ),
                    "VALIDATION_ERROR",
                    errors=[
                        {
                            "message": f'Property "{n}" does not exist',
                            "code": "PROPERTY_DOESNT_EXIST",
                            "context": {"propertyName": [n]},
                        }
                        for n in unknown
                    ],
                )
            return None

        def _note(self, body: Any) -> Any:
            props = (body or {}).get("properties") or {}
            if not props.get("hs_timestamp"):
                return 400, _error(400, "hs_timestamp is required", "VALIDATION_ERROR")
            deals = []
            for link in (body or {}).get("associations") or []:
                types = link.get("types") or []
                if any(t.get("associationTypeId") == NOTE_TO_DEAL for t in types):
                    deal = str(link["to"]["id"])
                    if deal not in api.deals:
                        return 400, _error(400, f"no deal {deal}", "VALIDATION_ERROR")
                    deals.append(deal)
            note_id = api.next_id()
            api.notes.append({"id": note_id, "properties": props, "deals": deals})
            return 201, _record(note_id, props, None)

        def _search(self, body: Any, store: dict[str, dict[str, Any]]) -> Any:
            groups = body.get("filterGroups") or [{"filters": []}]
            limit = int(body.get("limit", 10))
            if limit > 200:
                return 400, _error(400, "limit must be 200 or less", "VALIDATION_ERROR")
            rows = [
                (deal_id, props)
                for deal_id, props in store.items()
                if any(all(self._matches(props, f) for f in g["filters"]) for g in groups)
            ]
            for sort in reversed(body.get("sorts") or []):  # unset values last, either way
                name = sort["propertyName"]
                unset = [row for row in rows if row[1].get(name) in (None, "")]
                rows = sorted(
                    (row for row in rows if row[1].get(name) not in (None, "")),
                    key=lambda row, name=name: str(row[1][name]),
                    reverse=sort.get("direction") == "DESCENDING",
                )
                rows += unset
            found = [_record(i, p, body.get("properties")) for i, p in rows]
            start = int(body.get("after") or 0)
            answer: dict[str, Any] = {"total": len(found), "results": found[start : start + limit]}
            if start + limit < len(found):
                answer["paging"] = {"next": {"after": str(start + limit)}}
            return 200, answer

        @staticmethod
        def _matches(props: dict[str, Any], rule: dict[str, Any]) -> bool:
            value = props.get(rule["propertyName"])
            if rule["operator"] in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
                has = value not in (None, "")
                return has if rule["operator"] == "HAS_PROPERTY" else not has
            if rule["operator"] == "IN":
                return str(value) in rule["values"]
            if rule["operator"] == "EQ":
                return str(value).lower() == str(rule["value"]).lower()
            if rule["operator"] == "GTE":
                if value is None:
                    return False
                return _millis(value) >= _millis(rule["value"])
            raise ValueError(f"operator {rule['operator']} is not in this fake")

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

    return Handler


def _millis(value: Any) -> int:
    text = str(value)
    if text.isdigit():
        return int(text)
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def company_creation(company_id: str, event_id: int, portal_id: int = PORTAL_ID) -> dict:
    """The event HubSpot posts when a company is created (subscription company.creation)."""
    return {
        "eventId": event_id,
        "subscriptionId": 92901,
        "portalId": portal_id,
        "appId": 186886,
        "occurredAt": int(datetime.now(UTC).timestamp() * 1000),
        "subscriptionType": "company.creation",
        "attemptNumber": 0,
        "objectId": int(company_id),
        "changeFlag": "CREATED",
        "changeSource": "CRM_UI",
        "sourceId": "userId:69864216",
    }


def company_property_change(
    company_id: str, event_id: int, name: str, value: Any, portal_id: int = PORTAL_ID
) -> dict:
    """The event HubSpot posts when a company's property changes (company.propertyChange)."""
    return {
        "eventId": event_id,
        "subscriptionId": 92902,
        "portalId": portal_id,
        "appId": 186886,
        "occurredAt": int(datetime.now(UTC).timestamp() * 1000),
        "subscriptionType": "company.propertyChange",
        "attemptNumber": 0,
        "objectId": int(company_id),
        "propertyName": name,
        "propertyValue": "" if value is None else str(value),
        "changeSource": "CRM_UI",
        "sourceId": "userId:69864216",
    }


@contextmanager
def fake_hubspot() -> Iterator[FakeHubSpot]:
    api = FakeHubSpot()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    api.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
