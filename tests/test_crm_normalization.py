"""What every CRM shares: countries as people type them, and the reasons (in Spanish) a won
deal cannot be invoiced."""

from __future__ import annotations

import pytest

from connector.connections import ConnectionView
from providers.crm import Company, CrmSettings, Line, country_code, normalized

SETTINGS = CrmSettings.of(
    ConnectionView(1, "crm", "hubspot", "https://x", "none", None, {}, None, None)
)


@pytest.mark.parametrize(
    ("values", "code"),
    [(("es",), "ES"), (("España",), "ES"), (("  Reino Unido ",), "GB"), ((None, "Francia"), "FR"),
     (("Narnia",), None), ((None, ""), None)],
)  # fmt: skip
def test_a_country_is_its_two_letters_or_a_known_name(values, code):
    assert country_code(*values) == code


def deal(company, lines):
    return normalized(
        source="hubspot", deal_id="1", title="T", stage="won", won=True,
        won_at="2026-12-04T10:00:00+00:00", currency="eur", amount=None, owner=None,
        company=company, lines=lines, settings=SETTINGS,
    )  # fmt: skip


def test_a_complete_deal_has_no_problems_and_its_currency_in_capitals():
    company = Company("Acme", "B12345674", street="Mayor 1", postal_code="28013", city="Madrid")
    made = deal(company, [Line("Silla", 2, "50")])

    assert made["problems"] == [] and made["problem"] is None
    assert made["currency"] == "EUR" and made["customer"]["address"]["city"] == "Madrid"
    assert made["lines"] == [
        {"description": "Silla", "quantity": "2", "unit_price": "50", "tax_rate": 21}
    ]


def test_each_reason_a_deal_cannot_be_invoiced_is_said_in_spanish_with_how_to_fix_it():
    no_nif = deal(Company("Acme", None), [Line("Silla", 1, "5")])
    bad_nif = deal(Company("Acme", "B12345678"), [Line("Silla", 1, "5")])
    empty = deal(Company("Acme", "B12345674"), [])
    no_price = deal(Company("Acme", "B12345674"), [Line("Mesa", 1, None)])

    assert no_nif["problem"].startswith("Falta el NIF/CIF del cliente en la empresa Acme")
    assert "vuelve a marcar la oportunidad como ganada" in no_nif["problem"]
    assert bad_nif["problem"].startswith("Empresa Acme: «B12345678» no es un NIF/CIF español")
    assert "revisa sus cifras" in bad_nif["problem"] and "control digit" not in bad_nif["problem"]
    assert "no tiene líneas de producto" in empty["problem"]
    assert "'Mesa' no tiene precio" in no_price["problem"]


@pytest.mark.parametrize(
    ("status", "es"),
    [(401, "rechazó las credenciales"), (403, "rechazó las credenciales"), (400, "no aceptó")],
)
def test_a_crm_refusal_reads_in_spanish_and_in_english(status, es):
    from actions.crm import check
    from connector.errors import PuenteError
    from connector.outbound import Answer

    with pytest.raises(PuenteError) as raised:
        check(Answer(status, {}, {"message": "nope"}, "https://x/deals/1"), "reading deal 1")

    [error] = raised.value.errors
    assert es in error.text("es")
    assert "reading deal 1" in error.text("en") and str(status) in error.text("en")
