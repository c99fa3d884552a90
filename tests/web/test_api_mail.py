"""POST /api/v1/invoices/<id>/send against a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from actions.invoicing import INVOICING_SETTINGS
from connector.runtime import Runtime, build_runtime
from invoicing import facturae
from invoicing.issuing import issue
from invoicing.models import InvoiceEmail
from invoicing.settings import InvoicingSettings
from tests.factories import deal, make_api_key, make_draft, make_issuer
from tests.smtp import SmtpServer, free_port
from web import create_app

SENDER = "facturas@puente.example"
CUSTOMER_EMAIL = "facturas@acme.example"


@pytest.fixture
def invoicing_settings(smtp: SmtpServer) -> InvoicingSettings:
    """The app of these tests mails through the test server."""
    return smtp.invoicing_settings()


@contextmanager
def client_with(rt: Runtime, **changes: Any) -> Iterator[FlaskClient]:
    """A client of an app whose invoicing settings differ (same database)."""
    changed = rt.services.get(INVOICING_SETTINGS).with_(**changes)
    other = build_runtime(rt.settings, services={INVOICING_SETTINGS: changed})
    try:
        yield create_app(runtime=other).test_client()
    finally:
        other.close()


def bearer(key: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **headers}


def issued_invoice(rt, **draft: Any) -> int:
    make_issuer(rt)
    invoice_id = make_draft(rt, **draft)
    with rt.sessions.begin() as s:
        issue(s, invoice_id)
    return invoice_id


def send(client: FlaskClient, key: str, invoice_id: int, body: Any = None, **headers: str):
    return client.post(
        f"/api/v1/invoices/{invoice_id}/send", json=body, headers=bearer(key, **headers)
    )


def emails(rt) -> list[tuple[str, str]]:
    with rt.sessions() as s:
        return [(e.status, e.to) for e in s.scalars(select(InvoiceEmail).order_by(InvoiceEmail.id))]


def test_sending_answers_what_was_sent(rt, client, smtp):
    key = make_api_key(rt)
    invoice_id = issued_invoice(rt)

    response = client.post(f"/api/v1/invoices/{invoice_id}/send", headers=bearer(key))

    assert response.status_code == 200, response.json
    body = response.json
    assert body["status"] == "sent" and body["to"] == CUSTOMER_EMAIL
    assert body["sent_at"] and body["invoice_id"] == invoice_id
    [received] = smtp.inbox.messages
    message = received.parsed()
    assert message["Message-ID"] == body["message_id"]
    assert message["Subject"].startswith("Factura F") and "Puente Demo SL" in message["Subject"]
    files = {part.get_filename(): part.get_content() for part in message.iter_attachments()}
    [pdf] = [v for k, v in files.items() if k and k.endswith(".pdf")]
    [xml] = [v for k, v in files.items() if k and k.endswith("-facturae.xml")]
    assert pdf.startswith(b"%PDF")
    facturae.validate(xml)
    assert emails(rt) == [("sent", CUSTOMER_EMAIL)]


def test_to_in_the_body_sends_elsewhere(rt, client, smtp):
    key = make_api_key(rt)
    invoice_id = issued_invoice(rt)

    response = send(client, key, invoice_id, {"to": "contabilidad@acme.example"})

    assert response.status_code == 200, response.json
    assert response.json["to"] == "contabilidad@acme.example"
    assert smtp.inbox.messages[0].rcpt_tos == ["contabilidad@acme.example"]


def test_the_same_idempotency_key_sends_once(rt, client, smtp):
    key = make_api_key(rt)
    invoice_id = issued_invoice(rt)

    first = send(client, key, invoice_id, {}, **{"Idempotency-Key": "send-1"})
    again = send(client, key, invoice_id, {}, **{"Idempotency-Key": "send-1"})

    assert first.status_code == again.status_code == 200
    assert again.json == first.json
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert len(smtp.inbox.messages) == 1
    assert emails(rt) == [("sent", CUSTOMER_EMAIL)]


def test_a_draft_answers_409(rt, client, smtp):
    key = make_api_key(rt)
    make_issuer(rt)
    draft = make_draft(rt)

    response = send(client, key, draft)

    assert response.status_code == 409
    assert "issue it first" in response.json["message"]
    assert smtp.inbox.messages == [] and emails(rt) == []


def test_an_unknown_invoice_answers_404(rt, client, smtp):
    key = make_api_key(rt)

    assert send(client, key, 999).status_code == 404


def test_a_quote_is_no_invoice_to_send_and_answers_404(rt, client, smtp):
    key = make_api_key(rt)
    quote = make_draft(rt, kind="quote")

    answer = send(client, key, quote)

    assert (answer.status_code, answer.json["error"]) == (404, "not_found")
    assert smtp.inbox.messages == [] and emails(rt) == []


def test_no_key_answers_401(rt, client, smtp):
    make_api_key(rt)
    invoice_id = issued_invoice(rt)

    response = client.post(f"/api/v1/invoices/{invoice_id}/send", json={})

    assert response.status_code == 401
    assert smtp.inbox.messages == []


def test_no_recipient_answers_422_on_to(rt, client, smtp):
    key = make_api_key(rt)
    customer = deal()["customer"]
    del customer["email"]
    invoice_id = issued_invoice(rt, customer=customer)

    response = send(client, key, invoice_id)

    assert response.status_code == 422
    assert response.json["field"] == "to" and "has no email" in response.json["message"]
    assert smtp.inbox.messages == [] and emails(rt) == []


@pytest.mark.parametrize(
    "to", ["not-an-address", "", 42, ["a@acme.example"], "a@acme.example\r\n", "a@acme.example\n"]
)
def test_an_invalid_to_answers_422(rt, client, smtp, to):
    key = make_api_key(rt)
    invoice_id = issued_invoice(rt)

    response = send(client, key, invoice_id, {"to": to})

    assert response.status_code == 422
    assert response.json["field"] == "to"
    assert smtp.inbox.messages == []


def test_a_refused_recipient_answers_502_and_the_failure_is_kept(rt, client, smtp):
    key = make_api_key(rt)
    invoice_id = issued_invoice(rt)
    smtp.inbox.refuse[CUSTOMER_EMAIL] = "550 5.1.1 mailbox unavailable"

    response = send(client, key, invoice_id, **{"Idempotency-Key": "send-1"})

    assert response.status_code == 502
    body = response.json
    assert body["error"] == "mail_failed" and body["transient"] is False
    assert "550 5.1.1 mailbox unavailable" in body["message"]
    assert body["email"]["status"] == "failed" and body["email"]["sent_at"] is None
    assert emails(rt) == [("failed", CUSTOMER_EMAIL)]

    # Failures are not replayed: the same key tries again once the address works.
    smtp.inbox.refuse.clear()
    retry = send(client, key, invoice_id, **{"Idempotency-Key": "send-1"})
    assert retry.status_code == 200, retry.json
    assert emails(rt) == [("failed", CUSTOMER_EMAIL), ("sent", CUSTOMER_EMAIL)]
    assert len(smtp.inbox.messages) == 1


def test_a_server_that_is_down_answers_502_transient(rt, smtp):
    key = make_api_key(rt)
    invoice_id = issued_invoice(rt)

    with client_with(rt, smtp_port=free_port()) as down:
        response = send(down, key, invoice_id)

    assert response.status_code == 502
    assert response.json["transient"] is True
    assert "could not talk to 127.0.0.1" in response.json["message"]
    assert emails(rt) == [("failed", CUSTOMER_EMAIL)]


def test_mail_not_configured_answers_503(rt, smtp):
    key = make_api_key(rt)
    invoice_id = issued_invoice(rt)

    with client_with(rt, smtp_host=None) as unconfigured:
        response = send(unconfigured, key, invoice_id)

    assert response.status_code == 503
    assert response.json["error"] == "mail_not_configured"
    assert "PUENTE_SMTP_HOST" in response.json["message"]
    assert emails(rt) == []
