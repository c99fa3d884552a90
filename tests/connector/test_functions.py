"""Business functions in mappings: dates, amounts, text, defaults, NIFs and lookup tables."""

from __future__ import annotations

import pytest

from connector.errors import ConfigurationError
from connector.mapping import compile_mapping, evaluate

DATA = {
    "trigger": {
        "won_at": "2026-11-27T23:30:00+00:00",
        "summer": "2026-07-01T22:30:00Z",
        "nif": "es b-1234567 4",
        "amount": "2480.505",
        "lines": [{"code": "PRD-1", "price": "19.99"}, {"code": "PRD-9", "price": 0.01}],
        "empty": "",
    }
}
LOOKUPS = {"sku": {"PRD-1": "CONS-H"}}


def run(expression: str):
    return evaluate(compile_mapping({"v": {"$expr": expression}}), DATA, LOOKUPS).get("v")


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("to_date(trigger.won_at)", "2026-11-28"),  # 00:30 next day in Madrid (winter, +01:00)
        ("to_date(trigger.summer)", "2026-07-02"),  # 00:30 in Madrid (summer, +02:00)
        ("to_date_in(trigger.won_at, 'UTC')", "2026-11-27"),
        ("to_timezone(trigger.won_at, 'Europe/Madrid')", "2026-11-28T00:30:00+01:00"),
        ("format_date(trigger.won_at, '%d/%m/%Y')", "27/11/2026"),
        ("add_days('2026-11-28', `30`)", "2026-12-28"),
        ("add_days('2026-03-01', `-1`)", "2026-02-28"),
        ("round(trigger.amount, `2`)", "2480.51"),  # half up, as invoices round
        ("round('2.665', `2`)", "2.67"),
        ("decimal(`19.9`)", "19.9"),
        ("multiply('0.1', '3')", "0.3"),  # exact, where floats give 0.30000000000000004
        ("sum_decimal(trigger.lines[*].price)", "20.00"),
        ("coalesce(trigger.missing, trigger.empty, 'por defecto')", "por defecto"),
        ("nif(trigger.nif)", "B12345674"),
        ("upper(trim('  acme   sl '))", "ACME SL"),
        ("left('Consultoría', `5`)", "Consu"),
        ("replace('A-B', '-', '/')", "A/B"),
        ("concat('Oportunidad ', trigger.missing, 'D-1')", "Oportunidad D-1"),
        ("trigger.lines[*].lookup_or('sku', code, 'SIN-SKU')", ["CONS-H", "SIN-SKU"]),
        ("lookup('sku', 'PRD-1')", "CONS-H"),
    ],
)
def test_business_functions_give_exact_answers(expression, expected):
    assert run(expression) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("lookup('sku', 'PRD-9')", "'PRD-9' is not in table 'sku'"),
        ("lookup('precios', 'X')", "there is no lookup table 'precios' (tables: sku)"),
        ("round('abc', `2`)", "round() needs a number, got 'abc'"),
        ("to_date('ayer')", "cannot read 'ayer' as a date"),
        ("to_date_in(trigger.won_at, 'Mars/Base')", "does not know the time zone 'Mars/Base'"),
    ],
)
def test_bad_values_fail_with_a_message_that_names_the_field_and_the_problem(expression, message):
    with pytest.raises(ConfigurationError) as exc:
        run(expression)
    assert exc.value.errors[0].path == "v"
    assert message in exc.value.errors[0].message


# --- bounds: no function answers with a value too big, or a crash ---------------------------


def refused(expression: str):
    with pytest.raises(ConfigurationError) as exc:
        run(expression)
    [error] = exc.value.errors
    assert error.path == "v"
    return error


@pytest.mark.parametrize(
    "expression",
    [
        "decimal('1E+10000000')",  # 22 characters that wrote out ten million digits
        "decimal('0E-1000000')",
        "round('1E+50', `2`)",
        "multiply('1E+30', '1E+30')",
        "sum_decimal(['9E+39', '9E+39'])",
    ],
)
def test_a_number_with_too_many_digits_is_refused(expression):
    error = refused(expression)
    assert error.code == "expression_too_big"
    assert "more than 40 digits" in error.message
    assert "más de 40 cifras" in error.text("es")


@pytest.mark.parametrize(
    ("expression", "function", "argument"),
    [
        ("add_days('2026-11-28', `1e11`)", "add_days", "days"),
        ("add_days('2026-11-28T10:00:00+01:00', `-1e6`)", "add_days", "days"),
        ("add_days('9999-12-30', `5`)", "add_days", "days"),
        ("add_days('2026-11-28', to_number('nan'))", "add_days", "days"),
        ("round('2.5', `1e9`)", "round", "places"),
        ("round('2.5', `-41`)", "round", "places"),
        ("left('abc', `1e400`)", "left", "count"),
    ],
)
def test_a_number_out_of_a_function_range_is_refused_saying_the_range(
    expression, function, argument
):
    error = refused(expression)
    assert error.code == "expression_out_of_range"
    assert (error.params["function"], error.params["argument"]) == (function, argument)
    assert f"{function}() needs" in error.message
    assert f"{function}() necesita" in error.text("es")


def test_the_range_of_days_is_what_keeps_the_date_within_the_calendar():
    error = refused("add_days('2026-11-28', `1e11`)")
    assert error.params["low"] == -739947 and error.params["high"] == 2912111
    assert run("add_days('2026-11-28', `2912111`)") == "9999-12-31"


def grown(levels: int) -> str:
    """trigger.nif with 16 characters put between each two, `levels` times (x17 a level)."""
    text = "trigger.nif"
    for _ in range(levels):
        text = f"replace({text}, '', '0123456789abcdef')"
    return text


def test_text_that_grows_at_each_level_is_refused_before_it_is_made():
    error = refused(grown(6))
    assert error.code == "expression_too_big"
    assert "characters" in error.message


@pytest.mark.parametrize(
    "expression",
    [
        "join(replace(trigger.nif, '', '0123456789'), [trigger.nif, trigger.nif]"
        + " | [@, @][]" * 12
        + ")",
        grown(3) + " | concat(@, @, @, @, @, @, @, @, @, @, @, @, @, @, @)",  # 15 x 73,694
        "to_string([trigger.lines, trigger.lines]" + " | [@, @]" * 14 + ")",
    ],
    ids=["join", "concat", "to_string"],
)
def test_functions_that_join_text_are_bounded_too(expression):
    assert refused(expression).code == "expression_too_big"


def test_a_date_a_time_zone_moves_out_of_the_calendar_is_an_expression_error_not_a_crash():
    error = refused("to_timezone('9999-12-31T23:30:00+00:00', 'Europe/Madrid')")
    assert error.code == "expression_runtime"
    assert "to_timezone()" in error.message
