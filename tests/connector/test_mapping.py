"""Mappings: literals stay literal; {"$expr": "<JMESPath>"} is compiled once and evaluated."""

import copy
import time
from decimal import Decimal

import jmespath
import pytest

from connector.errors import ConfigurationError, FailureClass
from connector.limits import Deadline
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


# --- bounds: what one expression may cost ----------------------------------------------------


def refused(mapping, data=DATA, **options):
    """The field errors evaluating `mapping` gives (compiling it must succeed)."""
    with pytest.raises(ConfigurationError) as exc:
        evaluate(compile_mapping(mapping), data, **options)
    return exc.value.errors


def test_an_expression_longer_than_the_limit_is_refused_when_compiled_naming_the_field():
    long = " || ".join(["trigger.deal_id"] * 100)
    assert len(long) > 1000
    with pytest.raises(ConfigurationError) as exc:
        compile_mapping({"notes": {"$expr": long}}, "steps[1].input")
    [error] = exc.value.errors
    assert (error.path, error.code) == ("steps[1].input.notes", "expression_too_long")
    assert "1000 characters" in error.message
    assert "como mucho se admiten 1000 caracteres" in error.text("es")


@pytest.mark.parametrize(
    "expression",
    [
        "(" * 45 + "trigger" + ")" * 45,
        "[" * 45 + "trigger" + "]" * 45,
        "not_null(" * 45 + "trigger" + ")" * 45,
        "!" * 900 + "trigger",  # deeper than the parser itself can go
    ],
    ids=["parentheses", "lists", "calls", "nots"],
)
def test_an_expression_nested_too_deep_is_refused_when_compiled(expression):
    with pytest.raises(ConfigurationError) as exc:
        compile_mapping({"v": {"$expr": expression}})
    [error] = exc.value.errors
    assert (error.path, error.code) == ("v", "expression_too_deep")
    assert "more than 40 levels" in error.message
    assert "más de 40 niveles" in error.text("es")


def test_a_list_doubled_at_each_pipe_is_stopped_before_it_grows():
    # 30 pipes: 2**30 copies written out, though each step only makes a pair of references.
    doubling = "trigger.customer | [@, @]" + " | [@, @]" * 29
    assert len(doubling) < 300
    [error] = refused({"v": {"$expr": doubling}})
    assert (error.path, error.code) == ("v", "expression_too_big")
    assert "more than 1000000 characters" in error.message
    assert "demasiado grande" in error.text("es")


def test_a_list_doubled_and_flattened_at_each_pipe_is_stopped_too():
    doubling = "trigger.lines" + " | [@, @][]" * 20  # 2 million real items
    [error] = refused({"v": {"$expr": doubling}})
    assert error.code == "expression_too_big"


def test_working_on_every_branch_of_a_doubled_list_is_stopped_by_the_deadline():
    # 2**16 leaves, within the size bound; 30 function calls on each take seconds.
    doubling = "`1`" + " | [@, @]" * 16 + " | [*]" + "[*]" * 15
    work = doubling + ".sum([" + ", ".join(["abs(@)"] * 30) + "])"
    started = time.monotonic()
    [error] = refused({"v": {"$expr": work}})
    assert (error.code, error.params["seconds"]) == ("expression_too_slow", 0.5)
    assert time.monotonic() - started < 1.5


def test_a_value_nested_too_deep_is_refused_when_evaluated():
    # Eleven parts, each four levels deep as written: 44 levels as a value.
    nesting = {"v": {"$expr": "trigger.deal_id" + ".[[[[@]]]]" * 11}}
    compile_mapping(nesting)
    [error] = refused(nesting)
    assert (error.path, error.code) == ("v", "expression_too_deep")


def test_the_results_of_a_mapping_together_are_bounded_too():
    big = {"trigger": {"text": "x" * 100_000}, "steps": {}}
    fields = {f"f{i}": {"$expr": "trigger"} for i in range(20)}
    errors = refused(fields, big)
    assert errors[0].code == "expression_too_big" and errors[0].path.startswith("f")
    fine = run({"a": {"$expr": "trigger"}, "b": {"$expr": "trigger.text"}}, big)
    assert fine["b"] == "x" * 100_000


def test_an_expression_that_runs_past_its_deadline_is_stopped_naming_the_field():
    data = {"trigger": {"lines": [{"sku": f"S-{i}"} for i in range(500)]}, "steps": {}}
    [error] = refused(
        {"lines": {"$expr": "trigger.lines[*].lower(sku)"}}, data, deadline=Deadline.after(0)
    )
    assert (error.path, error.code) == ("lines", "expression_too_slow")
    assert "tarda demasiado" in error.text("es")


def test_ordinary_expressions_stay_within_the_bounds():
    mapping = {
        "lines": {"$expr": "trigger.lines[*].{sku: sku, qty: to_number(quantity)}"},
        "all": {"$expr": "[trigger.customer, trigger.lines, steps.invoice]"},
        "skus": {"$expr": "join(', ', sort(trigger.lines[*].sku))"},
        "sorted": {"$expr": "sort_by(trigger.lines, &sku)[*].sku"},
        "mapped": {"$expr": "map(&sku, trigger.lines)"},
        "first": {"$expr": "min_by(trigger.lines, &sku).sku"},
    }
    assert run(mapping) == {
        "lines": [{"sku": "CONS-H", "qty": 20}, {"sku": "LIC-ERP", "qty": 1}],
        "all": [DATA["trigger"]["customer"], DATA["trigger"]["lines"], DATA["steps"]["invoice"]],
        "skus": "CONS-H, LIC-ERP",
        "sorted": ["CONS-H", "LIC-ERP"],
        "mapped": ["CONS-H", "LIC-ERP"],
        "first": "CONS-H",
    }


def test_a_long_runtime_error_is_cut_short_in_the_message():
    data = {"trigger": {"text": "x" * 50_000}, "steps": {}}
    [error] = refused({"v": {"$expr": "abs(trigger.text)"}}, data)
    assert error.code == "expression_runtime" and len(error.message) < 1000
