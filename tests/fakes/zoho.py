"""A local Zoho CRM on 127.0.0.1: its accounts server's token endpoint and the CRM API v2
calls Puente makes, with Zoho's payload shapes, auth and errors, keeping its own state.

Facts from Zoho's public documentation (CRM API v2 and the OAuth guide):
- POST <accounts>/oauth/v2/token, grant_type=refresh_token + client_id/client_secret →
  {"access_token", "expires_in": 3600, "api_domain", "token_type": "Bearer"}; a bad refresh
  token is answered 200 {"error": "invalid_code"}.
- API calls carry `Authorization: Zoho-oauthtoken <access token>`; a missing, unknown or
  expired one is 401 {"code": "INVALID_TOKEN", "status": "error", …}. Too many calls: 429.
- GET /crm/v2/org → {"org": [{"id", "company_name", …}]}.
- GET /crm/v2/{module}/{id} → {"data": [record]}; lookups are {"name", "id"}.
- GET /crm/v2/Deals/{id}/Products?page&per_page → {"data": [...], "info": {"per_page",
  "count", "page", "more_records"}}; none → 204.
- GET /crm/v2/Deals/search?criteria=((Closing_Date:greater_equal:YYYY-MM-DD))&page&per_page
  → {"data": [deal…], "info": {"per_page", "count", "page", "more_records"}}; nothing found →
  204 with no body; a criteria this fake does not know → 400 INVALID_QUERY.
- GET /crm/v2/Deals?sort_by=Modified_Time|Created_Time|id&sort_order=asc|desc&page&per_page,
  `fields=A,B` (only those and the id), with an optional `If-Modified-Since: <ISO 8601>`
  header (only the records modified after it)
  → {"data": [deal…], "info": {"per_page", "count", "page", "more_records"}}; nothing
  modified since → 304 with no body; no records at all → 204.
- GET /crm/v2/settings/pipeline?layout_id= → {"pipeline": [{"display_value", "maps": [{
  "display_value", "actual_value", "forecast_type": "Closed Won"|"Open"|"Closed Lost"}]}]}.
- PUT /crm/v2/Deals/{id} {"data": [{fields}]} and POST /crm/v2/Deals/{id}/Notes {"data": [{
  "Note_Title", "Note_Content"}]} → {"data": [{"code": "SUCCESS", "details": {"id", …},
  "status": "success"}]}.
- Accounts written from customers: GET /crm/v2/Accounts/search?criteria=((<field>:equals:
  <value>)) (the value's parentheses, commas and backslashes escaped with a backslash) →
  {"data": [account…], "info"}, nothing found → 204 with no body, a field the module lacks
  → 400 INVALID_QUERY; POST /crm/v2/Accounts {"data": [{fields}]} → 201 {"data": [{"code":
  "SUCCESS", "details": {"id", "Created_Time", …}, "message": "record added", "status":
  "success"}]}, no Account_Name → 400 with the record's {"code": "MANDATORY_NOT_FOUND",
  "status": "error"}; PUT /crm/v2/Accounts/{id} as for deals. `reject_next` scripts a
  record-level error ({"status": "error"} in "data", answered 202).
- POST / PATCH /crm/v2/actions/watch {"watch": [{"channel_id", "events", "notify_url",
  "token" (≤ 50 characters), "channel_expiry" (≤ a day ahead, else one hour)}]};
  DELETE /crm/v2/actions/watch?channel_ids=1,2.
- A notification: {"server_time" (ms), "query_params", "module", "resource_uri", "ids",
  "affected_fields": [{"<id>": ["Stage", …]}], "operation", "channel_id", "token"}.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ORG_ID = "20061234567"
LAYOUT_ID = "5725767000000091023"
CLIENT_ID = "1000.PUENTETESTCLIENT"
CLIENT_SECRET = "zoho-client-secret"
REFRESH_TOKEN = "1000.refresh.token"
EQUALS = re.compile(r"^\(\((\w+):equals:((?:[^\\(),]|\\.)*)\)\)$")
CLOSED_SINCE = re.compile(r"^\(?\(Closing_Date:greater_equal:(\d{4}-\d{2}-\d{2})\)\)?$")


def standard_pipeline() -> list[dict[str, Any]]:
    stages = [
        ("Qualification", "Open"),
        ("Negotiation/Review", "Open"),
        ("Cerrado ganado", "Closed Won"),
        ("Closed Lost", "Closed Lost"),
    ]
    return [
        {
            "display_value": "Standard (Standard)",
            "actual_value": "Standard (Standard)",
            "default": True,
            "id": "5725767000003097001",
            "maps": [
                {
                    "display_value": name,
                    "actual_value": name,
                    "sequence_number": n,
                    "forecast_type": kind,
                    "id": f"57257670000000068{n:02d}",
                }
                for n, (name, kind) in enumerate(stages, 1)
            ],
        }
    ]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeZoho:
    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    tokens: dict[str, float] = field(default_factory=dict)  # access token → expiry (epoch)
    tokens_issued: int = 0
    deals: dict[str, dict[str, Any]] = field(default_factory=dict)
    products: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # related list
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    pipelines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    per_page_max: int = 200
    clock: datetime | None = None  # the last Modified_Time handed out (whole seconds)
    # (method, path fragment, status, headers): the next matching call gets that answer.
    faults: list[tuple[str, str, int, dict[str, str]]] = field(default_factory=list)
    # (code, message): the next record written is refused with it, record by record.
    rejections: list[tuple[str, str]] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(5725767000001300001))
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def accounts_url(self) -> str:
        return self.url  # the accounts server is this same fake, at /oauth/v2/token

    def new_id(self) -> str:
        return str(next(self._ids))

    def fail_next(self, method: str, fragment: str, status: int, **headers: str) -> None:
        self.faults.append((method, fragment, status, headers))

    def reject_next(self, code: str, message: str) -> None:
        self.rejections.append((code, message))

    def expire_tokens(self) -> None:
        """Every access token handed out stops working (Zoho's last an hour)."""
        self.tokens.clear()

    def calls(self, method: str, fragment: str = "") -> list[Seen]:
        return [s for s in self.seen if s.method == method and fragment in s.path]

    def tick(self) -> str:
        """A Modified_Time for a change now (Zoho's: whole seconds, with the org's offset),
        later than any before it."""
        now = datetime.now(UTC).replace(microsecond=0)
        if self.clock is not None and now <= self.clock:
            now = self.clock + timedelta(seconds=1)
        self.clock = now
        return now.astimezone(timezone(timedelta(hours=1))).isoformat()

    def touch_deal(self, deal_id: str, **fields: Any) -> str:
        """A deal changed in Zoho's UI now: its fields and a new Modified_Time."""
        self.deals[deal_id].update(fields)
        self.deals[deal_id]["Modified_Time"] = self.tick()
        return str(self.deals[deal_id]["Modified_Time"])

    # Test data

    def add_account(self, name: str, nif: str | None, **fields: Any) -> str:
        account_id = self.new_id()
        self.accounts[account_id] = {
            "id": account_id,
            "Account_Name": name,
            "NIF": nif,
            "Billing_Street": "Calle Mayor 1",
            "Billing_Code": "28013",
            "Billing_City": "Madrid",
            "Billing_State": "Madrid",
            "Billing_Country": "España",
            **fields,
        }
        return account_id

    def add_deal(self, name: str, stage: str, account_id: str | None, **fields: Any) -> str:
        deal_id = self.new_id()
        account = self.accounts.get(account_id or "")
        self.deals[deal_id] = {
            "id": deal_id,
            "Deal_Name": name,
            "Stage": stage,
            "Closing_Date": "2026-11-27",
            "Amount": 2480.5,
            "Currency": "EUR",
            "Account_Name": {"name": account["Account_Name"], "id": account_id}
            if account
            else None,
            "Owner": {
                "name": "Lucía Pérez",
                "id": "5725767000000415001",
                "email": "lucia@example.com",
            },
            "Layout": {"name": "Standard", "id": LAYOUT_ID},
            "Pipeline": "Standard (Standard)",
            "Modified_Time": "2026-11-27T10:15:00+01:00",
            **fields,
        }
        return deal_id

    def add_product(
        self,
        deal_id: str,
        code: str,
        name: str,
        quantity: float,
        list_price: float,
        discount: float = 0,
    ) -> None:
        self.products.setdefault(deal_id, []).append(
            {
                "id": self.new_id(),
                "Product_Name": name,
                "Product_Code": code,
                "Unit_Price": list_price,
                "list_price": list_price,
                "quantity": quantity,
                "Discount": discount,
                "total": round(quantity * list_price, 2),
            }
        )

    def notification(
        self,
        channel_id: str,
        token: str,
        ids: list[str],
        fields: list[str] | None = None,
        operation: str = "update",
        module: str = "Deals",
        server_time: int | None = None,
    ) -> dict[str, Any]:
        """What Zoho posts to a channel's notify_url."""
        return {
            "server_time": server_time if server_time is not None else int(time.time() * 1000),
            "query_params": {},
            "module": module,
            "resource_uri": f"{self.url}/crm/v2/{module}",
            "ids": ids,
            "affected_fields": [{i: fields or ["Stage"]} for i in ids],
            "operation": operation,
            "channel_id": channel_id,
            "token": token,
        }


def _error(code: str, message: str, status: str = "error", **details: Any) -> dict[str, Any]:
    return {"code": code, "details": details, "message": message, "status": status}


def _handler(zoho: FakeZoho) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None):
            raw = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length) if length else b""
            ctype = self.headers.get("Content-Type", "")
            if "form" in ctype:
                body: Any = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            else:
                body = json.loads(raw) if raw else None
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            with zoho.lock:
                zoho.seen.append(Seen(self.command, self.path, dict(self.headers.items()), body))
                for fault in zoho.faults:
                    method, fragment, status, headers = fault
                    if method == self.command and fragment in self.path:
                        zoho.faults.remove(fault)
                        return self._send(status, _error("TOO_MANY_REQUESTS", "fault"), headers)
                if parts.path == "/oauth/v2/token" and self.command == "POST":
                    return self._token(body or {})
                if not parts.path.startswith("/crm/v2/"):
                    return self._send(404, _error("INVALID_URL_PATTERN", "no such API"))
                if not self._authorized():
                    return self._send(401, _error("INVALID_TOKEN", "invalid oauth token"))
                self._api(parts.path.removeprefix("/crm/v2/").strip("/").split("/"), query, body)

        def _authorized(self) -> bool:
            scheme, _, token = self.headers.get("Authorization", "").partition(" ")
            expires = zoho.tokens.get(token)
            return scheme == "Zoho-oauthtoken" and expires is not None and expires > time.time()

        def _token(self, form: dict[str, str]) -> None:
            good = (
                form.get("grant_type") == "refresh_token"
                and form.get("refresh_token") == REFRESH_TOKEN
                and form.get("client_id") == CLIENT_ID
                and form.get("client_secret") == CLIENT_SECRET
            )
            if not good:
                return self._send(200, {"error": "invalid_code"})  # Zoho answers 200
            token = f"1000.{secrets.token_hex(16)}"
            zoho.tokens[token] = time.time() + 3600
            zoho.tokens_issued += 1
            self._send(
                200,
                {
                    "access_token": token,
                    "expires_in": 3600,
                    "api_domain": zoho.url,
                    "token_type": "Bearer",
                },
            )

        def _api(self, path: list[str], query: dict[str, str], body: Any) -> None:
            method = self.command
            if path == ["org"] and method == "GET":
                return self._send(200, {"org": [{"id": ORG_ID, "company_name": "Acme Demo"}]})
            if path == ["settings", "pipeline"] and method == "GET":
                return self._pipeline(query)
            if path == ["actions", "watch"]:
                return self._watch(method, query, body)
            if path == ["Deals", "search"] and method == "GET":
                return self._search(query)
            if path == ["Deals"] and method == "GET":
                return self._list(query)
            if path == ["Accounts", "search"] and method == "GET":
                return self._accounts_search(query)
            if path == ["Accounts"] and method == "POST":
                return self._new_account(body)
            if path[:1] == ["Accounts"] and method in ("POST", "PUT") and zoho.rejections:
                code, message = zoho.rejections.pop(0)
                return self._send(202, {"data": [_error(code, message)]})
            module, record = [*path, ""][:2]
            if module == "Deals" and len(path) == 3 and path[2] == "Products":
                return self._products(record, query)
            if module == "Deals" and len(path) == 3 and path[2] == "Notes" and method == "POST":
                return self._note(record, body)
            store = {"Deals": zoho.deals, "Accounts": zoho.accounts}.get(module)
            if store is None or len(path) != 2:
                return self._send(404, _error("INVALID_URL_PATTERN", "no such API"))
            if record not in store:
                return self._send(204)
            if method == "GET":
                return self._send(200, {"data": [store[record]]})
            if method == "PUT":
                data = (body or {}).get("data")
                if not isinstance(data, list) or len(data) != 1:
                    return self._send(400, _error("INVALID_DATA", "data is not a list of one"))
                store[record].update(data[0])
                store[record]["Modified_Time"] = zoho.tick()
                details = {"Modified_Time": store[record]["Modified_Time"], "id": record}
                return self._send(
                    200, {"data": [_error("SUCCESS", "record updated", "success", **details)]}
                )
            return self._send(405, _error("INVALID_REQUEST_METHOD", "method not allowed"))

        def _pipeline(self, query: dict[str, str]) -> None:
            layout = query.get("layout_id")
            if not layout:
                return self._send(400, _error("REQUIRED_PARAM_MISSING", "layout_id"))
            if layout not in zoho.pipelines:
                return self._send(400, _error("INVALID_DATA", "Invalid layoutid"))
            self._send(200, {"pipeline": zoho.pipelines[layout]})

        def _search(self, query: dict[str, str]) -> None:
            """The deals closing on or after a day, in pages; 204 when there are none."""
            match = CLOSED_SINCE.match(query.get("criteria", ""))
            if match is None:
                return self._send(400, _error("INVALID_QUERY", "invalid criteria"))
            found = [
                deal
                for deal in zoho.deals.values()
                if str(deal.get("Closing_Date") or "") >= match.group(1)
            ]
            page = int(query.get("page", 1))
            per_page = min(int(query.get("per_page", 200)), zoho.per_page_max)
            chunk = found[(page - 1) * per_page : page * per_page]
            if not chunk:
                return self._send(204)
            more = page * per_page < len(found)
            info = {"per_page": per_page, "count": len(chunk), "page": page, "more_records": more}
            self._send(200, {"data": chunk, "info": info})

        def _accounts_search(self, query: dict[str, str]) -> None:
            """The accounts whose field equals the (unescaped) value; 204 when none."""
            match = EQUALS.match(query.get("criteria", ""))
            if match is None:
                return self._send(400, _error("INVALID_QUERY", "invalid query formed"))
            name, value = match.group(1), re.sub(r"\\(.)", r"\1", match.group(2))
            known = {"id", "Account_Name", "NIF", "Email", "Billing_City", "Billing_Code"}
            if name not in known:
                return self._send(
                    400, _error("INVALID_QUERY", "invalid query formed", api_name=name)
                )
            found = [a for a in zoho.accounts.values() if str(a.get(name) or "") == value]
            if not found:
                return self._send(204)
            info = {"per_page": 200, "count": len(found), "page": 1, "more_records": False}
            self._send(200, {"data": found[:200], "info": info})

        def _new_account(self, body: Any) -> None:
            data = (body or {}).get("data")
            if not isinstance(data, list) or len(data) != 1:
                return self._send(400, _error("INVALID_DATA", "data is not a list of one"))
            if zoho.rejections:
                code, message = zoho.rejections.pop(0)
                return self._send(202, {"data": [_error(code, message)]})
            if not data[0].get("Account_Name"):
                refused = _error(
                    "MANDATORY_NOT_FOUND", "required field not found", api_name="Account_Name"
                )
                return self._send(400, {"data": [refused]})
            account_id = zoho.new_id()
            stamp = zoho.tick()
            zoho.accounts[account_id] = {"id": account_id, **data[0], "Modified_Time": stamp}
            details = {"Modified_Time": stamp, "Created_Time": stamp, "id": account_id}
            self._send(201, {"data": [_error("SUCCESS", "record added", "success", **details)]})

        def _list(self, query: dict[str, str]) -> None:
            """The deals, sorted, in pages; with If-Modified-Since, those modified after it."""
            sort_by = query.get("sort_by", "id")
            if sort_by not in ("id", "Created_Time", "Modified_Time"):
                return self._send(400, _error("INVALID_DATA", "invalid sort_by"))
            if query.get("sort_order", "desc") not in ("asc", "desc"):
                return self._send(400, _error("INVALID_DATA", "invalid sort_order"))
            if not zoho.deals:
                return self._send(204)
            found = list(zoho.deals.values())
            since = self.headers.get("If-Modified-Since")
            if since:
                try:
                    after = datetime.fromisoformat(since)
                except ValueError:
                    return self._send(400, _error("INVALID_DATA", "If-Modified-Since"))
                if after.tzinfo is None:
                    return self._send(400, _error("INVALID_DATA", "If-Modified-Since"))
                found = [d for d in found if datetime.fromisoformat(d["Modified_Time"]) > after]
                if not found:
                    return self._send(304)
            if sort_by == "id":
                found.sort(key=lambda d: int(d["id"]))
            else:
                found.sort(
                    key=lambda d: datetime.fromisoformat(d.get(sort_by) or d["Modified_Time"])
                )
            if query.get("sort_order", "desc") == "desc":
                found.reverse()
            page = int(query.get("page", 1))
            per_page = min(int(query.get("per_page", 200)), zoho.per_page_max)
            chunk = found[(page - 1) * per_page : page * per_page]
            if not chunk:
                return self._send(204)
            if query.get("fields"):  # only the fields asked for, and the id
                names = {"id", *query["fields"].split(",")}
                chunk = [{k: v for k, v in d.items() if k in names} for d in chunk]
            more = page * per_page < len(found)
            info = {"per_page": per_page, "count": len(chunk), "page": page, "more_records": more}
            self._send(200, {"data": chunk, "info": info})

        def _products(self, deal_id: str, query: dict[str, str]) -> None:
            items = zoho.products.get(deal_id, [])
            page = int(query.get("page", 1))
            per_page = min(int(query.get("per_page", 200)), zoho.per_page_max)
            chunk = items[(page - 1) * per_page : page * per_page]
            if not chunk:
                return self._send(204)
            more = page * per_page < len(items)
            info = {"per_page": per_page, "count": len(chunk), "page": page, "more_records": more}
            self._send(200, {"data": chunk, "info": info})

        def _note(self, deal_id: str, body: Any) -> None:
            if deal_id not in zoho.deals:
                return self._send(400, _error("INVALID_DATA", "the related id is invalid"))
            note = ((body or {}).get("data") or [{}])[0]
            if not note.get("Note_Content"):
                return self._send(400, _error("MANDATORY_NOT_FOUND", "Note_Content"))
            note_id = zoho.new_id()
            zoho.notes.setdefault(deal_id, []).append({"id": note_id, **note})
            self._send(201, {"data": [_error("SUCCESS", "record added", "success", id=note_id)]})

        def _watch(self, method: str, query: dict[str, str], body: Any) -> None:
            if method == "DELETE":
                ids = [i for i in query.get("channel_ids", "").split(",") if i]
                if not ids:
                    return self._send(400, _error("REQUIRED_PARAM_MISSING", "channel_ids"))
                done = []
                for channel_id in ids:
                    zoho.channels.pop(channel_id, None)
                    done.append(
                        _error(
                            "SUCCESS",
                            "Successfully un-subscribed from actions-watch",
                            "success",
                            channel_id=channel_id,
                        )
                    )
                return self._send(200, {"watch": done})
            entries = (body or {}).get("watch")
            if method not in ("POST", "PATCH") or not isinstance(entries, list):
                return self._send(400, _error("INVALID_DATA", "watch is a list"))
            results = [self._channel(method, entry) for entry in entries]
            ok = all(r["status"] == "success" for r in results)
            self._send(200 if ok else 400, {"watch": results})

        def _channel(self, method: str, entry: dict[str, Any]) -> dict[str, Any]:
            channel_id = str(entry.get("channel_id") or "")
            if not channel_id.isdigit():
                return _error("INVALID_DATA", "channel_id must be a long", api_name="channel_id")
            if len(str(entry.get("token") or "")) > 50:
                return _error("INVALID_DATA", "token is longer than 50", api_name="token")
            now = datetime.now(UTC)
            asked = entry.get("channel_expiry")
            expiry = datetime.fromisoformat(asked) if asked else now + timedelta(hours=1)
            if expiry > now + timedelta(days=1):
                expiry = now + timedelta(hours=1)  # Zoho's default when asked for more
            if method == "PATCH":
                if channel_id not in zoho.channels:
                    return _error("INVALID_DATA", "no such channel", api_name="channel_id")
                zoho.channels[channel_id].update(
                    {k: v for k, v in entry.items() if k != "channel_expiry"}
                )
            else:
                if not entry.get("notify_url") or not entry.get("events"):
                    return _error("MANDATORY_NOT_FOUND", "notify_url and events are required")
                zoho.channels[channel_id] = dict(entry)
            zoho.channels[channel_id]["channel_expiry"] = expiry.isoformat()
            events = [
                {
                    "channel_expiry": expiry.isoformat(),
                    "resource_uri": f"{zoho.url}/crm/v2/Deals",
                    "resource_id": "5725767000000002181",
                    "resource_name": "Deals",
                    "channel_id": channel_id,
                }
            ]
            subscribed = "Successfully subscribed for actions-watch of the given module"
            return _error("SUCCESS", subscribed, "success", events=events)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    return Handler


@contextmanager
def fake_zoho() -> Iterator[FakeZoho]:
    zoho = FakeZoho()
    zoho.pipelines[LAYOUT_ID] = standard_pipeline()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(zoho))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    zoho.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield zoho
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
