"""Redaction: secrets are masked before anything reaches the run log."""

import copy

import pytest

from connector.redaction import MASK, redact
from connector.schemas import load_schema

INPUT_SCHEMA = "actions/invoicing.create_draft_invoice.input.json"


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "Password",
        "PASSWORD",
        "pass",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "refresh_token",
        "api_key",
        "apiKey",
        "api-key",
        "X-Api-Key",
        "authorization",
        "Authorization",
        "credentials",
        "Set-Cookie",  # a response header an http.request step logs
        "cookie",
    ],
)
def test_a_field_named_like_a_secret_is_masked(name):
    assert redact({name: "s3cr3t", "name": "Acme"}) == {name: MASK, "name": "Acme"}


def test_secrets_are_masked_at_any_depth():
    value = {"connection": {"auth": {"oauth": {"access_token": "abc", "expires_in": 3600}}}}
    assert redact(value) == {
        "connection": {"auth": {"oauth": {"access_token": MASK, "expires_in": 3600}}}
    }


def test_secrets_inside_lists_are_masked():
    value = {
        "connections": [
            {"name": "holded", "api_key": "k1"},
            {"name": "hubspot", "token": "t2"},
            [{"password": "p3"}],
        ]
    }
    assert redact(value) == {
        "connections": [
            {"name": "holded", "api_key": MASK},
            {"name": "hubspot", "token": MASK},
            [{"password": MASK}],
        ]
    }


def test_a_list_at_the_top_level_is_redacted_item_by_item():
    assert redact([{"secret": "x"}, {"id": 1}]) == [{"secret": MASK}, {"id": 1}]


def test_a_secret_field_holding_an_object_or_list_is_masked_as_a_whole():
    value = {"credentials": {"user": "u", "pass": "p"}, "tokens": ["a", "b"]}
    assert redact(value) == {"credentials": MASK, "tokens": MASK}


@pytest.mark.parametrize("empty", [None, ""])
def test_an_empty_secret_is_left_as_is_so_the_log_shows_it_was_missing(empty):
    assert redact({"api_key": empty}) == {"api_key": empty}


def test_a_secret_that_is_a_number_or_false_is_masked():
    assert redact({"token": 0, "secret": False}) == {"token": MASK, "secret": MASK}


def test_ordinary_fields_are_kept_unchanged():
    value = {
        "deal_id": "D-1001",
        "title": "Implantación ERP Acme",
        "amount": "2480.50",
        "count": 3,
        "won": True,
        "owner": None,
        "tags": ["a", "b"],
        "customer": {"name": "Acme", "tax_id": "B12345674", "email": "facturas@acme.example"},
    }
    assert redact(value) == value


@pytest.mark.parametrize("value", ["text", 12, 1.5, None, True])
def test_a_scalar_is_returned_as_is(value):
    assert redact(value) == value


def test_redact_does_not_mutate_its_input():
    value = {"token": "t", "nested": [{"password": "p", "x": [1, 2]}], "name": "n"}
    before = copy.deepcopy(value)
    result = redact(value)
    assert value == before
    assert result is not value
    assert result["nested"] is not value["nested"]
    assert result["nested"][0]["x"] is not value["nested"][0]["x"]


def test_the_example_input_of_create_draft_invoice_is_kept_unchanged_with_its_schema():
    example = load_schema(INPUT_SCHEMA)["examples"][0]
    before = copy.deepcopy(example)
    assert redact(example, INPUT_SCHEMA) == example
    assert example == before


def test_every_field_of_create_draft_invoice_input_is_kept_when_filled_in():
    value = {
        "customer": {
            "name": "Acme Soluciones SL",
            "tax_id": "B12345674",
            "email": "facturas@acme.example",
            "address": {
                "street": "Calle Mayor 1",
                "postal_code": "28013",
                "city": "Madrid",
                "province": "Madrid",
                "country": "ES",
            },
        },
        "lines": [
            {
                "sku": "CONS-H",
                "description": "Consultoría (horas)",
                "quantity": "20",
                "unit_price": "95.00",
                "discount_percent": "10",
                "tax_rate": 21,
            },
            {
                "sku": None,
                "description": "Licencia",
                "quantity": 1,
                "unit_price": 770.5,
                "tax_rate": "21",
            },
        ],
        "currency": "EUR",
        "external_ref": "D-1001",
        "source": "webhook",
        "notes": "Pago a 30 días",
    }
    assert redact(value, INPUT_SCHEMA) == value


def test_names_like_secrets_are_masked_even_when_the_schema_does_not_declare_them():
    value = {"customer": {"name": "Acme", "tax_id": "B1", "api_key": "k"}, "token": "t"}
    assert redact(value, INPUT_SCHEMA) == {
        "customer": {"name": "Acme", "tax_id": "B1", "api_key": MASK},
        "token": MASK,
    }
