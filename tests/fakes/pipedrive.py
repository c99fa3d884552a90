"""A local Pipedrive (API v1) for tests: deals, their products, products, organizations, deal
and organization fields, notes and webhooks, kept in memory so a test can see what was written.

As Pipedrive documents it: the API token in the x-api-token header (or the api_token query
parameter), 401 without a valid one; answers {"success": true, "data": …}, lists paginated
with start/limit and additional_data.pagination.more_items_in_collection / next_start, "data":
null for an empty list; custom fields under 40-character hash keys at the top of the record;
429 with Retry-After when the rate limit is hit. Organizations are searched (GET
/v1/organizations/search), created (POST) and updated (PUT) as in API v1. `fail` scripts
answers for the next calls to a path (429 with Retry-After, 5xx) so a test can make the API
misbehave once.

Changes keep Pipedrive's update_time ("YYYY-MM-DD HH:MM:SS", UTC) from the fake's own clock,
which only moves forward: GET /v1/recents?since_timestamp=… lists what changed after that time,
oldest first, as {"item": "deal", "id", "data"}; GET /v1/deals takes sort=<field> ASC|DESC.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "0123456789abcdef0123456789abcdef01234567"
STAMP = "%Y-%m-%d %H:%M:%S"
COMPANY_ID = 7781234


def field_key(name: str) -> str:
    """A custom field's key as Pipedrive makes them: 40 hex characters."""
    return hashlib.sha1(name.encode()).hexdigest()


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    body: Any


@dataclass
class FakePipedrive:
    url: str = ""  # the API base: http://127.0.0.1:<port>/api
    token: str = TOKEN
    deals: dict[int, dict[str, Any]] = field(default_factory=dict)
    deal_products: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    products: dict[int, dict[str, Any]] = field(default_factory=dict)
    organizations: dict[int, dict[str, Any]] = field(default_factory=dict)
    deal_fields: list[dict[str, Any]] = field(default_factory=list)
    organization_fields: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    webhooks: dict[int, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    # (method, path) → answers to give first: (status, headers).
    failures: dict[tuple[str, str], list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    page_limit: int = 500  # the most items Pipedrive gives in one page
    # /v1/recents lists what changed after since_timestamp; True: at it too (a test that the
    # poller does not depend on which).
    recents_inclusive: bool = False
    _ids: int = 1000
    clock: datetime = datetime(2026, 12, 1, 9, 0, 0)  # Pipedrive's time (UTC), moved by tick()
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    def tick(self) -> str:
        """Pipedrive's time a little later, as it writes update_time."""
        self.clock += timedelta(seconds=7)
        return self.clock.strftime(STAMP)

    def touch_deal(self, deal_id: int, **changes: Any) -> str:
        """A user's change of the deal in Pipedrive: its update_time moves on."""
        with self.lock:
            self.deals[deal_id].update(changes, update_time=self.tick())
            return str(self.deals[deal_id]["update_time"])

    def touch_organization(self, org_id: int, **changes: Any) -> str:
        with self.lock:
            self.organizations[org_id].update(changes, update_time=self.tick())
            return str(self.organizations[org_id]["update_time"])

    def fail(self, method: str, path: str, status: int, retry_after: int | None = None) -> None:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        self.failures.setdefault((method, path), []).append((status, headers))

    def add_field(self, kind: str, name: str) -> str:
        key = field_key(f"{kind}:{name}")
        target = self.deal_fields if kind == "deal" else self.organization_fields
        target.append({"id": len(target) + 100, "key": key, "name": name, "field_type": "varchar"})
        return key

    def deal_field(self, deal_id: int, name: str) -> Any:
        """A deal's custom field by its name, as the Pipedrive user sees it."""
        [key] = [f["key"] for f in self.deal_fields if f["name"] == name]
        return self.deals[deal_id].get(key)

    def calls_to(self, method: str, prefix: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.path.startswith(prefix)]


def _page(items: list[Any], query: dict[str, str], cap: int) -> dict[str, Any]:
    start = int(query.get("start", 0))
    limit = min(int(query.get("limit", 100)), cap)
    chunk = items[start : start + limit]
    more = start + limit < len(items)
    pagination: dict[str, Any] = {"start": start, "limit": limit, "more_items_in_collection": more}
    if more:
        pagination["next_start"] = start + limit
    return {
        "success": True,
        "data": chunk or None,
        "additional_data": {"pagination": pagination},
    }


def _handler(api: FakePipedrive) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            raw = json.dumps(body).encode()
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
            path = parts.path.removeprefix("/api")
            with api.lock:
                api.calls.append(Call(self.command, path, query, body))
                scripted = api.failures.get((self.command, path))
                failure = scripted.pop(0) if scripted else None
            if failure is not None:
                status, headers = failure
                self._send(status, {"success": False, "error": "scripted failure"}, headers)
                return
            token = self.headers.get("x-api-token") or query.get("api_token")
            if token != api.token:
                self._send(
                    401,
                    {"success": False, "error": "unauthorized access", "errorCode": 401},
                )
                return
            with api.lock:
                status, answer = route(api, self.command, path, query, body)
            self._send(status, answer)

        do_GET = do_POST = do_PUT = do_DELETE = _handle

    return Handler


def _not_found(what: str) -> tuple[int, dict[str, Any]]:
    return 404, {"success": False, "error": f"{what} not found", "errorCode": 404}


def route(
    api: FakePipedrive, method: str, path: str, query: dict[str, str], body: Any
) -> tuple[int, dict[str, Any]]:
    parts = path.strip("/").split("/")
    if parts[:1] != ["v1"]:
        return _not_found("endpoint")
    rest = parts[1:]
    if method == "GET" and rest == ["users", "me"]:
        me = {
            "id": 11,
            "name": "Ana Ventas",
            "email": "ana@example.com",
            "company_id": COMPANY_ID,
            "company_name": "Acme Distribución",
            "company_domain": "acme",
        }
        return 200, {"success": True, "data": me}
    if method == "GET" and rest == ["deals"]:
        wanted = query.get("status")
        rows = [d for d in api.deals.values() if wanted in (None, "all_not_deleted", d["status"])]
        if query.get("sort"):
            name, _, direction = query["sort"].strip().partition(" ")
            rows.sort(key=lambda d: str(d.get(name) or ""), reverse=direction.upper() == "DESC")
        return 200, _page(rows, query, api.page_limit)
    if method == "GET" and rest == ["recents"]:
        return _recents(api, query)
    if rest[:1] == ["deals"] and len(rest) >= 2:
        deal_id = int(rest[1])
        deal = api.deals.get(deal_id)
        if deal is None:
            return _not_found("Deal")
        if method == "GET" and len(rest) == 2:
            return 200, {"success": True, "data": deal}
        if method == "PUT" and len(rest) == 2:
            deal.update(body or {}, update_time=api.tick())
            return 200, {"success": True, "data": deal}
        if method == "GET" and rest[2:] == ["products"]:
            return 200, _page(api.deal_products.get(deal_id, []), query, api.page_limit)
    if method == "GET" and rest[:1] == ["products"] and len(rest) == 2:
        product = api.products.get(int(rest[1]))
        return (200, {"success": True, "data": product}) if product else _not_found("Product")
    if method == "GET" and rest == ["organizations", "search"]:
        return _search_organizations(api, query)
    if method == "POST" and rest == ["organizations"]:
        if not body or not str(body.get("name") or "").strip():
            return 400, {"success": False, "error": "Name must be given.", "errorCode": 400}
        org = {**body, "id": api.next_id(), "update_time": api.tick()}
        api.organizations[org["id"]] = org
        return 201, {"success": True, "data": org}
    if method == "PUT" and rest[:1] == ["organizations"] and len(rest) == 2:
        org = api.organizations.get(int(rest[1]))
        if org is None:
            return _not_found("Organization")
        org.update(body or {}, update_time=api.tick())
        return 200, {"success": True, "data": org}
    if method == "GET" and rest[:1] == ["organizations"] and len(rest) == 2:
        org = api.organizations.get(int(rest[1]))
        return (200, {"success": True, "data": org}) if org else _not_found("Organization")
    if method == "GET" and rest == ["dealFields"]:
        return 200, _page(api.deal_fields, query, api.page_limit)
    if method == "GET" and rest == ["organizationFields"]:
        return 200, _page(api.organization_fields, query, api.page_limit)
    if method == "POST" and rest == ["notes"]:
        if not body or not body.get("content") or not body.get("deal_id"):
            return 400, {"success": False, "error": "content and deal_id are required"}
        note = {"id": api.next_id(), "content": body["content"], "deal_id": body["deal_id"]}
        api.notes.append(note)
        return 201, {"success": True, "data": note}
    if method == "POST" and rest == ["webhooks"]:
        missing = [k for k in ("subscription_url", "event_action", "event_object") if k not in body]
        if missing:
            return 400, {"success": False, "error": f"missing {', '.join(missing)}"}
        hook = {"id": api.next_id(), "company_id": COMPANY_ID, "is_active": 1, **body}
        api.webhooks[hook["id"]] = hook
        shown = {
            **hook,
            "http_auth_password": None if not body.get("http_auth_password") else "***",
        }
        return 201, {"status": "ok", "success": True, "data": shown}
    if method == "DELETE" and rest[:1] == ["webhooks"] and len(rest) == 2:
        if api.webhooks.pop(int(rest[1]), None) is None:
            return _not_found("Webhook")
        return 200, {"status": "ok", "success": True}
    return _not_found("endpoint")


def _search_organizations(api: FakePipedrive, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """GET /v1/organizations/search: term in the given fields (name, address, custom_fields),
    whole and case-insensitive with exact_match; {"data": {"items": [{"result_score", "item"}]}}
    with the item's matching custom field values as a plain list, paginated with start/limit."""
    term = query.get("term", "")
    exact = query.get("exact_match") == "true"
    if len(term) < (1 if exact else 2):
        return 400, {"success": False, "error": "term must be at least 2 characters"}
    fields = set((query.get("fields") or "name,address,custom_fields,notes").split(","))
    custom = {f["key"] for f in api.organization_fields}

    def hit(value: Any) -> bool:
        text, wanted = str(value or "").casefold(), term.casefold()
        return bool(text) and (text == wanted if exact else wanted in text)

    items = []
    for org in api.organizations.values():
        values = [str(org[k]) for k in custom if k in org and hit(org[k])]
        matched = (
            ("custom_fields" in fields and values)
            or ("name" in fields and hit(org.get("name")))
            or ("address" in fields and hit(org.get("address")))
        )
        if matched:
            item = {
                "id": org["id"],
                "type": "organization",
                "name": org.get("name"),
                "address": org.get("address"),
                "visible_to": 3,
                "owner": {"id": 11},
                "custom_fields": values,
                "notes": [],
            }
            items.append({"result_score": 1.0, "item": item})
    answer = _page(items, query, api.page_limit)
    answer["data"] = {"items": answer["data"] or []}
    return 200, answer


def _recents(api: FakePipedrive, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """What changed after since_timestamp (required, "YYYY-MM-DD HH:MM:SS"), oldest first."""
    try:
        since = datetime.strptime(query.get("since_timestamp", ""), STAMP)
    except ValueError:
        return 400, {"success": False, "error": "since_timestamp must be YYYY-MM-DD HH:MM:SS"}
    kinds = set((query.get("items") or "deal,organization").split(","))
    found = [
        ("deal", d) for d in api.deals.values() if "deal" in kinds and d.get("update_time")
    ] + [
        ("organization", o)
        for o in api.organizations.values()
        if "organization" in kinds and o.get("update_time")
    ]
    rows = sorted(
        (
            {"item": kind, "id": record["id"], "data": record}
            for kind, record in found
            if datetime.strptime(record["update_time"], STAMP) > since
            or (api.recents_inclusive and datetime.strptime(record["update_time"], STAMP) == since)
        ),
        key=lambda row: row["data"]["update_time"],
    )
    answer = _page(rows, query, api.page_limit)
    shown = answer["data"] or []
    answer["additional_data"].update(
        since_timestamp=query["since_timestamp"],
        last_timestamp_on_page=shown[-1]["data"]["update_time"] if shown else None,
    )
    return 200, answer


@contextmanager
def fake_pipedrive() -> Iterator[FakePipedrive]:
    api = FakePipedrive()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    api.url = f"http://127.0.0.1:{server.server_port}/api"
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
