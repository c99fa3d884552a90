"""Field errors read in Spanish in the UI, made from their code and params; English elsewhere."""

from __future__ import annotations

import copy
import json
import string
from typing import Any

import pytest

from connector import messages
from connector.checks import check_flow
from connector.errors import FieldError
from connector.registry import default_registry
from connector.schemas import load_schema, validate
from web.demo import DEMO_FLOW


def fields_of(template: str) -> set[str]:
    names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    # Spanish names the format in words made from it; English shows the format's name.
    return {"expected" if name == "format_words" else name for name in names}


@pytest.mark.parametrize("code", sorted(messages.TEXTS))
def test_each_text_says_the_same_things_in_both_languages(code):
    english, spanish = messages.TEXTS[code]
    assert english != spanish
    # A translation that drops a field (the expression, the field's name) hides the fault.
    assert fields_of(english) == fields_of(spanish)


def bad_flows() -> list[dict[str, Any]]:
    """Flows with every kind of design-time problem, one or more each."""

    def with_input(**changes: Any) -> dict[str, Any]:
        flow = copy.deepcopy(DEMO_FLOW)
        step = flow["steps"][1]["input"]
        for key, value in changes.items():
            if value is None:
                del step[key]
            else:
                step[key] = value
        return flow

    unknown_trigger = copy.deepcopy(DEMO_FLOW)
    unknown_trigger["trigger"]["key"] = "webhook.deal_lost"
    twice = copy.deepcopy(DEMO_FLOW)
    twice["steps"][1]["id"] = twice["steps"][0]["id"]
    unknown_action = copy.deepcopy(DEMO_FLOW)
    unknown_action["steps"][1]["action"] = "invoicing.create_invoice"
    return [
        unknown_trigger,
        twice,
        unknown_action,
        with_input(lines=None),  # unmapped
        with_input(notes={"$expr": "mayusculas(trigger.title)"}),  # unknown_function
        with_input(notes={"$expr": "deal.title"}),  # unknown_root
        with_input(notes={"$expr": "steps.issue.number"}),  # unknown_step
        with_input(notes={"$expr": "trigger.customer.nombre"}),  # unknown_field
        with_input(external_ref="trigger.deal_id"),  # literal_looks_like_path
        with_input(notes={"$expr": "trigger.title", "x": 1}),  # expression_shape
        with_input(notes={"$expr": "trigger.customer.["}),  # expression_syntax
        with_input(notes={"$expr": "trigger.title &"}),  # expression_syntax (lexer)
        with_input(notes={"$expr": "abs(trigger.title)"}),  # expression_runtime on the sample
        with_input(notes={"$expr": " || ".join(["trigger.title"] * 90)}),  # expression_too_long
        with_input(notes={"$expr": "[" * 41 + "trigger.title" + "]" * 41}),  # expression_too_deep
        with_input(notes={"$expr": "decimal('1E+10000000')"}),  # expression_too_big
        with_input(notes={"$expr": "add_days('2026-11-28', `1e11`)"}),  # expression_out_of_range
        with_input(currency="USD"),  # enum on the sample
        with_input(lines={"$expr": "trigger.lines[0]"}),  # type on the sample
        with_input(customer={"$expr": "trigger.customer"}, colour="red"),  # unknown_fields
        with_input(lines=[]),  # minItems 1 on the sample
        with_input(lines=[{"quantity": 1}]),  # choice (x-message) on the sample
    ]


def design_errors() -> list[FieldError]:
    registry = default_registry()
    return [e for flow in bad_flows() for e in check_flow(flow, registry).errors]


def test_every_design_time_problem_reads_in_spanish_and_its_english_is_made_again_the_same():
    errors = design_errors()
    codes = {e.code for e in errors}
    assert codes >= {
        "unknown_trigger",
        "duplicate_step",
        "unknown_action",
        "unmapped",
        "unknown_function",
        "unknown_root",
        "unknown_step",
        "unknown_field",
        "literal_looks_like_path",
        "expression_shape",
        "expression_syntax",
        "expression_runtime",
        "expression_too_long",
        "expression_too_deep",
        "expression_too_big",
        "expression_out_of_range",
        "enum",
        "type",
        "unknown_fields",
        "minItems",
        "choice",
    }
    for error in errors:
        stored = json.loads(json.dumps(error.as_dict()))  # as a run log keeps it
        assert messages.localized(stored, "en") == error.message, error
        spanish = messages.localized(stored, "es")
        assert spanish == error.text("es") != error.message, error
        assert "{" not in spanish.replace('{"$expr"', ""), spanish


def spanish(errors: list[FieldError]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for error in errors:
        found.setdefault(error.path, []).append(error.text("es"))
    return found


def test_the_checks_name_the_field_and_the_expression_in_spanish():
    flow = copy.deepcopy(DEMO_FLOW)
    flow["steps"][1]["input"]["customer"] = {"$expr": "trigger.cliente"}
    flow["steps"][1]["input"]["currency"] = "USD"
    flow["steps"][1]["input"]["notes"] = {"$expr": "steps.issue.number"}
    flow["steps"][1]["input"]["external_ref"] = "{{ trigger.deal_id }}"

    found = spanish(check_flow(flow, default_registry()).errors)

    assert found["steps[1].input.customer"] == [
        "la expresión 'trigger.cliente' lee 'cliente', que no existe ahí (campos: deal_id, "
        "source, title, won_at, owner, campaign, currency, amount, customer, lines)",
        "con los datos de ejemplo, el valor es obligatorio y falta",
    ]
    assert found["steps[1].input.notes"] == [
        "la expresión 'steps.issue.number' lee steps.issue, que no es un paso anterior "
        "(anteriores: deal)"
    ]
    assert found["steps[1].input.external_ref"] == [
        "el texto '{{ trigger.deal_id }}' parece una referencia a un campo, pero está escrito "
        "como texto normal y se enviaría tal cual, no el valor del campo; para usar el valor del "
        "campo, elígelo con «Tomar de un campo» (en JSON, escríbelo como expresión: "
        '{"$expr": "trigger.deal_id"})'
    ]
    assert found["steps[1].input.currency"] == [
        "con los datos de ejemplo, el valor debe ser uno de estos: EUR"
    ]


def test_schema_problems_read_in_spanish():
    payload = copy.deepcopy(load_schema("triggers/deal_won.json")["examples"][0])
    payload.update(deal_id="", won_at="ayer", colour=1)
    payload["customer"]["email"] = "sin-arroba"
    payload["customer"]["tax_id"] = 123
    payload["lines"] = [{"quantity": 1}, {**payload["lines"][0], "tax_rate": 7}]

    found = spanish(validate("triggers/deal_won.json", payload))

    assert found == {
        "": ["tiene campos que no se admiten: colour (revisa cómo están escritos)"],
        "deal_id": ["no puede estar vacío"],
        "won_at": ['no es una fecha y hora válidas (ISO 8601) ("ayer")'],
        "customer.email": ['no es un correo electrónico válido ("sin-arroba")'],
        "customer.tax_id": ["debe ser texto, y es 123"],
        "lines[0]": [
            "necesita una referencia (sku) del catálogo, o description, unit_price y tax_rate"
        ],
        "lines[1].tax_rate": ["debe ser uno de estos: 0, 4, 10, 21"],
    }


def test_an_error_without_a_text_of_ours_keeps_its_own_words():
    # Errors of the invoicing core carry a message and no code.
    stored = {"path": "customer.tax_id", "message": "the NIF's control letter is wrong"}
    assert messages.localized(stored, "es") == "the NIF's control letter is wrong"
    made = FieldError("x", "jsonschema's own words", "dependentRequired", {"expected": {}})
    assert made.text("es") == "jsonschema's own words"
    with pytest.raises(ValueError, match="no text for error code 'unknown_field'"):
        FieldError.of("x", "unknown_field", field="a")  # a param missing is a bug
