"""Inbound webhooks: every way a delivery is refused, and what is (not) stored when it is."""

from __future__ import annotations

import base64
import json
import time

import pytest
from sqlalchemy import func, select, update

from connector.models import Event, EventStatus, Run, Subscription
from connector.runtime import Runtime
from invoicing.models import Invoice
from tests.conftest import drain
from tests.factories import deal, make_hook, post_deal, signed

OTHER_SECRET = "whsec_" + base64.b64encode(b"a different 24-byte key!").decode()


def count(rt: Runtime, model: type) -> int:
    with rt.sessions() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def stored(rt: Runtime) -> tuple[int, int]:
    return count(rt, Event), count(rt, Run)


def assert_error(response, status: int, error: str, *words: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    assert response.json["error"] == error
    message = response.json["message"]
    assert isinstance(message, str) and message
    for word in words:
        assert word in message, message


# --- authenticity --------------------------------------------------------------------------


def test_a_tampered_body_is_refused_with_401_and_nothing_is_stored(rt, client):
    hook = make_hook(rt)
    body = json.dumps(deal()).encode()
    headers = signed(hook.secret, body)
    tampered = body.replace(b'"95.00"', b'"9.50"')
    assert tampered != body

    response = client.post(hook.path, data=tampered, headers=headers)

    assert_error(response, 401, "invalid_signature", "no valid v1 signature")
    assert stored(rt) == (0, 0)


def test_a_signature_made_with_another_secret_is_refused_with_401(rt, client):
    hook = make_hook(rt)
    body = json.dumps(deal()).encode()

    response = client.post(hook.path, data=body, headers=signed(OTHER_SECRET, body))

    assert_error(response, 401, "invalid_signature", "no valid v1 signature")
    assert stored(rt) == (0, 0)


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_delivery_missing_a_signature_header_is_refused_naming_the_header(rt, client, header):
    hook = make_hook(rt)
    body = json.dumps(deal()).encode()
    headers = {k: v for k, v in signed(hook.secret, body).items() if k != header}

    response = client.post(hook.path, data=body, headers=headers)

    assert_error(response, 401, "invalid_signature", "missing header", header)
    assert stored(rt) == (0, 0)


def test_a_delivery_signed_ten_minutes_ago_is_refused_as_too_old(rt, client):
    hook = make_hook(rt)
    body = json.dumps(deal()).encode()
    ten_minutes_ago = int(time.time()) - 600

    response = client.post(
        hook.path, data=body, headers=signed(hook.secret, body, timestamp=ten_minutes_ago)
    )

    assert_error(response, 401, "invalid_signature", "webhook-timestamp", "old")
    assert stored(rt) == (0, 0)


def test_an_unknown_token_answers_404(rt, client):
    make_hook(rt)
    body = json.dumps(deal()).encode()

    response = client.post("/hooks/no-such-token", data=body, headers=signed(OTHER_SECRET, body))

    assert_error(response, 404, "unknown_hook", "no active webhook")
    assert stored(rt) == (0, 0)


def test_an_inactive_subscription_answers_404_even_when_correctly_signed(rt, client):
    hook = make_hook(rt)
    with rt.sessions.begin() as s:
        s.execute(
            update(Subscription).where(Subscription.id == hook.subscription_id).values(active=False)
        )

    response = post_deal(client, hook, deal())

    assert_error(response, 404, "unknown_hook", "no active webhook")
    assert stored(rt) == (0, 0)


# --- the body ------------------------------------------------------------------------------


def test_a_correctly_signed_body_that_is_not_json_is_refused_with_400_invalid_json(rt, client):
    hook = make_hook(rt)
    body = b"deal_id=D-1&customer=Acme"

    response = client.post(hook.path, data=body, headers=signed(hook.secret, body))

    assert_error(response, 400, "invalid_json", "not valid JSON")
    assert stored(rt) == (0, 0)


def test_a_correctly_signed_body_that_is_not_utf8_is_refused_with_400_invalid_json(rt, client):
    hook = make_hook(rt)
    body = b'{"deal_id": "\xff\xfe"}'

    response = client.post(hook.path, data=body, headers=signed(hook.secret, body))

    assert_error(response, 400, "invalid_json", "not valid JSON")
    assert stored(rt) == (0, 0)


@pytest.mark.parametrize("body", [b"42", b"[]", b'"a deal"', b"null", b"[1, 2]"])
def test_json_that_is_neither_a_deal_nor_a_list_of_deals_is_refused_with_400(rt, client, body):
    hook = make_hook(rt)

    response = client.post(hook.path, data=body, headers=signed(hook.secret, body))

    assert_error(response, 400, "invalid_payload", "JSON object", "non-empty list")
    assert stored(rt) == (0, 0)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_body_with_nan_or_infinity_is_refused_with_400_invalid_json(rt, client, constant):
    # NaN and Infinity are not JSON (RFC 8259), though Python's json module reads them, and
    # as a quantity they even pass the schema (money.json's pattern only checks strings).
    hook = make_hook(rt)
    text = json.dumps(deal()).replace('"quantity": "20"', f'"quantity": {constant}')
    assert constant in text
    body = text.encode()

    response = client.post(hook.path, data=body, headers=signed(hook.secret, body))

    assert_error(response, 400, "invalid_json", "not valid JSON")
    assert stored(rt) == (0, 0)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (('"title": "Proyecto"', '"title": "Proyecto \\ud800"'), ["title", "unpaired surrogate"]),
        (('"title": "Proyecto"', '"title": "Proyecto\\u0000"'), ["title", "NUL character"]),
        (('"quantity": "20"', '"quantity": 1e400'), ["1e400 is too large"]),
        (('"quantity": "20"', '"quantity": ' + "9" * 5000), ["5000 digits", "at most"]),
        (('"campaign": ', '"campaign": ' + "[" * 40 + "1" + "]" * 40 + ', "x": '), ["32 levels"]),
    ],
    ids=["lone-surrogate", "nul", "overflowing-number", "huge-integer", "deep-inside-a-deal"],
)
def test_a_body_no_database_can_store_is_refused_with_400_naming_what_and_where(
    rt, client, change, words
):
    """Each of these once reached the database and failed there: a 500 on every retry."""
    hook = make_hook(rt)
    text = json.dumps(deal(campaign="spring", title="Proyecto"))
    assert change[0] in text
    body = text.replace(change[0], change[1], 1).encode()

    response = client.post(hook.path, data=body, headers=signed(hook.secret, body))

    assert_error(response, 400, "invalid_json", *words)
    assert stored(rt) == (0, 0)


@pytest.mark.parametrize(
    "number", ["1e308", "1e13", "9" * 4000], ids=["1e308", "1e13", "4000 digits"]
)
def test_an_amount_sent_as_a_json_number_is_held_to_the_rules_of_one_sent_as_text(
    rt, client, number
):
    hook = make_hook(rt)
    text = json.dumps(deal()).replace('"quantity": "20"', f'"quantity": {number}', 1)
    assert number in text
    body = text.encode()

    response = client.post(hook.path, data=body, headers=signed(hook.secret, body))

    assert response.status_code == 422, response.get_data(as_text=True)
    assert [e["path"] for e in response.json["errors"]] == ["lines[0].quantity"]
    assert stored(rt) == (1, 0)  # kept as a rejected event, no run


def test_a_value_only_the_strict_validator_refuses_is_refused(rt, client):
    # Python's re lets "$" match before a final newline: jsonschema alone found "EUR\n" fine.
    hook = make_hook(rt)

    response = post_deal(client, hook, deal(currency="EUR\n"))

    assert response.status_code == 422, response.get_data(as_text=True)
    assert [e["path"] for e in response.json["errors"]] == ["currency"]


def test_a_deeply_nested_body_is_refused_with_400_not_a_server_error(rt, client):
    hook = make_hook(rt)
    body = b"[" * 100_000 + b"]" * 100_000  # 200 kB, under the size limit

    response = client.post(hook.path, data=body, headers=signed(hook.secret, body))

    assert response.status_code == 400, response.status_code
    assert response.json["error"] in {"invalid_json", "invalid_payload"}
    assert stored(rt) == (0, 0)


def test_a_body_larger_than_the_limit_is_refused_with_413_and_a_message(rt, client, settings):
    hook = make_hook(rt)
    limit = settings.max_body_bytes
    body = json.dumps(deal()).encode()
    body += b" " * (limit + 1 - len(body))  # still valid JSON, one byte too many
    assert len(body) == limit + 1

    response = client.post(hook.path, data=body, headers=signed(hook.secret, body))

    assert_error(response, 413, "request_entity_too_large", f"larger than {limit} bytes")
    assert stored(rt) == (0, 0)


def test_a_body_exactly_at_the_limit_is_accepted(rt, client, settings):
    hook = make_hook(rt)
    body = json.dumps(deal()).encode()
    body += b" " * (settings.max_body_bytes - len(body))

    response = client.post(hook.path, data=body, headers=signed(hook.secret, body))

    assert response.status_code == 202, response.json
    assert stored(rt) == (1, 1)


def test_a_very_long_webhook_id_is_answered_without_a_server_error(rt, client):
    # Standard Webhooks sets no length for webhook-id; events.dedup_key holds 200 characters.
    hook = make_hook(rt)

    response = post_deal(client, hook, deal(), msg_id="msg_" + "x" * 300)

    assert response.status_code in (202, 400), response.status_code
    if response.status_code == 400:
        assert "webhook-id" in response.json["message"]
        assert stored(rt) == (0, 0)
    else:
        assert stored(rt) == (1, 1)


# --- deals that do not match the schema ----------------------------------------------------


def invalid_deal() -> dict:
    payload = deal()
    del payload["customer"]
    payload["lines"][0]["quantity"] = "abc"
    payload["lines"][1]["tax_rate"] = 7
    return payload


def test_a_deal_failing_the_schema_is_refused_with_422_listing_every_field(rt, client):
    hook = make_hook(rt)

    response = post_deal(client, hook, invalid_deal())

    assert_error(response, 422, "invalid_deal", "fix the fields")
    errors = response.json["errors"]
    assert all(isinstance(e["path"], str) and e["message"] for e in errors)
    by_path = {e["path"]: e["message"] for e in errors}
    assert set(by_path) == {"customer", "lines[0].quantity", "lines[1].tax_rate"}
    assert by_path["customer"] == "is required but missing"
    assert "21" in by_path["lines[1].tax_rate"]


def test_a_deal_failing_the_schema_is_kept_as_a_rejected_event_without_a_run(rt, client):
    hook = make_hook(rt)
    payload = invalid_deal()

    response = post_deal(client, hook, payload)

    assert response.status_code == 422
    assert stored(rt) == (1, 0)
    with rt.sessions() as s:
        event = s.scalars(select(Event)).one()
        assert event.status == EventStatus.REJECTED
        assert event.payload == payload
        assert [e["path"] for e in event.errors] == [e["path"] for e in response.json["errors"]]
    assert response.json["event_ids"] == [event.id]
    assert rt.queue.count == 0


def test_resending_a_rejected_delivery_answers_422_again_and_keeps_one_event(rt, client):
    hook = make_hook(rt)
    payload = invalid_deal()

    first = post_deal(client, hook, payload, msg_id="msg_rejected")
    second = post_deal(client, hook, payload, msg_id="msg_rejected")

    assert first.status_code == second.status_code == 422
    assert second.json["errors"] == first.json["errors"]
    assert second.json["event_ids"] == first.json["event_ids"]
    assert stored(rt) == (1, 0)


def test_in_a_list_of_deals_an_invalid_one_is_named_by_its_position(rt, client):
    hook = make_hook(rt)
    bad = deal()
    bad["lines"][0]["quantity"] = "abc"

    response = post_deal(client, hook, [deal(), bad])

    assert response.status_code == 422
    assert [e["path"] for e in response.json["errors"]] == ["[1].lines[0].quantity"]
    assert count(rt, Run) == 0


# --- deliveries that are accepted ----------------------------------------------------------


def test_a_list_of_two_deals_in_one_delivery_makes_two_runs_and_two_invoices(rt, client):
    hook = make_hook(rt)

    response = post_deal(client, hook, [deal(), deal()])

    assert response.status_code == 202
    assert len(response.json["run_ids"]) == 2
    assert len(response.json["event_ids"]) == 2
    assert response.json["duplicate"] is False
    drain(rt)
    assert count(rt, Invoice) == 2


def test_a_delivery_to_a_disabled_flow_is_stored_but_starts_no_run(rt, client):
    hook = make_hook(rt, enabled=False)

    response = post_deal(client, hook, deal())

    assert response.status_code == 202
    assert response.json["run_ids"] == []
    assert len(response.json["event_ids"]) == 1
    assert stored(rt) == (1, 0)
    assert rt.queue.count == 0
