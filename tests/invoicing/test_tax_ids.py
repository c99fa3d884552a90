"""Tax ids: Spanish NIF (DNI), NIE and CIF, EU VAT numbers, and other countries' ids."""

import pytest

from invoicing.tax_ids import TaxId, TaxIdError, parse_tax_id

# The official DNI/NIE control letter: the number modulo 23 indexes this table.
CONTROL_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
NIE_PREFIX_DIGIT = {"X": "0", "Y": "1", "Z": "2"}


def dni(number: str) -> str:
    return number + CONTROL_LETTERS[int(number) % 23]


def nie(prefix: str, number: str) -> str:
    return prefix + number + CONTROL_LETTERS[int(NIE_PREFIX_DIGIT[prefix] + number) % 23]


def wrong_letter(valid: str) -> str:
    last = valid[-1]
    return valid[:-1] + ("A" if last != "A" else "B")


def test_the_helpers_follow_the_official_algorithm():
    # Sanity check against values published by the Ministry of the Interior.
    assert dni("12345678") == "12345678Z"
    assert dni("00000000") == "00000000T"
    assert nie("X", "1234567") == "X1234567L"


# --- Spanish ids ---------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["12345678", "00000001", "87654321", "50000000", "99999999"])
def test_a_valid_dni_is_a_nif(number):
    value = dni(number)
    assert parse_tax_id(value) == TaxId(value, "ES", "NIF")


@pytest.mark.parametrize(
    ("prefix", "number"),
    [("X", "1234567"), ("X", "0000001"), ("Y", "1234567"), ("Y", "7654321"), ("Z", "1234567")],
)
def test_a_valid_nie_with_each_prefix_is_a_nie(prefix, number):
    value = nie(prefix, number)
    assert parse_tax_id(value) == TaxId(value, "ES", "NIE")


def test_the_published_nie_example_is_valid():
    assert parse_tax_id("X1234567L") == TaxId("X1234567L", "ES", "NIE")


@pytest.mark.parametrize("value", ["B12345674", "A58818501"])
def test_a_valid_cif_is_a_cif(value):
    assert parse_tax_id(value) == TaxId(value, "ES", "CIF")


def test_spain_is_the_default_country():
    assert parse_tax_id("12345678Z").country == "ES"
    assert parse_tax_id("12345678Z", None).country == "ES"
    assert parse_tax_id("12345678Z", "").country == "ES"


@pytest.mark.parametrize(
    "raw",
    [
        "12345678z",
        " 12345678Z ",
        "12345678-Z",
        "12.345.678-Z",
        "12 345 678 z",
        "ES12345678Z",
        "es12345678z",
        "ES-12345678-Z",
        "ES 12345678 Z",
    ],
)
def test_a_spanish_nif_is_normalized_without_case_spaces_dashes_or_es_prefix(raw):
    assert parse_tax_id(raw) == TaxId("12345678Z", "ES", "NIF")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("b-12345674", "B12345674"), ("ESB12345674", "B12345674"), ("x 1234567 l", "X1234567L")],
)
def test_cifs_and_nies_are_normalized_too(raw, expected):
    assert parse_tax_id(raw).value == expected


def test_country_code_is_case_insensitive():
    assert parse_tax_id("12345678Z", "es") == TaxId("12345678Z", "ES", "NIF")


def test_a_spanish_vat_number_is_read_as_spanish_even_if_another_eu_country_was_chosen():
    assert parse_tax_id("ES12345678Z", "FR") == TaxId("12345678Z", "ES", "NIF")


@pytest.mark.parametrize(
    "valid",
    ["12345678Z", "X1234567L", nie("Y", "1234567"), nie("Z", "1234567")],
)
def test_a_wrong_control_letter_is_rejected_saying_so(valid):
    bad = wrong_letter(valid)
    with pytest.raises(TaxIdError) as exc:
        parse_tax_id(bad)
    message = str(exc.value)
    assert bad in message
    assert "control digit or letter does not match" in message
    assert "Spanish NIF/CIF/NIE" in message


def test_a_cif_with_a_wrong_control_digit_is_rejected():
    with pytest.raises(TaxIdError, match="control digit or letter does not match"):
        parse_tax_id("B12345675")


@pytest.mark.parametrize("raw", ["1234567Z", "123456789Z", "X123456L", "B1234567"])
def test_a_spanish_id_of_the_wrong_length_is_rejected_saying_so(raw):
    with pytest.raises(TaxIdError, match="wrong number of characters"):
        parse_tax_id(raw)


def test_a_spanish_id_in_the_wrong_format_is_rejected_saying_so():
    with pytest.raises(TaxIdError, match="wrong format"):
        parse_tax_id("ABCDEFGHI")


@pytest.mark.parametrize("raw", ["", "   ", " - ", "..."])
def test_an_empty_tax_id_is_rejected(raw):
    with pytest.raises(TaxIdError, match="the tax id is empty"):
        parse_tax_id(raw)


def test_tax_id_error_is_a_value_error():
    with pytest.raises(ValueError):
        parse_tax_id("")


# --- EU VAT numbers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", ["FR40303265045", "40303265045", "fr 40 303 265 045", "FR-40303265045"]
)
def test_a_valid_french_vat_number_is_normalized_with_its_prefix(raw):
    assert parse_tax_id(raw, "FR") == TaxId("FR40303265045", "FR", "VAT")


def test_a_french_vat_number_with_a_wrong_check_is_rejected_saying_so():
    with pytest.raises(TaxIdError) as exc:
        parse_tax_id("FR40303265046", "FR")
    message = str(exc.value)
    assert "FR40303265046" in message
    assert "not a valid FR VAT number" in message
    assert "control digit or letter does not match" in message


def test_a_vat_number_of_the_wrong_length_is_rejected_saying_so():
    with pytest.raises(TaxIdError, match="wrong number of characters"):
        parse_tax_id("FR403032650", "FR")


def test_a_valid_german_vat_number_is_accepted():
    assert parse_tax_id("DE136695976", "de") == TaxId("DE136695976", "DE", "VAT")


@pytest.mark.parametrize("raw", ["EL094259216", "094259216", "el 094 259 216"])
def test_greece_as_gr_uses_the_el_vat_prefix(raw):
    assert parse_tax_id(raw, "GR") == TaxId("EL094259216", "GR", "VAT")


@pytest.mark.parametrize("raw", ["EL094259216", "094259216"])
def test_greece_as_el_is_accepted_too(raw):
    assert parse_tax_id(raw, "EL") == TaxId("EL094259216", "EL", "VAT")


def test_a_greek_vat_number_written_with_the_iso_gr_prefix_is_accepted_as_el():
    # Customers often write the ISO code; the number itself is valid.
    assert parse_tax_id("GR094259216", "GR") == TaxId("EL094259216", "GR", "VAT")


def test_a_greek_vat_number_with_a_wrong_check_is_rejected():
    with pytest.raises(TaxIdError, match="not a valid GR VAT number"):
        parse_tax_id("094259217", "GR")


# --- other countries -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("12-3456789", "US", "123456789"),
        ("abc 123 x", "us", "ABC123X"),
        ("GB123456789", "GB", "GB123456789"),  # not in the EU any more: not checked
        ("12345678A", "MX", "12345678A"),  # would be an invalid NIF, but it is not Spanish
    ],
)
def test_ids_from_other_countries_are_accepted_as_other_after_normalizing(raw, country, expected):
    assert parse_tax_id(raw, country) == TaxId(expected, country.upper(), "OTHER")


def test_an_id_from_another_country_may_have_thirty_characters():
    assert parse_tax_id("A" * 30, "US").value == "A" * 30


def test_an_id_from_another_country_longer_than_thirty_characters_is_rejected_saying_so():
    with pytest.raises(TaxIdError, match="too long for a tax id"):
        parse_tax_id("A" * 31, "US")


def test_an_empty_id_from_another_country_is_rejected():
    with pytest.raises(TaxIdError, match="empty"):
        parse_tax_id("  ", "US")
