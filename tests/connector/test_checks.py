"""Design-time checks name the field of each bad mapping, and the preview shows the result."""

from __future__ import annotations

import copy
import time

import pytest

from connector import limits, mapping
from connector.checks import check_flow, enableable
from connector.errors import ConfigurationError
from connector.registry import default_registry
from web.demo import DEMO_FLOW


def flow_with(**invoice_input) -> dict:
    flow = copy.deepcopy(DEMO_FLOW)
    step = next(s for s in flow["steps"] if s["id"] == "invoice")
    for key, value in invoice_input.items():
        if value is None:
            del step["input"][key]
        else:
            step["input"][key] = value
    return flow


def problems(flow, sample=None) -> list[str]:
    return [str(e) for e in check_flow(flow, default_registry(), sample).errors]


def test_the_demo_flow_passes_and_its_preview_shows_the_mapped_draft():
    report = check_flow(DEMO_FLOW, default_registry())
    assert report.errors == []
    preview = report.preview["invoice"]
    assert preview["customer"]["tax_id"] == "B12345674"
    assert preview["external_ref"] == "D-1001"
    assert len(preview["lines"]) == 2


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"customer": {"$expr": "trigger.cliente"}},
            "steps[1].input.customer: expression 'trigger.cliente' reads 'cliente', which does not "
            "exist there (fields: deal_id, source, title, won_at, owner, campaign, currency, "
            "amount, customer, lines)",
        ),
        (
            {"notes": {"$expr": "trigger.customer.nombre"}},
            "steps[1].input.notes: expression 'trigger.customer.nombre' reads 'nombre', which does "
            "not exist there (fields: name, tax_id, email, address)",
        ),
        (
            {"external_ref": {"$expr": "steps.issue.number"}},
            "steps[1].input.external_ref: expression 'steps.issue.number' reads steps.issue, which "
            "is not an earlier step (earlier: deal)",
        ),
        (
            {"notes": {"$expr": "mayusculas(trigger.title)"}},
            "steps[1].input.notes: expression 'mayusculas(trigger.title)' calls an unknown "
            "function",
        ),
        (
            {"lines": None},
            "steps[1].input.lines: invoicing.create_draft_invoice needs 'lines' but the step does "
            "not map it",
        ),
        (
            {"currency": "USD"},
            "steps[1].input.currency: on the sample data this must be one of: EUR",
        ),
        (
            {"lines": {"$expr": "trigger.lines[0]"}},
            "steps[1].input.lines: on the sample data this must be a list, got an object",
        ),
        (
            {"customer": {"$expr": "trigger.customer.["}},
            "steps[1].input.customer: expression 'trigger.customer.[' has a syntax error at "
            "position 18",
        ),
    ],
    ids=[
        "unknown-trigger-field",
        "unknown-nested-field",
        "later-step",
        "unknown-function",
        "required-unmapped",
        "wrong-enum",
        "wrong-type",
        "syntax",
    ],
)
def test_each_kind_of_bad_mapping_is_refused_naming_the_field(change, expected):
    found = problems(flow_with(**change))
    assert any(p.startswith(expected) for p in found), found


def test_paths_into_earlier_steps_are_checked_against_their_output_schema():
    flow = copy.deepcopy(DEMO_FLOW)
    flow["steps"].append(
        {
            "id": "issue",
            "action": "invoicing.issue_invoice",
            "input": {"invoice_id": {"$expr": "steps.invoice.invoice_idd"}},
        }
    )
    found = problems(flow)
    assert found[0].startswith(
        "steps[2].input.invoice_id: expression 'steps.invoice.invoice_idd' reads 'invoice_idd'"
    )
    flow["steps"][2]["input"]["invoice_id"] = {"$expr": "steps.invoice.invoice_id"}
    assert problems(flow) == []


def test_projections_and_filters_look_inside_list_items():
    found = problems(flow_with(notes={"$expr": "join(', ', trigger.lines[?price > `1`].skuu)"}))
    assert any("reads 'price'" in p for p in found)
    assert any("reads 'skuu'" in p for p in found)


def test_the_preview_uses_the_sample_given_instead_of_the_example():
    sample = copy.deepcopy(check_flow(DEMO_FLOW, default_registry()).preview["deal"])
    sample["customer"]["tax_id"] = "X1234567L"
    report = check_flow(DEMO_FLOW, default_registry(), sample)
    assert report.preview["invoice"]["customer"]["tax_id"] == "X1234567L"


# --- a literal that is a path: an expression written without {"$expr": ...} ---------------


def flagged(flow) -> list[tuple[str, str, str]]:
    return [
        (e.path, e.params["text"], e.params["expression"])
        for e in check_flow(flow, default_registry()).errors
        if e.code == "literal_looks_like_path"
    ]


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("trigger.deal_id", "trigger.deal_id"),
        ("trigger.customer.tax_id", "trigger.customer.tax_id"),
        ("steps.deal", "steps.deal"),
        ("  trigger.deal_id\n", "trigger.deal_id"),
        ("{{trigger.deal_id}}", "trigger.deal_id"),
        ("{{ trigger.customer.tax_id }}", "trigger.customer.tax_id"),
        ("$.trigger.deal_id", "trigger.deal_id"),
        ("@.trigger.title", "trigger.title"),
        ("trigger.lines[0].sku", "trigger.lines[0].sku"),
        ("trigger.lines[*].sku", "trigger.lines[*].sku"),
    ],
)
def test_a_literal_that_is_exactly_a_readable_path_is_refused_naming_the_field(text, path):
    flow = flow_with(external_ref=text)
    assert flagged(flow) == [("steps[1].input.external_ref", text, path)]
    found = problems(flow)
    assert any(
        p.startswith(f"steps[1].input.external_ref: the text {text!r} looks like a field reference")
        and p.endswith(f'write it as an expression: {{"$expr": "{path}"}})')
        for p in found
    ), found


@pytest.mark.parametrize(
    "text",
    [
        "Pedido trigger.deal_id",  # words around it: a sentence, not a path
        "trigger.cliente",  # not a field of the trigger
        "trigger.customer.tax_id.digits",  # below a text there is nothing to read
        "steps.issue.number",  # no such earlier step
        "steps.invoice.invoice_id",  # the step itself, not an earlier one
        "trigger",  # the root alone is a word
        "Trigger.deal_id",
        "trigger.deal_id.",
        "{{trigger.deal_id}} y más",
    ],
)
def test_a_literal_that_only_resembles_a_path_stays_literal(text):
    flow = flow_with(notes=text, external_ref="trigger.deal_id")
    assert flagged(flow) == [("steps[1].input.external_ref", "trigger.deal_id", "trigger.deal_id")]


def test_a_path_wanted_as_text_can_be_written_as_a_jmespath_string():
    flow = flow_with(notes={"$expr": "'trigger.title'"}, external_ref="trigger.deal_id")
    assert flagged(flow) == [("steps[1].input.external_ref", "trigger.deal_id", "trigger.deal_id")]


def test_literals_nested_in_lists_and_objects_and_later_steps_are_checked():
    flow = flow_with(
        lines=[{"description": "{{trigger.title}}", "quantity": 1, "unit_price": "1.00"}]
    )
    flow["steps"].append(
        {
            "id": "issue",
            "action": "invoicing.issue_invoice",
            "input": {"invoice_id": "steps.invoice.invoice_id"},
        }
    )
    assert flagged(flow) == [
        ("steps[1].input.lines[0].description", "{{trigger.title}}", "trigger.title"),
        ("steps[2].input.invoice_id", "steps.invoice.invoice_id", "steps.invoice.invoice_id"),
    ]


def test_a_filter_literal_that_is_a_path_is_refused_too():
    flow = copy.deepcopy(DEMO_FLOW)
    flow["steps"].insert(
        0, {"id": "positive", "filter": {"amount": "trigger.amount"}, "explain": "no amount"}
    )
    assert flagged(flow) == [
        ("steps[0].filter.amount", "trigger.amount", "trigger.amount"),
    ]
    flow["steps"][0]["filter"] = {"$expr": "trigger.amount"}
    assert problems(flow) == []


def test_a_flow_with_a_literal_path_is_refused_for_enabling():
    with pytest.raises(ConfigurationError, match="looks like a field reference"):
        enableable(flow_with(external_ref="trigger.deal_id"), default_registry())


# --- what an expression may cost, checked on the sample ------------------------------------

REGISTRY = default_registry()
BOMB = "decimal('1E+10000000')"  # 22 characters that wrote out ten million digits
SLOW = "`1`" + " | [@, @]" * 16 + " | [*]" + "[*]" * 15 + ".sum([" + ", ".join(["abs(@)"] * 30)
SLOW += "])"  # 2**16 leaves, 30 calls on each: seconds of work


def test_an_expression_that_makes_too_big_a_value_is_named_by_field_in_both_languages():
    report = check_flow(flow_with(notes={"$expr": BOMB}), default_registry())
    [error] = report.errors
    assert (error.path, error.code) == ("steps[1].input.notes", "expression_too_big")
    assert str(error).startswith(
        "steps[1].input.notes: on the sample data: expression \"decimal('1E+10000000')\" makes "
        "a value too big: more than 40 digits"
    )
    assert error.text("es").startswith(
        "con los datos de ejemplo: la expresión \"decimal('1E+10000000')\" genera un valor "
        "demasiado grande"
    )
    assert "invoice" not in report.preview


def test_an_expression_too_long_or_too_deep_is_refused_before_it_is_tried():
    report = check_flow(flow_with(notes={"$expr": " || ".join(["trigger.title"] * 90)}), REGISTRY)
    [error] = report.errors
    assert (error.path, error.code) == ("steps[1].input.notes", "expression_too_long")
    assert str(error).startswith("steps[1].input.notes: expression 'trigger.title || ")
    assert "1526 characters long, more than the 1000 characters allowed" in str(error)
    report = check_flow(flow_with(notes={"$expr": "[" * 41 + "trigger.title" + "]" * 41}), REGISTRY)
    assert [(e.path, e.code) for e in report.errors] == [
        ("steps[1].input.notes", "expression_too_deep")
    ]


def test_the_check_stops_a_slow_expression_at_its_deadline_shared_by_every_step(monkeypatch):
    monkeypatch.setattr(limits, "CHECK_SECONDS", 0.3)
    started = time.monotonic()
    report = check_flow(flow_with(notes={"$expr": SLOW}), default_registry())
    assert time.monotonic() - started < 1.5
    [error] = report.errors
    assert (error.path, error.code) == ("steps[1].input.notes", "expression_too_slow")
    assert error.params["seconds"] == 0.3 and "tarda demasiado" in error.text("es")


def test_a_check_without_preview_finds_what_it_can_without_evaluating_anything(monkeypatch):
    def evaluated(*args, **kwargs):
        raise AssertionError("an expression was evaluated")

    monkeypatch.setattr(mapping, "evaluate", evaluated)
    flow = flow_with(notes={"$expr": BOMB}, customer={"$expr": "trigger.cliente"})
    report = check_flow(flow, default_registry(), preview=False)
    assert [(e.path, e.code) for e in report.errors] == [
        ("steps[1].input.customer", "unknown_field")
    ]
    assert report.preview == {} and report.tried is False
