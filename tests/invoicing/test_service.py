"""The invoicing core on a real database: customers by tax id, exact drafts, never billed twice."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select, text

from connector.runtime import Runtime
from invoicing.models import Customer, Invoice, InvoiceLine, InvoiceTax
from invoicing.service import CustomerData, InvalidDocumentError, Invoicing, LineData

D = Decimal
ACME = CustomerData(name="Acme Soluciones SL", tax_id="B12345674")


def line(**changes: Any) -> LineData:
    values: dict[str, Any] = {
        "description": "Consultoría (horas)",
        "quantity": "1",
        "unit_price": "100.00",
        "tax_rate": 21,
    }
    values.update(changes)
    return LineData(**values)


def count(rt: Runtime, model: type) -> int:
    with rt.sessions() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def draft(rt: Runtime, **kwargs: Any) -> tuple[int, bool]:
    """Create a draft in its own committed transaction; return (invoice id, created)."""
    kwargs.setdefault("customer", ACME)
    kwargs.setdefault("lines", [line()])
    with rt.sessions.begin() as s:
        result = Invoicing(s).create_draft_invoice(**kwargs)
        return result.invoice.id, result.created


# --- customers ------------------------------------------------------------------------------


def test_a_customer_is_created_once_per_tax_id_however_the_tax_id_is_written(rt):
    with rt.sessions.begin() as s:
        first = Invoicing(s).find_or_create_customer(ACME)
        first_id = first.customer.id
    with rt.sessions.begin() as s:
        again = Invoicing(s).find_or_create_customer(
            CustomerData(name="Acme Soluciones SL", tax_id="b-1234567 4")
        )

    assert first.created is True
    assert again.created is False
    assert again.customer.id == first_id
    assert again.customer.tax_id == "B12345674"
    assert again.customer.tax_id_kind == "CIF"
    assert count(rt, Customer) == 1


def test_a_different_name_for_a_known_tax_id_is_reported_and_the_stored_name_is_kept(rt):
    with rt.sessions.begin() as s:
        Invoicing(s).find_or_create_customer(ACME)
    with rt.sessions.begin() as s:
        renamed = Invoicing(s).find_or_create_customer(
            CustomerData(name="ACME Holding Europa SA", tax_id="B12345674")
        )
        same_but_spaced = Invoicing(s).find_or_create_customer(
            CustomerData(name="  acme   soluciones sl ", tax_id="B12345674")
        )

    assert renamed.created is False
    assert renamed.name_differs is True
    assert same_but_spaced.name_differs is False  # case and spacing are not a different name
    with rt.sessions() as s:
        [stored] = s.scalars(select(Customer)).all()
        assert stored.name == "Acme Soluciones SL"


def test_an_invalid_tax_id_is_refused_with_the_customer_tax_id_path(rt):
    bad = CustomerData(name="Acme Soluciones SL", tax_id="12345678A")  # the letter should be Z

    with pytest.raises(InvalidDocumentError) as refused, rt.sessions.begin() as s:
        Invoicing(s).find_or_create_customer(bad)

    [(path, message)] = refused.value.errors
    assert path == "customer.tax_id"
    assert "not a valid Spanish NIF/CIF/NIE" in message
    assert count(rt, Customer) == 0


def test_a_draft_for_a_customer_with_an_invalid_tax_id_is_refused_and_nothing_is_stored(rt):
    bad = CustomerData(name="Acme Soluciones SL", tax_id="B1234567")  # one digit short

    with pytest.raises(InvalidDocumentError) as refused, rt.sessions.begin() as s:
        Invoicing(s).create_draft_invoice(customer=bad, lines=[line()])

    assert [path for path, _ in refused.value.errors] == ["customer.tax_id"]
    assert (count(rt, Customer), count(rt, Invoice)) == (0, 0)


# --- amounts --------------------------------------------------------------------------------


def test_a_draft_has_exact_line_amounts_and_totals_that_read_back_unchanged(rt):
    lines = [
        # 1234.5 × 12.34567891 = 15240.740614395 → 15240.74; 12.3456 % of it = 1881.5608 → 1881.56
        line(quantity="1234.5", unit_price="12.34567891", discount_percent="12.3456", sku="H"),
        # 3 × 0.33333333 = 0.99999999 → 1.00
        line(description="Tres tercios", quantity=3, unit_price="0.33333333"),
    ]
    with rt.sessions.begin() as s:
        result = Invoicing(s).create_draft_invoice(customer=ACME, lines=lines)
        invoice_id = result.invoice.id
    assert result.created is True

    with rt.sessions() as s:  # a new session: every value comes from the database
        invoice = s.get_one(Invoice, invoice_id)
        first, second = invoice.lines
        assert (first.position, first.sku, first.description) == (1, "H", "Consultoría (horas)")
        assert (first.quantity, first.unit_price, first.discount_percent, first.tax_rate) == (
            D("1234.5"),
            D("12.34567891"),
            D("12.3456"),
            D("21"),
        )
        assert (first.gross, first.discount, first.base) == (
            D("15240.74"),
            D("1881.56"),
            D("13359.18"),
        )
        assert (second.position, second.quantity, second.unit_price) == (2, D(3), D("0.33333333"))
        assert (second.gross, second.discount, second.base) == (D("1.00"), D("0.00"), D("1.00"))
        # base 13360.18; IVA 21 % = 2805.6378 → 2805.64
        assert (invoice.base_total, invoice.tax_total, invoice.total) == (
            D("13360.18"),
            D("2805.64"),
            D("16165.82"),
        )
        assert [(t.rate, t.base, t.amount) for t in invoice.taxes] == [
            (D("21"), D("13360.18"), D("2805.64"))
        ]
        assert all(isinstance(v, Decimal) for v in (invoice.total, first.unit_price, first.base))
        # What the database holds is the exact literal, not a float approximation of it.
        raw = s.execute(
            text("SELECT unit_price, discount_percent FROM invoice_lines WHERE position = 1")
        ).one()
        assert (D(str(raw[0])), D(str(raw[1]))) == (D("12.34567891"), D("12.3456"))


def test_several_iva_rates_give_one_tax_row_per_rate_and_totals_that_are_their_sum(rt):
    lines = [
        line(description="Licencia", quantity=1, unit_price="100.00", tax_rate=21),
        line(description="Extra A", quantity=1, unit_price="0.03", tax_rate="21"),
        line(description="Extra B", quantity=1, unit_price="0.03", tax_rate=21),
        line(description="Formación", quantity=2, unit_price="99.995", tax_rate=10),
        line(description="Libros", quantity=3, unit_price="1.25", tax_rate=4),
        line(description="Seguro", quantity=1, unit_price="50", tax_rate=0),
    ]
    invoice_id, _ = draft(rt, lines=lines)

    with rt.sessions() as s:
        invoice = s.get_one(Invoice, invoice_id)
        taxes = sorted(((t.rate, t.base, t.amount) for t in invoice.taxes), reverse=True)
        # IVA once per rate on the summed base: 21 % of 100.06 = 21.0126 → 21.01 (per line it
        # would be 21.00 + 0.01 + 0.01 = 21.02).
        assert taxes == [
            (D("21"), D("100.06"), D("21.01")),
            (D("10"), D("199.99"), D("20.00")),
            (D("4"), D("3.75"), D("0.15")),
            (D("0"), D("50.00"), D("0.00")),
        ]
        assert invoice.base_total == sum(t.base for t in invoice.taxes) == D("353.80")
        assert invoice.tax_total == sum(t.amount for t in invoice.taxes) == D("41.16")
        assert invoice.total == invoice.base_total + invoice.tax_total == D("394.96")
        assert s.scalar(select(func.count()).select_from(InvoiceTax)) == 4


def test_the_iva_breakdown_reads_back_from_the_highest_rate_to_the_lowest(rt):
    invoice_id, _ = draft(
        rt, lines=[line(description=f"Tipo {rate}", tax_rate=rate) for rate in (0, 4, 10, 21)]
    )

    with rt.sessions() as s:
        assert [t.rate for t in s.get_one(Invoice, invoice_id).taxes] == [
            D("21"),
            D("10"),
            D("4"),
            D("0"),
        ]


def test_a_negative_total_is_refused_and_nothing_is_stored(rt):
    with pytest.raises(InvalidDocumentError) as refused, rt.sessions.begin() as s:
        Invoicing(s).create_draft_invoice(
            customer=ACME, lines=[line(quantity=-2, unit_price="100.00")]
        )

    [(path, message)] = refused.value.errors
    assert path == "lines"
    assert "negative" in message
    assert (count(rt, Invoice), count(rt, Customer)) == (0, 0)


def test_a_negative_line_is_accepted_when_the_total_stays_positive(rt):
    invoice_id, created = draft(
        rt,
        lines=[
            line(quantity=1, unit_price="100.00"),
            line(description="Abono anticipo", quantity=-1, unit_price="40.00"),
        ],
    )

    assert created is True
    with rt.sessions() as s:
        invoice = s.get_one(Invoice, invoice_id)
        assert [ln.base for ln in invoice.lines] == [D("100.00"), D("-40.00")]
        assert (invoice.base_total, invoice.tax_total, invoice.total) == (
            D("60.00"),
            D("12.60"),
            D("72.60"),
        )


def test_the_currency_is_kept_and_defaults_to_euros(rt):
    dollars, _ = draft(rt, currency="USD", source="crm", external_ref="D-USD")
    euros, _ = draft(rt, source="crm", external_ref="D-EUR")

    with rt.sessions() as s:
        assert s.get_one(Invoice, dollars).currency == "USD"
        assert s.get_one(Invoice, euros).currency == "EUR"


# --- line errors ----------------------------------------------------------------------------


def test_every_line_error_is_reported_at_once_with_its_path_and_nothing_is_stored(rt):
    lines = [
        line(),  # a good line among the bad ones
        line(quantity=0),
        line(discount_percent=150),
        line(tax_rate=7),
        line(unit_price="abc"),
        line(description="   "),
        line(unit_price="1.123456789"),  # 9 decimals
        line(quantity="0.000000001"),  # 9 decimals
    ]

    with pytest.raises(InvalidDocumentError) as refused, rt.sessions.begin() as s:
        Invoicing(s).create_draft_invoice(customer=ACME, lines=lines)

    assert [path for path, _ in refused.value.errors] == [
        "lines[1].quantity",
        "lines[2].discount_percent",
        "lines[3].tax_rate",
        "lines[4].unit_price",
        "lines[5].description",
        "lines[6].unit_price",
        "lines[7].quantity",
    ]
    messages = dict(refused.value.errors)
    assert "zero" in messages["lines[1].quantity"]
    assert "between 0 and 100" in messages["lines[2].discount_percent"]
    assert "not a Spanish IVA rate" in messages["lines[3].tax_rate"]
    assert "must be a number" in messages["lines[4].unit_price"]
    assert "empty" in messages["lines[5].description"]
    assert "8 decimals" in messages["lines[6].unit_price"]
    assert (count(rt, Invoice), count(rt, Customer)) == (0, 0)


def test_an_invoice_without_lines_is_refused(rt):
    with pytest.raises(InvalidDocumentError) as refused, rt.sessions.begin() as s:
        Invoicing(s).create_draft_invoice(customer=ACME, lines=[])

    assert [path for path, _ in refused.value.errors] == ["lines"]


def test_a_discount_with_more_than_four_decimals_is_reported_as_a_line_error(rt):
    # The column keeps 4 decimals; a JSON number escapes the schema's pattern (patterns only
    # apply to strings), so the core has to refuse it itself instead of failing at flush.
    with pytest.raises(InvalidDocumentError) as refused, rt.sessions.begin() as s:
        Invoicing(s).create_draft_invoice(customer=ACME, lines=[line(discount_percent=12.34567)])

    assert [path for path, _ in refused.value.errors] == ["lines[0].discount_percent"]
    assert count(rt, Invoice) == 0


# --- never billed twice ---------------------------------------------------------------------


def test_the_same_idempotency_key_twice_makes_one_invoice(rt):
    first = draft(rt, idempotency_key="puente:e1:v1:invoice")
    second = draft(rt, idempotency_key="puente:e1:v1:invoice")

    assert first[1] is True
    assert second == (first[0], False)
    assert count(rt, Invoice) == 1
    assert count(rt, InvoiceLine) == 1


def test_the_same_deal_from_the_same_source_with_different_keys_makes_one_invoice(rt):
    first = draft(rt, source="hubspot", external_ref="D-7", idempotency_key="key-a")
    second = draft(rt, source="hubspot", external_ref="D-7", idempotency_key="key-b")

    assert first[1] is True
    assert second == (first[0], False)
    assert count(rt, Invoice) == 1


def test_the_same_deal_id_from_two_different_sources_makes_two_invoices(rt):
    hubspot = draft(rt, source="hubspot", external_ref="D-7", idempotency_key="key-a")
    pipedrive = draft(rt, source="pipedrive", external_ref="D-7", idempotency_key="key-b")

    assert hubspot[1] is pipedrive[1] is True
    assert hubspot[0] != pipedrive[0]
    assert count(rt, Invoice) == 2
    assert count(rt, Customer) == 1


def test_concurrent_drafts_of_one_deal_and_customers_of_one_tax_id_make_one_of_each(rt):
    newcomer = CustomerData(name="Nueva Empresa SA", tax_id="A58818501")
    workers = 8
    barrier = threading.Barrier(2 * workers, timeout=30)

    def create_draft(i: int) -> tuple[str, int, bool, int, bool]:
        barrier.wait()
        with rt.sessions.begin() as s:
            result = Invoicing(s).create_draft_invoice(
                customer=newcomer,
                lines=[line()],
                source="hubspot",
                external_ref="D-RACE",
                idempotency_key=f"race-{i}",
            )
            return (
                "draft",
                result.invoice.id,
                result.created,
                result.customer.customer.id,
                result.customer.created,
            )

    def create_customer(_: int) -> tuple[str, int, bool, int, bool]:
        barrier.wait()
        with rt.sessions.begin() as s:
            result = Invoicing(s).find_or_create_customer(newcomer)
            return ("customer", 0, False, result.customer.id, result.created)

    with ThreadPoolExecutor(max_workers=2 * workers) as pool:
        futures = [pool.submit(create_draft, i) for i in range(workers)]
        futures += [pool.submit(create_customer, i) for i in range(workers)]
        results = [f.result(timeout=90) for f in futures]  # re-raises any thread's error

    drafts = [r for r in results if r[0] == "draft"]
    assert len(drafts) == workers
    assert len({invoice_id for _, invoice_id, _, _, _ in drafts}) == 1
    assert sorted(created for _, _, created, _, _ in drafts) == [False] * (workers - 1) + [True]
    assert len({customer_id for _, _, _, customer_id, _ in results}) == 1
    assert sum(customer_created for *_, customer_created in results) == 1
    assert (count(rt, Invoice), count(rt, Customer), count(rt, InvoiceLine)) == (1, 1, 1)
