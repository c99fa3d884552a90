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
    # ("auth" or "oauth" around it would mask the whole object: see the names below)
    value = {"connection": {"login": {"grant": {"access_token": "abc", "expires_in": 3600}}}}
    assert redact(value) == {
        "connection": {"login": {"grant": {"access_token": MASK, "expires_in": 3600}}}
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


# What the schema says: a value at a writeOnly path is masked, whatever its name.

PIN = {"type": "string", "writeOnly": True}


@pytest.mark.parametrize(
    ("schema", "value", "expected"),
    [
        (
            {"properties": {"pin": PIN}},
            {"pin": "1234", "name": "Acme"},
            {"pin": MASK, "name": "Acme"},
        ),
        (  # every value of a map
            {"properties": {"codes": {"additionalProperties": PIN}}},
            {"codes": {"a": "1", "b": "2"}, "name": "Acme"},
            {"codes": {"a": MASK, "b": MASK}, "name": "Acme"},
        ),
        (  # items of a list, through a local $ref
            {
                "$defs": {"holder": {"properties": {"pin": PIN, "bank": {"type": "string"}}}},
                "properties": {"holders": {"items": {"$ref": "#/$defs/holder"}}},
            },
            {"holders": [{"pin": "1", "bank": "B"}, {"pin": "2"}]},
            {"holders": [{"pin": MASK, "bank": "B"}, {"pin": MASK}]},
        ),
        (  # a branch of allOf / anyOf / oneOf, or an if/then
            {
                "allOf": [{"properties": {"pin": PIN}}],
                "anyOf": [{"properties": {"nip": PIN}}, {"type": "object"}],
                "oneOf": [{"properties": {"puk": PIN}}],
                "if": {"required": ["kind"]},
                "then": {"properties": {"otp": PIN}},
            },
            {"pin": "1", "nip": "2", "puk": "3", "otp": "4", "kind": "x"},
            {"pin": MASK, "nip": MASK, "puk": MASK, "otp": MASK, "kind": "x"},
        ),
        (  # properties matched by a pattern
            {"patternProperties": {"^pin_": PIN}},
            {"pin_1": "1", "pinned": "yes"},
            {"pin_1": MASK, "pinned": "yes"},
        ),
    ],
    ids=["property", "additionalProperties", "items-and-local-ref", "combinators", "pattern"],
)
def test_a_value_the_schema_marks_write_only_is_masked_whatever_its_name(schema, value, expected):
    assert redact(value, schema) == expected


def test_a_write_only_schema_masks_the_whole_value():
    assert redact({"a": 1}, {"writeOnly": True}) == MASK


# What connections hold: their secret values are masked wherever they appear.

TOKEN = "s3cr3t-t0k3n-0123456789"


def test_a_connection_secret_is_masked_wherever_it_appears_even_inside_a_longer_text():
    value = {
        "note": f"called with Bearer {TOKEN} at 10:00",
        "echo": TOKEN,
        "lines": [f"x{TOKEN}y", "nothing here"],
        "url": f"https://api.example/lookup/{TOKEN}/deals",
    }
    assert redact(value, secrets={TOKEN}) == {
        "note": f"called with Bearer {MASK} at 10:00",
        "echo": MASK,
        "lines": [f"x{MASK}y", "nothing here"],
        "url": f"https://api.example/lookup/{MASK}/deals",
    }


def test_a_short_secret_is_masked_only_as_a_whole_value_not_inside_words():
    # a 4-letter user name must not punch holes in every text that contains it
    value = {"user": "acme", "company": "Acme Soluciones acme.example", "who": "acme"}
    assert redact(value, secrets={"acme"}) == {
        "user": MASK,
        "company": "Acme Soluciones acme.example",
        "who": MASK,
    }


def test_the_secrets_a_connection_hands_out_during_a_step_are_collected():
    from connector.redaction import hold, holding

    hold(["ignored: nobody is collecting"])
    with holding() as held:
        hold([TOKEN, f"Basic {TOKEN}x", "", None])
        with holding() as inner:  # a nested collector gets its own, the outer one too
            hold(["another-secret-value"])
    assert {TOKEN, f"Basic {TOKEN}x", f"{TOKEN}x"} <= held
    assert "another-secret-value" in held and inner == {"another-secret-value"}
    assert "ignored: nobody is collecting" not in held


# What names say: keys, header names and URL query parameters named like secrets.


@pytest.mark.parametrize(
    "name",
    [
        "clientSecret",
        "client-secret",
        "accessToken",
        "AccessToken",
        "id_token",
        "private_key",
        "privateKey",
        "PRIVATE_KEY",
        "privatekey",
        "passphrase",
        "passwd",
        "new_password",
        "password_confirmation",
        "dbPassword",
        "password2",
        "X-Auth",
        "x-auth-token",
        "XAuthToken",
        "auth",
        "basicAuth",
        "auth_header",
        "Proxy-Authorization",
        "apikey",
        "APIKey",
        "api_key_value",
        "aws_secret_access_key",
        "webhook_secret",
        "token_value",
        "jwt",
        "session",
        "session_id",
        "sessionId",
        "PHPSESSID",
        "X-Hub-Signature",
        "signature",
        "set-cookie",
        "credential",
        "contraseña",
    ],
)
def test_names_that_mean_a_secret_are_masked_in_any_spelling(name):
    assert redact({name: "s3cr3t"}) == {name: MASK}


@pytest.mark.parametrize(
    "name",
    [
        "author",
        "authorName",
        "author_id",
        "authority",
        "auth_type",  # says which kind of credentials, not what they are
        "tokens_used",  # a count
        "token_count",
        "token_type",  # "Bearer" in an OAuth answer
        "token_expires_at",
        "expires_in",
        "passport_number",
        "bypass",
        "compass",
        "session_date",
        "sessions_count",
        "signature_date",
        "signed",
        "secretary",
        "key",
        "idempotency_key",
        "monkey",
        "keyword",
        "description",
        "owner_name",
    ],
)
def test_business_fields_that_merely_resemble_a_secret_name_are_kept(name):
    assert redact({name: "value"}) == {name: "value"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "https://api.example/v1/deals?client_secret=abc123&page=2",
            f"https://api.example/v1/deals?client_secret={MASK}&page=2",
        ),
        (
            "GET https://api.example/x?api_key=k1&Access-Token=t2#top answered 401",
            f"GET https://api.example/x?api_key={MASK}&Access-Token={MASK}#top answered 401",
        ),
        (  # a form body, as an OAuth token endpoint answers
            "access_token=t0k&token_type=bearer&expires_in=3600",
            f"access_token={MASK}&token_type=bearer&expires_in=3600",
        ),
        (
            "https://api.example/v1/deals?author=ana&tokens_used=3&page=2",
            "https://api.example/v1/deals?author=ana&tokens_used=3&page=2",
        ),
        ("total=5 and sum=6", "total=5 and sum=6"),
    ],
)
def test_a_secret_in_a_url_query_or_form_body_is_masked_in_any_logged_text(text, expected):
    assert redact({"url": text}) == {"url": expected}
    assert redact([text]) == [expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (  # an action quoting a parsed answer: str(dict)
            "POST /token answered 400: {'error': 'invalid', 'refresh_token': 'r-123'}",
            f"POST /token answered 400: {{'error': 'invalid', 'refresh_token': '{MASK}'}}",
        ),
        (  # an answer that was JSON but not labelled so: text
            '{"ok": false, "access_token": "t-1", "author": "ana"}',
            f'{{"ok": false, "access_token": "{MASK}", "author": "ana"}}',
        ),
        (
            "the API said: Authorization: Bearer eyJhbGciOi.J9.x is not valid",
            f"the API said: Authorization: Bearer {MASK} is not valid",
        ),
    ],
)
def test_a_secret_quoted_inside_an_answer_text_is_masked(text, expected):
    assert redact({"message": text}) == {"message": expected}


def test_an_error_record_is_masked_like_a_step_output():
    error = {
        "class": "validation",
        "message": f"PATCH https://crm.example/deals?token=abc answered 401: {TOKEN} expired",
        "errors": [],
    }
    assert redact(error, secrets={TOKEN}) == {
        "class": "validation",
        "message": f"PATCH https://crm.example/deals?token={MASK} answered 401: {MASK} expired",
        "errors": [],
    }
