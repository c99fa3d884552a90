"""A tour of the whole API as a developer walks it: keys, catalog, customers, invoices from
draft to paid (and cancelled, rectified, mailed), quotes to invoices, the CRM, flows, push
triggers, runs and replays, connections, templates, REST hooks, events and reports.

Each step's status is asserted, and every answer is checked against the OpenAPI document
(tests/openapi_check.py). At the end, every documented operation must have answered the tour
with a success: a newly documented route without a step here makes this test fail."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from connector.runtime import Runtime
from connector.settings import Settings
from invoicing.models import VerifactuRecord
from invoicing.settings import InvoicingSettings
from tests.conftest import drain
from tests.factories import ISSUER, deal, make_api_key
from tests.fake_api import fake_api
from tests.openapi_check import ANSWERED
from tests.smtp import SmtpServer
from tests.web.test_rest_hooks import Receiver, deliver
from web.demo import DEMO_FLOW

SENDER = "facturas@puente.example"
CUSTOMER = deal()["customer"]  # Acme Soluciones SL, B12345674, facturas@acme.example
ALL_SCOPES = ["read", "write", "admin"]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Outbound HTTP may reach 127.0.0.1: the fake API and the REST hook receiver."""
    return settings.with_(http_allow="127.0.0.1")


@pytest.fixture
def invoicing_settings(smtp: SmtpServer) -> InvoicingSettings:
    """Invoices are mailed through the local test server."""
    return smtp.invoicing_settings()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


class Api:
    """The test client with one API key, paths relative to /api/v1."""

    def __init__(self, client: FlaskClient, key: str) -> None:
        self.client, self.key = client, key

    def call(self, method: str, path: str, **kwargs: Any) -> TestResponse:
        headers = {"Authorization": f"Bearer {self.key}", **kwargs.pop("headers", {})}
        return self.client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> TestResponse:
        return self.call("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> TestResponse:
        return self.call("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> TestResponse:
        return self.call("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> TestResponse:
        return self.call("DELETE", path, **kwargs)


def ok(answer: TestResponse, status: int) -> Any:
    """The answer's JSON body (None for a file or no content), once its status is `status`."""
    request = answer.request
    assert answer.status_code == status, (
        f"{request.method} {request.path} answered {answer.status_code}, not {status}: "
        f"{answer.get_data(as_text=True)[:1000]}"
    )
    return answer.json if answer.is_json else None


def file(answer: TestResponse, mimetype: str) -> bytes:
    """The downloaded file's bytes, once it answered 200 with `mimetype`."""
    ok(answer, 200)
    assert answer.mimetype == mimetype, (answer.request.path, answer.mimetype)
    return answer.data


def lines_of_deal() -> dict[str, Any]:
    """The sample deal's lines, as a draft's body takes them."""
    return {"lines": copy.deepcopy(deal()["lines"])}


def got(method: str, path: str) -> str:
    """The statuses an operation answered, for the final message."""
    return ", ".join(str(s) for m, p, s in sorted(ANSWERED) if (m, p) == (method, path))


def test_every_documented_operation_answers_as_documented(
    rt: Runtime, client: FlaskClient, smtp: SmtpServer, receiver: Receiver, verifactu_mode: str
) -> None:
    ANSWERED.clear()  # only this test's answers count

    # --- the document itself, open to anyone ------------------------------------------------------
    spec = ok(client.get("/api/v1/openapi.json"), 200)
    assert spec["openapi"] == "3.1.0"
    documented = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    assert len(documented) > 70

    # --- API keys: the first one made outside, the tour's own with every scope --------------------
    bootstrap = Api(client, make_api_key(rt, "bootstrap"))
    made = ok(bootstrap.post("/api-keys", json={"name": "tour", "scopes": ALL_SCOPES}), 201)
    assert made["key"].startswith("pk_") and made["scopes"] == ALL_SCOPES
    api = Api(client, made["key"])

    # --- our company ------------------------------------------------------------------------------
    issuer = ok(api.put("/issuer", json=ISSUER), 200)
    assert issuer["tax_id"] == ISSUER["tax_id"]
    assert {s["code"] for s in issuer["series"]} == {"F", "R", "S"}
    assert ok(api.get("/issuer"), 200) == issuer

    # --- REST hook: subscribed before anything happens, to get the payment ------------------------
    hook = ok(
        api.post("/webhooks", json={"event": "invoice.paid", "target_url": receiver.url("/paid")}),
        201,
    )
    assert hook["secret"].startswith("whsec_") and hook["active"] is True

    # --- catalog: a product and a CRM's code for it -----------------------------------------------
    product = ok(
        api.post(
            "/products",
            json={
                "sku": "CONS-H",
                "name": "Consultoría (hora)",
                "unit_price": "95",
                "tax_rate": 21,
            },
        ),
        201,
    )
    listed = ok(api.get("/products?sku=CONS-H"), 200)
    assert [p["id"] for p in listed["items"]] == [product["id"]]
    assert ok(api.get(f"/products/{product['id']}"), 200)["sku"] == "CONS-H"
    mapping = {"source": "hubspot", "external_code": "PRD-77", "sku": "CONS-H"}
    assert ok(api.post("/sku-mappings", json=mapping), 201) == mapping
    assert ok(api.post("/sku-mappings", json=mapping), 200) == mapping  # mapped already
    assert ok(api.get("/sku-mappings?source=hubspot"), 200)["items"] == [mapping]

    # --- a customer -------------------------------------------------------------------------------
    customer = ok(api.post("/customers", json=CUSTOMER), 201)
    assert customer["created"] is True and customer["tax_id"] == "B12345674"
    found = ok(api.get("/customers?tax_id=B12345674"), 200)
    assert [c["id"] for c in found["items"]] == [customer["id"]]
    assert ok(api.get(f"/customers/{customer['id']}"), 200)["name"] == CUSTOMER["name"]
    patched = ok(api.patch(f"/customers/{customer['id']}", json={"payment_days": 30}), 200)
    assert patched["payment_days"] == 30

    # --- an invoice: draft (by the CRM's code), edit, issue, pay, files, mail ---------------------
    draft = ok(
        api.post(
            "/invoices",
            json={
                "customer_id": customer["id"],
                "source": "hubspot",
                "lines": [{"sku": "PRD-77", "quantity": 3}],
            },
        ),
        201,
    )
    invoice_id = draft["id"]
    assert draft["lines"][0]["sku"] == "CONS-H" and draft["totals"]["total"] == "344.85"
    listed = ok(api.get("/invoices?status=draft"), 200)
    assert invoice_id in [i["id"] for i in listed["items"]]
    edited = ok(api.patch(f"/invoices/{invoice_id}", json={"notes": "Marzo"}), 200)
    assert edited["notes"] == "Marzo"
    assert ok(api.get(f"/invoices/{invoice_id}"), 200)["notes"] == "Marzo"
    assert file(api.get(f"/invoices/{invoice_id}/pdf"), "application/pdf").startswith(b"%PDF")
    issued = ok(api.post(f"/invoices/{invoice_id}/issue", json={}), 200)
    assert issued["status"] == "issued" and issued["number"]
    assert issued["verifactu"]["huella"] and issued["due_date"]  # 30 days of payment
    paid = ok(
        api.post(
            f"/invoices/{invoice_id}/payments",
            json={"amount": issued["totals"]["outstanding"], "method": "transfer"},
            headers={"Idempotency-Key": "tour-pay-1"},
        ),
        201,
    )
    assert paid["status"] == "paid" and paid["payment_id"]
    facturae = file(api.get(f"/invoices/{invoice_id}/facturae.xml"), "application/xml")
    assert b"B12345674" in facturae
    alta = file(api.get(f"/invoices/{invoice_id}/verifactu.xml"), "application/xml")
    assert issued["number"].encode() in alta
    assert file(api.get(f"/invoices/{invoice_id}/qr.png"), "image/png").startswith(b"\x89PNG")
    assert b"<svg" in file(api.get(f"/invoices/{invoice_id}/qr.svg"), "image/svg+xml")
    sent = ok(api.post(f"/invoices/{invoice_id}/send", json={}), 200)
    assert sent["status"] == "sent" and sent["to"] == CUSTOMER["email"]
    assert [m.rcpt_tos for m in smtp.inbox.messages] == [[CUSTOMER["email"]]]

    # --- an invoice issued in error is cancelled; the paid one is rectified -----------------------
    wrong = ok(api.post("/invoices", json={"customer_id": customer["id"], **lines_of_deal()}), 201)
    ok(api.post(f"/invoices/{wrong['id']}/issue"), 200)  # no body: today, series F
    cancelled = ok(
        api.post(f"/invoices/{wrong['id']}/cancel", json={"reason": "emitida por error"}), 200
    )
    assert cancelled["status"] == "cancelled" and cancelled["cancelled_at"]
    anulacion = file(api.get(f"/invoices/{wrong['id']}/verifactu-anulacion.xml"), "application/xml")
    assert b"RegistroAnulacion" in anulacion
    rectifying = ok(
        api.post(
            f"/invoices/{invoice_id}/rectify",
            json={"invoice_type": "R1", "method": "S", "reason": "precio mal aplicado"},
        ),
        201,
    )
    assert (rectifying["invoice_type"], rectifying["rectifies"]) == ("R1", invoice_id)
    assert ok(api.post(f"/invoices/{rectifying['id']}/issue", json={}), 200)["number"]
    chain = ok(api.get(f"/verifactu/records?issuer={ISSUER['tax_id']}"), 200)
    # alta of the paid one, alta and anulación of the wrong one, alta of the rectifying one
    assert [r["kind"] for r in chain["items"]] == ["alta", "alta", "anulacion", "alta"]
    # The AEAT refuses the rectifying invoice's record (as aeat.submit_pending stores it; the
    # exchange itself is tests/invoicing/test_aeat.py's): it is listed and corrected.
    refused_id = chain["items"][-1]["id"]
    with rt.sessions.begin() as s:
        record = s.get_one(VerifactuRecord, refused_id)
        record.status, record.error_code = "rejected", 4109
        record.error_description = "El NIF no está identificado en el censo de la AEAT."
    rejected = ok(api.get("/verifactu/records?status=rejected"), 200)
    assert [r["id"] for r in rejected["items"]] == [refused_id]
    fix = ok(api.post(f"/verifactu/records/{refused_id}/correct"), 201)
    assert (fix["corrects"], fix["rechazo_previo"], fix["status"]) == (refused_id, "S", "pending")
    events = ok(api.get("/verifactu/events"), 200)
    assert events["intact"] is True
    assert {e["kind"] for e in events["items"]} >= {"record_export", "event_export"}

    # --- quote → order → delivery note → invoice --------------------------------------------------
    quote = ok(api.post("/quotes", json={"customer_id": customer["id"], **lines_of_deal()}), 201)
    assert quote["kind"] == "quote" and quote["created"] is True
    ok(api.patch(f"/quotes/{quote['id']}", json={"notes": "Válido 30 días"}), 200)
    assert quote["id"] in [q["id"] for q in ok(api.get("/quotes"), 200)["items"]]
    shown = ok(api.get(f"/quotes/{quote['id']}"), 200)
    assert set(shown["remaining"]) == {"order", "invoice"}
    order = ok(api.post(f"/quotes/{quote['id']}/convert", json={"to": "order"}), 201)
    assert (order["kind"], order["converted_from"]) == ("order", quote["id"])
    note = ok(api.post(f"/orders/{order['id']}/convert", json={"to": "delivery_note"}), 201)
    assert ok(api.get(f"/delivery-notes/{note['id']}"), 200)["kind"] == "delivery_note"
    billed = ok(
        api.post("/invoices/from-delivery-notes", json={"delivery_note_ids": [note["id"]]}), 201
    )
    assert billed["kind"] == "invoice" and billed["status"] == "draft"

    # --- the built-in CRM: company, contact, opportunity moved, won, converted --------------------
    company = ok(
        api.post(
            "/crm/companies",
            json={"name": "Talleres Ebro SA", **{k: v for k, v in ISSUER.items() if k != "name"}},
        ),
        201,
    )
    assert company["id"] in [c["id"] for c in ok(api.get("/crm/companies"), 200)["items"]]
    contact = ok(
        api.post(f"/crm/companies/{company['id']}/contacts", json={"name": "Ana Ruiz"}), 201
    )
    opportunity = ok(
        api.post(
            "/crm/opportunities",
            json={
                "title": "Formación de usuarios",
                "company_id": company["id"],
                "contact_id": contact["id"],
                "owner_name": "Lucía Pérez",
                "campaign": "Feria Madrid 2026",
                "lines": [{"description": "Formación (días)", "quantity": 3, "unit_price": "450"}],
            },
        ),
        201,
    )
    opp_path = f"/crm/opportunities/{opportunity['id']}"
    moved = ok(api.post(f"{opp_path}/stage", json={"stage": "propuesta"}), 200)
    assert moved["stage"] == "propuesta"
    assert ok(api.post(f"{opp_path}/won"), 200)["won_at"]
    listed = ok(api.get("/crm/opportunities?stage=ganada"), 200)
    assert [o["id"] for o in listed["items"]] == [opportunity["id"]]
    crm_quote = ok(api.post(f"{opp_path}/convert", json={"to": "quote"}), 201)
    assert ok(api.get(opp_path), 200)["documents"] == [crm_quote]

    # --- flows: check, create, change, switch, versions, export/import, dry runs ------------------
    checked = ok(api.post("/flows/check", json={"document": DEMO_FLOW}), 200)
    assert checked["ok"] is True
    flow = ok(api.post("/flows", json={"document": DEMO_FLOW, "enabled": True}), 201)
    flow_path = f"/flows/{flow['id']}"
    assert flow["enabled"] is True and flow["webhook_secret"].startswith("whsec_")
    assert flow["id"] in [f["id"] for f in ok(api.get("/flows"), 200)["items"]]
    assert ok(api.get(flow_path), 200)["check"]["ok"] is True
    renamed = {**DEMO_FLOW, "name": "Ganada → borrador (v2)"}
    assert ok(api.put(flow_path, json={"document": renamed}), 200)["version"] == 2
    assert ok(api.post(f"{flow_path}/disable"), 200)["enabled"] is False
    assert ok(api.post(f"{flow_path}/enable"), 200)["enabled"] is True
    versions = ok(api.get(f"{flow_path}/versions"), 200)["items"]
    assert [v["version"] for v in versions] == [2, 1]
    exported = ok(api.get(f"{flow_path}/export"), 200)
    assert exported["format"] == "puente.flow/1" and "whsec_" not in str(exported)
    imported = ok(api.post("/flows/import", json=exported), 201)
    assert imported["enabled"] is False and imported["id"] != flow["id"]
    dry = ok(api.post("/flows/dry-run", json={"document": DEMO_FLOW, "trigger": deal()}), 200)
    assert dry["status"] == "succeeded", dry
    dry = ok(api.post(f"{flow_path}/dry-run", json={"until": "deal"}), 200)
    assert dry["status"] == "succeeded"
    assert [(s["id"], s["status"]) for s in dry["steps"]] == [("deal", "succeeded")]

    # --- starting flows: by hand, and by a push trigger (with an Idempotency-Key) -----------------
    by_hand = ok(api.post(f"{flow_path}/trigger", json=deal(deal_id="D-HAND")), 202)
    assert len(by_hand["run_ids"]) == 1 and by_hand["duplicate"] is False
    pushed_flow = {
        **DEMO_FLOW,
        "name": "Push: ganada → borrador",
        "trigger": {"key": "api.deal_won"},
    }
    ok(api.post("/flows", json={"document": pushed_flow, "enabled": True}), 201)
    once = {"Idempotency-Key": "tour-deal-1"}
    push = deal(deal_id="D-PUSH")
    pushed = ok(api.post("/triggers/deal_won/events", json=push, headers=once), 202)
    again = ok(api.post("/triggers/deal_won/events", json=push, headers=once), 200)
    assert again["duplicate"] is True and again["run_ids"] == pushed["run_ids"]
    # a flow that fails for good: it issues an invoice that does not exist
    failing_flow = {
        "name": "Cliente → emitir una factura que no existe",
        "trigger": {"key": "api.customer_created"},
        "steps": [
            {"id": "issue", "action": "invoicing.issue_invoice", "input": {"invoice_id": 999999}}
        ],
    }
    failing = ok(api.post("/flows", json={"document": failing_flow, "enabled": True}), 201)
    failed = ok(api.post("/triggers/customer_created/events", json={"customer": CUSTOMER}), 202)
    drain(rt)

    # --- runs: list, detail, replay one, replay the failed ones -----------------------------------
    runs = ok(api.get("/runs"), 200)
    assert runs["total"] == 3
    statuses = {r["id"]: r["status"] for r in runs["items"]}
    [failed_run] = failed["run_ids"]
    assert statuses == {
        by_hand["run_ids"][0]: "succeeded",
        pushed["run_ids"][0]: "succeeded",
        failed_run: "failed",
    }
    detail = ok(api.get(f"/runs/{by_hand['run_ids'][0]}"), 200)
    assert detail["trigger"]["deal_id"] == "D-HAND"
    assert [s["status"] for s in detail["steps"]] == ["succeeded", "succeeded"]
    replayed = ok(api.post(f"/runs/{failed_run}/replay", json={}), 202)
    assert replayed["status"] == "queued" and replayed["replays"] == 1
    drain(rt)
    bulk = ok(api.post("/runs/replay", json={"status": "failed", "flow_id": failing["id"]}), 202)
    assert bulk["replayed"] == [failed_run]
    drain(rt)
    assert ok(api.get(f"/runs/{failed_run}"), 200)["replays"] == 2

    # --- connections: saved, listed, shown without the secret, tested on a local API --------------
    with fake_api() as remote:
        saved = ok(
            api.put(
                "/connections/erp",
                json={"base_url": remote.url, "auth": "bearer", "secret": {"token": "s3cr3t"}},
            ),
            200,
        )
        assert saved["has_secret"] is True and "s3cr3t" not in str(saved)
        assert [c["name"] for c in ok(api.get("/connections"), 200)["items"]] == ["erp"]
        assert ok(api.get("/connections/erp"), 200) == saved
        tested = ok(api.post("/connections/erp/test"), 200)
        assert tested["ok"] is True, tested
        assert remote.seen[0].headers["Authorization"] == "Bearer s3cr3t"

    # --- templates --------------------------------------------------------------------------------
    templates = ok(api.get("/templates"), 200)["items"]
    assert "webhook.hours_to_invoice" in [t["key"] for t in templates]
    installed = ok(api.post("/templates/webhook.hours_to_invoice/install"), 201)
    assert installed["flow_id"] and installed["webhook_secret"].startswith("whsec_")

    # --- what happened: delivered to the REST hook, listed as events, in the reports --------------
    deliver(rt)
    [delivery] = ok(api.get(f"/webhooks/{hook['id']}/deliveries"), 200)["items"]
    assert (delivery["event_type"], delivery["status"]) == ("invoice.paid", "delivered")
    assert [body["data"]["invoice_id"] for _, body, _ in receiver.at("/paid")] == [invoice_id]
    assert [h["id"] for h in ok(api.get("/webhooks"), 200)["items"]] == [hook["id"]]
    assert ok(api.delete(f"/webhooks/{hook['id']}"), 204) is None
    paid_events = ok(api.get("/events?type=invoice.paid"), 200)["items"]
    assert [e["data"]["invoice_id"] for e in paid_events] == [invoice_id]
    assert {e["type"] for e in ok(api.get("/events?limit=100"), 200)["items"]} >= {
        "invoice.drafted",
        "invoice.issued",
        "invoice.paid",
        "invoice.cancelled",
        "run.failed",
    }
    summary = ok(api.get("/reports/summary", query_string={"since": "2026-01-01"}), 200)
    # the two deals the flows recorded (the CRM's opportunity has no flow on crm.deal_won)
    assert (summary["totals"]["won"], summary["totals"]["draft_pending"]) == (2, 2)
    never_billed = ok(api.get("/reports/never-billed"), 200)
    assert {d["external_ref"] for d in never_billed["items"]} == {"D-HAND", "D-PUSH"}

    # --- API keys: listed, and one revoked --------------------------------------------------------
    keys = ok(api.get("/api-keys"), 200)["items"]
    assert [k["name"] for k in keys] == ["bootstrap", "tour"]
    ok(api.delete(f"/api-keys/{keys[0]['id']}"), 204)
    assert bootstrap.get("/invoices").status_code == 401

    # --- every documented operation answered the tour with a success ------------------------------
    succeeded = {(method, path) for method, path, status in ANSWERED if 200 <= status < 300}
    missing = sorted(documented - succeeded)
    assert not missing, (
        "documented operations the tour did not reach with a success:\n"
        + "\n".join(
            f"  {method} {path} (answered: {got(method, path) or 'nothing'})"
            for method, path in missing
        )
    )
