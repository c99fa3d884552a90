"""JSON Schemas under schemas/: all valid, examples valid, and errors in plain words."""

import copy
import json

import pytest
from jsonschema import Draft202012Validator

from connector.schemas import (
    BASE_URI,
    SCHEMAS_DIR,
    all_schema_names,
    format_path,
    load_schema,
    validate,
)

DEAL_WON = "triggers/deal_won.json"
SCHEMA_NAMES = all_schema_names()
EXAMPLES = [
    (name, i, example)
    for name in SCHEMA_NAMES
    for i, example in enumerate(load_schema(name).get("examples", []))
]


def deal(**changes):
    """A valid 'deal won' (the schema's own example) with top-level fields changed."""
    data = copy.deepcopy(load_schema(DEAL_WON)["examples"][0])
    data.update(changes)
    return data


def messages(errors):
    return [str(e) for e in errors]


# --- the schema files ----------------------------------------------------------------------


def test_all_schema_names_lists_the_files_under_schemas_by_relative_path():
    assert set(SCHEMA_NAMES) >= {
        "flow.json",
        "triggers/deal_won.json",
        "common/line.json",
        "common/money.json",
        "common/party.json",
        "common/address.json",
        "actions/invoicing.create_draft_invoice.input.json",
        "actions/invoicing.create_draft_invoice.output.json",
    }
    assert sorted(SCHEMA_NAMES) == SCHEMA_NAMES
    assert all((SCHEMAS_DIR / name).is_file() for name in SCHEMA_NAMES)


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_every_schema_file_is_a_valid_2020_12_schema(name):
    raw = json.loads((SCHEMAS_DIR / name).read_text(encoding="utf-8"))
    assert raw["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(raw)


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_every_schema_has_the_id_matching_its_location(name):
    assert load_schema(name)["$id"] == BASE_URI + name


def test_there_are_examples_to_check():
    names = {name for name, _, _ in EXAMPLES}
    assert DEAL_WON in names
    assert "actions/invoicing.create_draft_invoice.input.json" in names


@pytest.mark.parametrize(
    ("name", "index", "example"), EXAMPLES, ids=[f"{n}#{i}" for n, i, _ in EXAMPLES]
)
def test_every_example_validates_against_its_schema(name, index, example):
    assert validate(name, example) == []


# --- format_path ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (["lines", 0, "quantity"], "lines[0].quantity"),
        (["customer", "address", "city"], "customer.address.city"),
        (["lines", 1], "lines[1]"),
        ([0, "a"], "[0].a"),
        ([], ""),
    ],
)
def test_format_path_renders_readable_paths(parts, expected):
    assert format_path(parts) == expected


# --- errors in plain words -----------------------------------------------------------------


def test_a_missing_field_inside_a_line_is_reported_with_its_path():
    data = deal()
    del data["lines"][1]["quantity"]
    errors = validate(DEAL_WON, data)
    assert messages(errors) == ["lines[1].quantity: is required but missing"]
    assert errors[0].code == "required"


def test_several_missing_fields_are_each_named_once():
    data = deal()
    del data["deal_id"]
    del data["customer"]
    errors = validate(DEAL_WON, data)
    assert sorted(e.path for e in errors) == ["customer", "deal_id"]
    assert all(e.message == "is required but missing" for e in errors)


def test_a_wrong_type_is_described_in_plain_words():
    data = deal()
    data["customer"]["name"] = 5
    errors = validate(DEAL_WON, data)
    assert messages(errors) == ["customer.name: must be text, got 5"]
    assert errors[0].code == "type"


def test_a_wrong_type_among_several_allowed_names_them_all():
    data = deal()
    data["lines"][0]["quantity"] = None
    errors = validate(DEAL_WON, data)
    assert messages(errors) == ["lines[0].quantity: must be a number or text, got nothing (null)"]


def test_a_whole_document_of_the_wrong_type_is_reported():
    assert messages(validate(DEAL_WON, [])) == ["must be an object, got a list"]


def test_a_value_outside_an_enum_lists_the_allowed_values():
    data = deal()
    data["lines"][1]["tax_rate"] = 7
    errors = validate(DEAL_WON, data)
    assert messages(errors) == ["lines[1].tax_rate: must be one of: 0, 4, 10, 21"]
    assert errors[0].code == "enum"


def test_an_empty_required_text_is_reported_as_empty():
    errors = validate(DEAL_WON, deal(deal_id=""))
    assert messages(errors) == ["deal_id: must not be empty"]


def test_a_text_that_is_too_long_gives_the_limit():
    errors = validate(DEAL_WON, deal(title="x" * 201))
    assert messages(errors) == ["title: must have at most 200 characters"]


def test_a_discount_above_100_is_rejected_with_the_limit():
    data = deal()
    data["lines"][0]["discount_percent"] = 150
    errors = validate(DEAL_WON, data)
    assert messages(errors) == ["lines[0].discount_percent: must be at most 100"]


def test_a_discount_above_100_written_as_text_is_rejected_too():
    data = deal()
    data["lines"][0]["discount_percent"] = "150"
    errors = validate(DEAL_WON, data)
    assert [e.path for e in errors] == ["lines[0].discount_percent"]


def test_an_empty_list_of_lines_is_rejected():
    errors = validate(DEAL_WON, deal(lines=[]))
    assert messages(errors) == ["lines: must not be empty"]


def test_a_value_not_matching_a_pattern_is_an_invalid_format():
    errors = validate(DEAL_WON, deal(currency="eur"))
    assert messages(errors) == ['currency: has an invalid format ("eur")']
    assert errors[0].code == "pattern"


def test_an_amount_with_too_many_decimals_is_an_invalid_format():
    data = deal()
    data["lines"][0]["unit_price"] = "1.123456789"
    errors = validate(DEAL_WON, data)
    assert [(e.path, e.code) for e in errors] == [("lines[0].unit_price", "pattern")]


def test_unknown_fields_are_named():
    data = deal(colour="red", size=3)
    data["customer"]["vat"] = "x"
    errors = validate(DEAL_WON, data)
    assert messages(errors) == [
        "has fields that are not allowed: colour, size (check their spelling)",
        "customer: has fields that are not allowed: vat (check their spelling)",
    ]
    assert errors[0].code == "unknown_fields"
    assert errors[0].params == {"fields": ["colour", "size"]}


def test_an_invalid_email_is_rejected():
    data = deal()
    data["customer"]["email"] = "facturas.acme.example"
    errors = validate(DEAL_WON, data)
    assert messages(errors) == ['customer.email: is not a valid email ("facturas.acme.example")']
    assert errors[0].code == "format"


@pytest.mark.parametrize(
    "email", ["facturas@acme.example\r\nBcc: spy@evil.example", "facturas@acme.example\n"]
)
def test_an_email_with_a_line_break_is_rejected(email):
    data = deal()
    data["customer"]["email"] = email

    errors = validate(DEAL_WON, data)

    assert [(e.path, e.code) for e in errors] == [("customer.email", "format")]


@pytest.mark.parametrize("won_at", ["yesterday", "27/11/2026 10:15", "2026-13-45T99:00:00Z"])
def test_an_invalid_date_time_is_rejected(won_at):
    errors = validate(DEAL_WON, deal(won_at=won_at))
    assert [(e.path, e.code) for e in errors] == [("won_at", "format")]
    assert errors[0].message.startswith("is not a valid date-time")


def test_every_error_is_reported_ordered_by_path():
    data = deal(currency="eur", colour="red")
    del data["lines"][1]["quantity"]
    data["customer"]["name"] = 5
    data["customer"]["email"] = "nope"
    data["owner"]["name"] = ["Lucía"]
    errors = validate(DEAL_WON, data)
    assert messages(errors) == [
        "has fields that are not allowed: colour (check their spelling)",
        'currency: has an invalid format ("eur")',
        'customer.email: is not a valid email ("nope")',
        "customer.name: must be text, got 5",
        "lines[1].quantity: is required but missing",
        "owner.name: must be text, got a list",
    ]


def test_the_input_of_create_draft_invoice_rejects_a_currency_other_than_eur():
    name = "actions/invoicing.create_draft_invoice.input.json"
    data = copy.deepcopy(load_schema(name)["examples"][0])
    data["currency"] = "USD"
    assert messages(validate(name, data)) == ["currency: must be one of: EUR"]


# --- the compiled validator agrees with jsonschema -----------------------------------------

WRONG_VALUES = [
    None,
    True,
    0,
    -1,
    1.005,
    10**20,
    "",
    "x" * 300,
    "not a date",
    "2024-02-30",
    "2024-01-01T10:00:00",  # a date-time without its offset
    "no-at-sign",
    "ñandú@ejemplo.es",
    "B12345678",
    "-3.50",
    [],
    [1],
    {},
    {"unexpected": 1},
]


def mutations(value, path=()):
    """Each value of the example in turn replaced by each wrong one, each key of each object
    removed, and an unknown key added to each: what a bad mapping or payload looks like."""
    yield path, value
    for wrong in WRONG_VALUES:
        if wrong != value:
            yield (*path, repr(wrong)), wrong
    if isinstance(value, dict):
        for key in value:
            yield (*path, key, "<removed>"), {k: v for k, v in value.items() if k != key}
        yield (*path, "<added>"), {**value, "zz_unknown": 1}
        for key, child in value.items():
            for where, changed in mutations(child, (*path, key)):
                yield where, {**value, key: changed}
    elif isinstance(value, list):
        for i, child in enumerate(value):
            for where, changed in mutations(child, (*path, i)):
                yield where, [*value[:i], changed, *value[i + 1 :]]


@pytest.mark.parametrize("name", [n for n, i, _ in EXAMPLES if i == 0])
def test_the_compiled_validator_answers_as_jsonschema_for_every_kind_of_bad_value(name):
    from connector.schemas import fast_validator, validator

    fast, slow = fast_validator(name), validator(name)
    example = load_schema(name)["examples"][0]
    checked = refused = 0
    for where, instance in mutations(example):
        assert fast.is_valid(instance) == slow.is_valid(instance), (name, where, instance)
        checked += 1
        refused += not slow.is_valid(instance)
    assert checked > len(WRONG_VALUES) and refused > 0  # the mutations reached its rules


def test_a_value_that_is_not_json_is_judged_by_jsonschema():
    from datetime import datetime

    from connector.schemas import fast_validator

    data = deal(won_at=datetime(2024, 5, 1, 12, 0))
    with pytest.raises(ValueError):
        fast_validator(DEAL_WON).is_valid(data)  # the compiled one cannot read it

    [error] = validate(DEAL_WON, data)

    assert error.path == "won_at"
    assert error.message == "must be text, got a datetime, which is not a JSON value"
