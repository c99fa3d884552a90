"""Exact amounts: parsing, half-up rounding to cents, line amounts and document totals."""

from decimal import Decimal

import pytest

from invoicing.money import (
    AmountError,
    LineAmounts,
    TaxAmount,
    cents,
    document_totals,
    line_amounts,
    to_decimal,
)

D = Decimal


# --- to_decimal ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("19.99", "19.99"),
        ("1234.50", "1234.50"),
        ("-7.25", "-7.25"),
        ("0", "0"),
        ("  3.50 ", "3.50"),
        ("0.12345678", "0.12345678"),
    ],
)
def test_to_decimal_reads_strings_exactly_keeping_their_digits(value, expected):
    result = to_decimal(value)
    assert result == D(expected)
    assert str(result) == expected.strip()


@pytest.mark.parametrize(
    "value",
    [1e308, -1e300, 1e12, 10**12, 10**4000, 10**5000, "1e308", "1000000000000", D("1e308")],
    ids=["1e308", "-1e300", "1e12", "10**12", "4001 digits", "5001 digits", "1e308 text",
         "13 digits text", "1e308 decimal"],
)  # fmt: skip
def test_to_decimal_refuses_more_than_twelve_digits_before_the_point_however_sent(value):
    """As money.json's pattern refuses such a string: the cents of 1e308 cannot be computed."""
    with pytest.raises(AmountError) as refused:
        to_decimal(value, "unit_price")

    [said] = refused.value.args
    assert "at most 12 digits" in str(said) and "12 cifras" in said.es


def test_to_decimal_reads_integers_exactly():
    assert to_decimal(5) == D(5)
    assert to_decimal(-3) == D(-3)
    assert to_decimal(10**12 - 1) == D("999999999999")  # the most an amount may have


@pytest.mark.parametrize(
    ("value", "expected"),
    [(19.99, "19.99"), (0.1, "0.1"), (2.675, "2.675"), (1234.56, "1234.56"), (99.9, "99.9")],
)
def test_to_decimal_reads_a_float_as_the_literal_that_was_written_not_its_binary_value(
    value, expected
):
    result = to_decimal(value)
    assert result == D(expected)
    # The binary value of the float is not what we want: 19.99 is 19.989999999...
    assert result != D(value)


def test_to_decimal_passes_a_decimal_through_unchanged():
    value = D("12.340")
    assert to_decimal(value) is value


@pytest.mark.parametrize("value", [True, False, None])
def test_to_decimal_rejects_booleans_and_none(value):
    with pytest.raises(AmountError, match="must be a number"):
        to_decimal(value)


@pytest.mark.parametrize(
    "value",
    ["NaN", "nan", "sNaN", "inf", "-Infinity", float("nan"), float("inf"), float("-inf"), D("NaN")],
)
def test_to_decimal_rejects_nan_and_infinity_as_not_finite(value):
    with pytest.raises(AmountError, match="must be a finite number"):
        to_decimal(value)


@pytest.mark.parametrize("value", ["", "   ", "abc", "12,50", "1.2.3", "€10", "10 EUR"])
def test_to_decimal_rejects_text_that_is_not_a_number(value):
    with pytest.raises(AmountError, match="must be a number"):
        to_decimal(value)


@pytest.mark.parametrize("value", [[1], {"amount": 1}, object(), b"10"])
def test_to_decimal_rejects_other_types_naming_the_type(value):
    with pytest.raises(AmountError, match=type(value).__name__):
        to_decimal(value)


def test_to_decimal_error_names_the_field_being_read():
    with pytest.raises(AmountError, match=r"^unit_price must be a number, got 'abc'$"):
        to_decimal("abc", "unit_price")


def test_amount_error_is_a_value_error():
    with pytest.raises(ValueError):
        to_decimal("abc")


# --- cents ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.005", "0.01"),
        ("0.015", "0.02"),
        ("0.025", "0.03"),  # banker's rounding would give 0.02
        ("2.675", "2.68"),  # float 2.675 is 2.67499999...; as a string it is exact
        ("1.995", "2.00"),
        ("0.0049999", "0.00"),
        ("0.00500001", "0.01"),
        ("10", "10.00"),
        ("-0.005", "-0.01"),
        ("-0.015", "-0.02"),
        ("-2.675", "-2.68"),
        ("-0.0049", "0.00"),
    ],
)
def test_cents_rounds_half_away_from_zero(value, expected):
    result = cents(D(value))
    assert result == D(expected)
    assert result.as_tuple().exponent == -2


def test_cents_rounds_a_float_read_through_to_decimal_like_its_literal():
    assert cents(to_decimal(2.675)) == D("2.68")


# --- line_amounts --------------------------------------------------------------------------


def test_line_amounts_multiplies_quantity_by_price_and_applies_the_discount():
    amounts = line_amounts(D("20"), D("95.00"), D("10"))
    assert amounts == LineAmounts(gross=D("1900.00"), discount=D("190.00"), base=D("1710.00"))


def test_line_amounts_without_discount_has_the_gross_as_base():
    amounts = line_amounts(D("1"), D("770.50"), D("0"))
    assert amounts == LineAmounts(D("770.50"), D("0.00"), D("770.50"))


def test_line_amounts_rounds_the_gross_to_cents_half_up():
    # 3 × 0.335 = 1.005 → 1.01
    assert line_amounts(D("3"), D("0.335"), D("0")).gross == D("1.01")


def test_line_amounts_rounds_the_discount_on_the_rounded_gross():
    # 10.05 × 15 % = 1.5075 → 1.51, so the base is 10.05 - 1.51 = 8.54
    amounts = line_amounts(D("1"), D("10.05"), D("15"))
    assert amounts.discount == D("1.51")
    assert amounts.base == D("8.54")


def test_line_amounts_rounds_a_half_cent_discount_up():
    # 0.10 × 5 % = 0.005 → 0.01
    assert line_amounts(D("1"), D("0.10"), D("5")).discount == D("0.01")


@pytest.mark.parametrize(
    ("quantity", "price", "gross"),
    [
        ("3", "0.33333333", "1.00"),  # 0.99999999
        ("1", "0.12345678", "0.12"),
        ("1000", "0.12345678", "123.46"),  # 123.45678
        ("2.5", "12.34567891", "30.86"),  # 30.864197275
        ("0.5", "0.01", "0.01"),  # 0.005 → 0.01
    ],
)
def test_line_amounts_handles_unit_prices_with_many_decimals(quantity, price, gross):
    amounts = line_amounts(D(quantity), D(price), D("0"))
    assert amounts.gross == D(gross)
    assert amounts.base == D(gross)


def test_line_amounts_with_a_full_discount_has_a_zero_base():
    amounts = line_amounts(D("2"), D("49.99"), D("100"))
    assert amounts == LineAmounts(D("99.98"), D("99.98"), D("0.00"))


def test_line_amounts_base_is_always_gross_minus_discount():
    for quantity, price, discount in [("7", "13.13", "12.5"), ("0.333", "9.99", "33.3333")]:
        amounts = line_amounts(D(quantity), D(price), D(discount))
        assert amounts.base == amounts.gross - amounts.discount


def test_line_amounts_of_a_negative_quantity_round_away_from_zero():
    # A credit line: -1 × 0.005 = -0.005 → -0.01
    assert line_amounts(D("-1"), D("0.005"), D("0")).gross == D("-0.01")


# --- document_totals -----------------------------------------------------------------------


def test_document_totals_of_one_line():
    totals = document_totals([(D("1710.00"), D("21"))])
    assert totals.base == D("1710.00")
    assert totals.tax == D("359.10")
    assert totals.total == D("2069.10")
    assert totals.taxes == (TaxAmount(D("21"), D("1710.00"), D("359.10")),)


def test_document_totals_compute_iva_once_per_rate_on_the_summed_bases():
    # Each line alone: 0.05 × 10 % = 0.005 → 0.01, so three lines taxed separately give 0.03.
    # On the summed base: 0.15 × 10 % = 0.015 → 0.02.
    lines = [(D("0.05"), D("10"))] * 3
    per_line_tax = sum(cents(base * rate / 100) for base, rate in lines)
    assert per_line_tax == D("0.03")

    totals = document_totals(lines)

    assert totals.taxes == (TaxAmount(D("10"), D("0.15"), D("0.02")),)
    assert totals.tax == D("0.02")
    assert totals.total == D("0.17")


def test_document_totals_per_rate_rounding_differs_from_per_line_rounding_at_21_percent():
    # 0.12 × 21 % = 0.0252 → 0.03 per line (0.09 for three); 0.36 × 21 % = 0.0756 → 0.08.
    lines = [(D("0.12"), D("21"))] * 3
    totals = document_totals(lines)
    assert totals.tax == D("0.08")
    assert totals.base == D("0.36")
    assert totals.total == D("0.44")


def test_document_totals_group_several_rates_and_order_them_highest_first():
    lines = [
        (D("100.00"), D("4")),
        (D("200.00"), D("21")),
        (D("50.00"), D("0")),
        (D("300.00"), D("10")),
        (D("10.00"), D("21")),
        (D("25.00"), D("4")),
    ]
    totals = document_totals(lines)
    assert totals.taxes == (
        TaxAmount(D("21"), D("210.00"), D("44.10")),
        TaxAmount(D("10"), D("300.00"), D("30.00")),
        TaxAmount(D("4"), D("125.00"), D("5.00")),
        TaxAmount(D("0"), D("50.00"), D("0.00")),
    )
    assert totals.base == D("685.00")
    assert totals.tax == D("79.10")
    assert totals.total == D("764.10")


def test_document_totals_treat_the_same_rate_written_differently_as_one_rate():
    totals = document_totals([(D("10.00"), D("21")), (D("20.00"), D("21.00"))])
    assert len(totals.taxes) == 1
    assert totals.taxes[0].base == D("30.00")
    assert totals.taxes[0].amount == D("6.30")


def test_document_totals_are_consistent_base_plus_tax_equals_total():
    lines = [
        (line_amounts(D(q), D(p), D(d)).base, D(r))
        for q, p, d, r in [
            ("3", "33.333", "0", "21"),
            ("7", "0.99", "12.5", "21"),
            ("1", "1.11", "0", "10"),
            ("0.5", "3.33", "0", "4"),
            ("2", "0.005", "0", "10"),
        ]
    ]
    totals = document_totals(lines)
    assert totals.base + totals.tax == totals.total
    assert totals.base == sum(base for base, _ in lines)
    assert totals.base == sum(t.base for t in totals.taxes)
    assert totals.tax == sum(t.amount for t in totals.taxes)
    for t in totals.taxes:
        assert t.amount == cents(t.base * t.rate / 100)
        assert t.amount.as_tuple().exponent == -2


def test_document_totals_round_each_rate_half_up_including_negative_bases():
    # A credit: -0.05 × 10 % = -0.005 → -0.01
    totals = document_totals([(D("-0.05"), D("10"))])
    assert totals.tax == D("-0.01")
    assert totals.total == D("-0.06")


def test_document_totals_of_no_lines_are_zero_with_two_decimals():
    totals = document_totals([])
    assert totals.taxes == ()
    assert (str(totals.base), str(totals.tax), str(totals.total)) == ("0.00", "0.00", "0.00")


def test_document_totals_accept_any_iterable_of_lines():
    totals = document_totals((base, D("21")) for base in [D("1.00"), D("2.00")])
    assert totals.base == D("3.00")
    assert totals.tax == D("0.63")
