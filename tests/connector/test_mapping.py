"""Mappings: literals stay literal; {"$expr": "<JMESPath>"} is compiled once and evaluated."""

import copy
from decimal import Decimal

import jmespath
import pytest

from connector.errors import ConfigurationError, FailureClass
from connector.mapping import compile_mapping, evaluate, truthy

DATA = {
    "trigger": {
        "deal_id": "D-1001",
        "name": "Acme Soluciones SL",
        "amount": "2480.50",
        "won": False,
        "owner": None,
        "customer": {"name": "Acme", "tax_id": "B12345674"},
        "lines": [
            {"sku": "CONS-H", "quantity": "20"},
            {"sku": "LIC-ERP", "quantity": 1},
        ],
    },
    "steps": {"invoice": {"invoice_id": 42, "status": "draft"}},
}


def run(mapping, data=DATA):
    return evaluate(compile_mapping(mapping), data)


# --- literals ------------------------------------------------------------------------------


def test_literals_of_every_json_type_stay_literal():
    mapping = {
        "text": "hello",
        "integer": 7,
        "number": 19.99,
        "yes": True,
        "no": False,
        "nothing": None,
        "list": [1, "two", None, [3]],
        "nested": {"a": {"b": {"c": [{"d": "e"}]}}},
        "empty_dict": {},
        "empty_list": [],
    }
    assert run(mapping) == mapping


@pytest.mark.parametrize(
    "text",
    ["trigger.deal_id", "steps.invoice.invoice_id", "{{ trigger.name }}", "$expr", "@", "`1`"],
)
def test_strings_that_look_like_expressions_stay_literal(text):
    assert run({"value": text}) == {"value": text}


def test_a_key_that_is_almost_expr_is_an_ordinary_key():
    mapping = {"value": {"expr": "trigger.deal_id", "$Expr": "trigger.name"}}
    assert run(mapping) == mapping


def test_a_literal_top_level_value_stays_literal():
    assert run("trigger.deal_id") == "trigger.deal_id"
    assert run([1, 2]) == [1, 2]
    assert run(None) is None


def test_evaluating_does_not_change_the_mapping_or_the_data():
    mapping = {"a": {"$expr": "trigger.customer"}, "b": [{"x": 1}]}
    mapping_before = copy.deepcopy(mapping)
    data_before = copy.deepcopy(DATA)
    compiled = compile_mapping(mapping)
    evaluate(compiled, DATA)
    assert mapping == mapping_before
    assert data_before == DATA


# --- expressions ---------------------------------------------------------------------------


def test_an_expression_reads_from_the_trigger():
    assert run({"ref": {"$expr": "trigger.deal_id"}}) == {"ref": "D-1001"}


def test_an_expression_reads_the_output_of_an_earlier_step():
    assert run({"id": {"$expr": "steps.invoice.invoice_id"}}) == {"id": 42}


def test_expressions_inside_nested_dicts_and_lists_are_evaluated_in_place():
    mapping = {
        "customer": {"name": {"$expr": "trigger.customer.name"}, "country": "ES"},
        "refs": [
            "fixed",
            {"$expr": "trigger.deal_id"},
            {"inner": {"$expr": "steps.invoice.status"}},
        ],
    }
    assert run(mapping) == {
        "customer": {"name": "Acme", "country": "ES"},
        "refs": ["fixed", "D-1001", {"inner": "draft"}],
    }


def test_an_expression_can_build_lists_and_objects():
    mapping = {
        "lines": {"$expr": "trigger.lines[].{sku: sku, qty: quantity}"},
        "count": {"$expr": "length(trigger.lines)"},
    }
    assert run(mapping) == {
        "lines": [{"sku": "CONS-H", "qty": "20"}, {"sku": "LIC-ERP", "qty": 1}],
        "count": 2,
    }


def test_an_expression_can_be_the_whole_mapping():
    assert run({"$expr": "trigger.customer"}) == {"name": "Acme", "tax_id": "B12345674"}


def test_an_expression_returning_false_or_zero_or_empty_text_keeps_the_key():
    data = {"trigger": {"flag": False, "zero": 0, "empty": "", "none": []}, "steps": {}}
    mapping = {k: {"$expr": f"trigger.{k}"} for k in ("flag", "zero", "empty", "none")}
    assert run(mapping, data) == {"flag": False, "zero": 0, "empty": "", "none": []}


def test_a_compiled_mapping_can_be_evaluated_many_times_with_different_data():
    compiled = compile_mapping({"ref": {"$expr": "trigger.deal_id"}})
    assert evaluate(compiled, {"trigger": {"deal_id": "A"}, "steps": {}}) == {"ref": "A"}
    assert evaluate(compiled, {"trigger": {"deal_id": "B"}, "steps": {}}) == {"ref": "B"}


# --- missing values ------------------------------------------------------------------------


def test_a_missing_path_leaves_the_key_out_of_the_result():
    mapping = {
        "ref": {"$expr": "trigger.deal_id"},
        "campaign": {"$expr": "trigger.campaign"},
        "deep": {"$expr": "steps.not_run_yet.invoice_id"},
    }
    assert run(mapping) == {"ref": "D-1001"}


def test_a_null_source_value_also_leaves_the_key_out():
    assert run({"owner": {"$expr": "trigger.owner"}, "x": 1}) == {"x": 1}


def test_a_literal_null_is_kept_unlike_a_missing_expression_value():
    assert run({"notes": None, "owner": {"$expr": "trigger.owner"}}) == {"notes": None}


def test_a_missing_path_inside_a_nested_object_leaves_only_that_key_out():
    mapping = {
        "customer": {
            "name": {"$expr": "trigger.customer.name"},
            "email": {"$expr": "trigger.customer.email"},
        }
    }
    assert run(mapping) == {"customer": {"name": "Acme"}}


def test_a_missing_value_inside_a_list_stays_as_null_to_keep_the_positions():
    mapping = {"refs": [{"$expr": "trigger.campaign"}, {"$expr": "trigger.deal_id"}]}
    assert run(mapping) == {"refs": [None, "D-1001"]}


# --- compile-time errors -------------------------------------------------------------------


def test_a_syntax_error_is_rejected_at_compile_time_with_the_field_path_and_position():
    with pytest.raises(ConfigurationError) as exc:
        compile_mapping({"customer": {"name": {"$expr": "trigger.customer.name ~ 1"}}})
    error = exc.value
    assert error.failure_class is FailureClass.CONFIGURATION
    assert len(error.errors) == 1
    field = error.errors[0]
    assert field.path == "customer.name"
    assert field.code == "expression_syntax"
    assert field.params["position"] == 22
    assert "position 22" in field.message
    assert "'~' is not allowed there" in field.message
    assert "customer.name: " in error.message


def test_an_expression_that_ends_too_early_says_so():
    with pytest.raises(ConfigurationError) as exc:
        compile_mapping({"ref": {"$expr": "trigger.lines[0"}})
    assert "ends too early" in exc.value.errors[0].message


def test_an_unexpected_token_is_named():
    with pytest.raises(ConfigurationError) as exc:
        compile_mapping({"ref": {"$expr": "trigger deal_id"}})
    field = exc.value.errors[0]
    assert "position 8" in field.message
    assert "unexpected 'deal_id'" in field.message


def test_several_bad_expressions_are_reported_together_each_with_its_path():
    mapping = {
        "a": {"$expr": "trigger.["},
        "ok": {"$expr": "trigger.deal_id"},
        "lines": [{"qty": {"$expr": "x y"}}, {"$expr": "foo &"}],
    }
    with pytest.raises(ConfigurationError) as exc:
        compile_mapping(mapping)
    paths = [e.path for e in exc.value.errors]
    assert paths == ["a", "lines[0].qty", "lines[1]"]
    for path in paths:
        assert path in exc.value.message
    assert all("syntax error at position" in e.message for e in exc.value.errors)


def test_where_prefixes_the_paths_and_the_message():
    with pytest.raises(ConfigurationError) as exc:
        compile_mapping({"ref": {"$expr": "trigger.["}}, where="steps[0].input")
    assert exc.value.errors[0].path == "steps[0].input.ref"
    assert exc.value.message.startswith("steps[0].input: ref: ")


@pytest.mark.parametrize("value", [1, None, ["trigger.x"], {"a": 1}, "", "   "])
def test_an_expr_whose_value_is_not_a_non_empty_string_is_rejected(value):
    with pytest.raises(ConfigurationError) as exc:
        compile_mapping({"ref": {"$expr": value}})
    field = exc.value.errors[0]
    assert field.path == "ref"
    assert field.code == "expression_shape"
    assert '{"$expr": "<JMESPath>"}' in field.message


def test_an_expr_with_other_keys_beside_it_is_rejected():
    with pytest.raises(ConfigurationError) as exc:
        compile_mapping({"ref": {"$expr": "a", "x": 1}})
    field = exc.value.errors[0]
    assert (field.path, field.code) == ("ref", "expression_shape")
    assert "with nothing else" in field.message


def test_shape_and_syntax_errors_are_reported_together():
    with pytest.raises(ConfigurationError) as exc:
        compile_mapping({"a": {"$expr": 1}, "b": {"$expr": "trigger.["}})
    assert [(e.path, e.code) for e in exc.value.errors] == [
        ("a", "expression_shape"),
        ("b", "expression_syntax"),
    ]


def test_a_malformed_top_level_expression_with_where_has_no_dangling_dot_in_its_path():
    with pytest.raises(ConfigurationError) as exc:
        compile_mapping({"$expr": 1}, where="steps[0].input")
    assert exc.value.errors[0].path == "steps[0].input"


# --- runtime errors ------------------------------------------------------------------------


def test_a_runtime_error_raises_configuration_error_naming_the_field():
    compiled = compile_mapping({"total": {"$expr": "abs(trigger.name)"}})
    with pytest.raises(ConfigurationError) as exc:
        evaluate(compiled, DATA)
    error = exc.value
    assert error.failure_class is FailureClass.CONFIGURATION
    assert [(e.path, e.code) for e in error.errors] == [("total", "expression_runtime")]
    assert "abs(trigger.name)" in error.errors[0].message
    assert error.message.startswith("total: expression 'abs(trigger.name)' failed")


def test_an_unknown_function_is_a_runtime_error_naming_the_field():
    compiled = compile_mapping({"lines": [{"qty": {"$expr": "no_such_function(trigger.amount)"}}]})
    with pytest.raises(ConfigurationError) as exc:
        evaluate(compiled, DATA)
    assert exc.value.errors[0].path == "lines[0].qty"


def test_several_runtime_errors_are_reported_together():
    compiled = compile_mapping(
        {"a": {"$expr": "abs(trigger.name)"}, "ok": 1, "b": {"$expr": "length(`1`)"}}
    )
    with pytest.raises(ConfigurationError) as exc:
        evaluate(compiled, DATA)
    assert [e.path for e in exc.value.errors] == ["a", "b"]


# --- truth, as a filter step sees it -------------------------------------------------------

FALSE_IN_JMESPATH = [False, None, "", [], {}]
TRUE_IN_JMESPATH = [
    True,
    0,
    0.0,
    Decimal("0"),
    Decimal("0.00"),
    -1,
    "0",
    " ",
    "false",
    [0],
    {"a": None},
]


@pytest.mark.parametrize("value", FALSE_IN_JMESPATH, ids=repr)
def test_only_false_null_and_empty_text_list_or_object_are_false(value):
    assert truthy(value) is False


@pytest.mark.parametrize("value", TRUE_IN_JMESPATH, ids=repr)
def test_everything_else_is_true_zero_amounts_included(value):
    # An amount of 0 is true in JMESPath although 0 == False in Python.
    assert truthy(value) is True


@pytest.mark.parametrize("value", FALSE_IN_JMESPATH + TRUE_IN_JMESPATH, ids=repr)
def test_truth_agrees_with_jmespath_own_not(value):
    assert truthy(value) is not jmespath.search("!value", {"value": value})


def test_an_empty_tuple_is_an_empty_list_and_false():
    assert truthy(()) is False
    assert truthy((0,)) is True
