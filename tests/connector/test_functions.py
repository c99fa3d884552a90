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
