"""Reports over won deals: conversion, time to invoice and to be paid, never billed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from connector.runtime import Runtime
from invoicing import corrections, issuing, payments, reports
from invoicing.deals import DealData, record_deal
from invoicing.models import Deal, Invoice
from tests.conftest import drain
from tests.factories import deal, make_draft, make_hook, make_issuer, post_deal

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ANA = ("Ana Ruiz", "ana@example.com")
BRUNO = ("Bruno Gil", None)
NOBODY: tuple[str | None, str | None] = (None, None)
DRAFT_BASE = Decimal("2480.50")  # the sample deal's lines, before IVA (see tests.factories)


def won(
    rt: Runtime,
    ref: str,
    at: datetime = T0,
    owner: tuple[str | None, str | None] = ANA,
    campaign: str | None = "Feria Madrid",
    amount: str | None = "1000.00",
    currency: str = "EUR",
) -> int:
    """Record a won deal from the test CRM, as the demo flow's first step does."""
    with rt.sessions.begin() as s:
        recorded, created = record_deal(
            s,
            DealData(
                source="test",
                external_ref=ref,
                won_at=at,
                title=f"Deal {ref}",
                owner_name=owner[0],
                owner_email=owner[1],
                campaign=campaign,
                amount=Decimal(amount) if amount is not None else None,
                currency=currency,
                customer_name="Acme Soluciones SL",
                customer_tax_id="B12345674",
            ),
        )
        assert created
        return recorded.id


def issued(rt: Runtime, ref: str, after: timedelta | None) -> int:
    """Draft and issue the deal's invoice; issued_at set `after` the deal was won."""
    invoice_id = make_draft(rt, deal_id=ref)
    with rt.sessions.begin() as s:
        issuing.issue(s, invoice_id)
        if after is not None:
            won_at = s.scalar(_won_at(ref))
            s.execute(
                update(Invoice).where(Invoice.id == invoice_id).values(issued_at=won_at + after)
            )
    return invoice_id


def paid(rt: Runtime, invoice_id: int, after: timedelta) -> None:
    """Pay the invoice in full; paid_at set `after` the deal was won."""
    with rt.sessions.begin() as s:
        invoice = s.get_one(Invoice, invoice_id)
        payments.record_payment(s, invoice_id, invoice.total, date.today())
        won_at = s.scalar(_won_at(invoice.external_ref or ""))
        s.execute(update(Invoice).where(Invoice.id == invoice_id).values(paid_at=won_at + after))


def _won_at(ref: str) -> Any:
    return select(Deal.won_at).where(Deal.source == "test", Deal.external_ref == ref)


def summary(rt: Runtime, since: datetime | None = None, until: datetime | None = None):
    with rt.sessions() as s:
        return reports.summary(s, since, until)


def never_billed(rt: Runtime, **kwargs: Any) -> reports.NeverBilled:
    kwargs.setdefault("since", None)
    kwargs.setdefault("until", None)
    with rt.sessions() as s:
        return reports.never_billed(s, **kwargs)


def h(n: float) -> timedelta:
    return timedelta(hours=n)


def by_label(groups: list[reports.Group]) -> dict[str | None, reports.Group]:
    return {g.label: g for g in groups}


def test_only_issued_invoices_that_stand_count_and_drafts_are_pending(rt):
    make_issuer(rt)
    for ref in ("A", "B", "C", "D", "E"):
        won(rt, ref)
    issued(rt, "A", h(10))
    paid(rt, issued(rt, "B", h(20)), h(30))
    draft = make_draft(rt, deal_id="C")  # a draft is not an invoice yet
    # D: nothing at all (e.g. its draft failed). E: issued, then cancelled.
    cancelled = issued(rt, "E", h(5))
    with rt.sessions.begin() as s:
        corrections.cancel(s, cancelled, "issued by mistake")

    totals = summary(rt).totals

    assert (totals.won, totals.invoiced, totals.paid) == (5, 2, 1)
    assert (totals.never_billed, totals.draft_pending) == (3, 1)
    assert totals.conversion == Decimal("0.4")
    assert totals.conversion_percent == Decimal("40.0")
    assert totals.amount_won == {"EUR": Decimal("5000.00")}
    assert totals.amount_invoiced == {"EUR": DRAFT_BASE * 2}  # A and B; not E (cancelled)
    assert totals.to_invoiced == reports.Durations(2, h(15), h(15))
    assert totals.to_paid == reports.Durations(1, h(30), h(30))

    page = never_billed(rt)
    assert page.total == 3
    assert [(d.external_ref, d.invoice_status, d.draft_invoice_id) for d in page.items] == [
        ("C", "draft", draft),
        ("D", None, None),
        ("E", "cancelled", None),
    ]
    assert page.items[2].invoice_id == cancelled


def test_median_and_mean_over_an_odd_and_an_even_count(rt):
    make_issuer(rt)
    to_invoice = [1, 2, 3, 10, 50]  # five: median 3, mean 13.2
    to_pay = [10, 20, 40, 130]  # four: median (20 + 40) / 2 = 30, mean 50
    for i, hours in enumerate(to_invoice):
        won(rt, f"T{i}", T0 + timedelta(minutes=i))
        invoice_id = issued(rt, f"T{i}", h(hours))
        if i < len(to_pay):
            paid(rt, invoice_id, h(to_pay[i]))
    won(rt, "LATE")  # not invoiced: counted in conversion, not in the times

    totals = summary(rt).totals

    assert (totals.won, totals.invoiced, totals.paid) == (6, 5, 4)
    assert totals.to_invoiced == reports.Durations(5, median=h(3), mean=h(13.2))
    assert totals.to_paid == reports.Durations(4, median=h(30), mean=h(50))
    assert reports.hours(totals.to_invoiced.mean) == Decimal("13.2")
    assert reports.days(totals.to_paid.median) == Decimal("1.3")  # 30 h = 1.25 d, half up


def test_groups_by_owner_and_campaign_with_no_owner_and_no_campaign_last(rt):
    make_issuer(rt)
    won(rt, "A1", owner=ANA, campaign="Feria Madrid")
    won(rt, "A2", owner=("Ana R.", "ANA@example.com"), campaign="feria madrid ")  # same both
    won(rt, "A3", owner=ANA, campaign=None)
    won(rt, "B1", owner=BRUNO, campaign="Web", amount=None)
    won(rt, "N1", owner=NOBODY, campaign="Web", amount="50.00", currency="USD")
    won(rt, "N2", owner=(" ", ""), campaign="", amount="70.00")  # blanks mean none
    issued(rt, "A1", h(24))
    paid(rt, issued(rt, "A2", h(48)), h(96))
    issued(rt, "N1", h(12))

    result = summary(rt)

    assert [(g.key, g.label, g.email, g.won) for g in result.by_owner] == [
        ("ana@example.com", "Ana Ruiz", "ana@example.com", 3),
        ("bruno gil", "Bruno Gil", None, 1),
        (None, None, None, 2),
    ]
    ana, bruno, nobody = result.by_owner
    assert (ana.invoiced, ana.paid, ana.conversion_percent) == (2, 1, Decimal("66.7"))
    assert ana.to_invoiced == reports.Durations(2, h(36), h(36))
    assert ana.to_paid == reports.Durations(1, h(96), h(96))
    assert ana.amount_won == {"EUR": Decimal("3000.00")}
    assert ana.amount_invoiced == {"EUR": DRAFT_BASE * 2}
    assert (bruno.invoiced, bruno.amount_won, bruno.to_invoiced.median) == (0, {}, None)
    assert (nobody.won, nobody.invoiced) == (2, 1)
    assert nobody.amount_won == {"EUR": Decimal("70.00"), "USD": Decimal("50.00")}

    campaigns = by_label(result.by_campaign)
    assert list(campaigns) == ["Feria Madrid", "Web", None]
    assert (campaigns["Feria Madrid"].won, campaigns["Feria Madrid"].invoiced) == (2, 2)
    assert (campaigns["Web"].won, campaigns["Web"].invoiced) == (2, 1)
    assert campaigns["Web"].to_invoiced == reports.Durations(1, h(12), h(12))
    assert (campaigns[None].won, campaigns[None].invoiced, campaigns[None].key) == (2, 0, None)

    totals = result.totals
    assert totals.won == sum(g.won for g in result.by_owner) == 6
    assert totals.amount_won == {"EUR": Decimal("3070.00"), "USD": Decimal("50.00")}
    assert totals.to_invoiced == reports.Durations(3, h(24), h(28))


def test_the_date_range_is_of_whole_madrid_days_on_won_at(rt):
    madrid = ZoneInfo("Europe/Madrid")
    won(rt, "before", datetime(2026, 2, 28, 23, 59, tzinfo=madrid))
    won(rt, "first", datetime(2026, 3, 1, 0, 0, tzinfo=madrid))  # 28 Feb 23:00 UTC
    won(rt, "last", datetime(2026, 3, 31, 23, 59, tzinfo=madrid))  # summer time by then
    won(rt, "after", datetime(2026, 4, 1, 0, 0, tzinfo=madrid))  # 31 Mar 22:00 UTC

    since, until = reports.day_bounds(date(2026, 3, 1), date(2026, 3, 31))

    assert summary(rt, since, until).totals.won == 2
    assert [d.external_ref for d in never_billed(rt, since=since, until=until).items] == [
        "first",
        "last",
    ]
    assert summary(rt, since, None).totals.won == 3
    assert summary(rt, None, until).totals.won == 3
    assert summary(rt).totals.won == 4


def test_never_billed_pages_oldest_first_with_the_age_in_days(rt):
    for i in range(7):
        won(rt, f"D{i}", T0 + timedelta(days=i))
    now = T0 + timedelta(days=10, hours=1)

    first = never_billed(rt, limit=3, offset=0, now=now)
    last = never_billed(rt, limit=3, offset=6, now=now)

    assert first.total == last.total == 7
    assert [d.external_ref for d in first.items] == ["D0", "D1", "D2"]
    assert [d.age_days for d in first.items] == [10, 9, 8]
    assert [d.external_ref for d in last.items] == ["D6"]
    item = first.items[0]
    assert (item.title, item.owner_name, item.campaign, item.amount) == (
        "Deal D0",
        "Ana Ruiz",
        "Feria Madrid",
        Decimal("1000.00"),
    )
    assert item.won_at == T0
    with pytest.raises(ValueError):
        never_billed(rt, limit=0)


def test_an_empty_period_has_no_rates_and_no_times(rt):
    result = summary(rt)

    assert (result.totals.won, result.totals.conversion) == (0, None)
    assert result.totals.to_invoiced == reports.Durations(0, None, None)
    assert (result.by_owner, result.by_campaign) == ([], [])
    assert never_billed(rt).total == 0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, None), ("", None), (" 2026-03-01 ", date(2026, 3, 1))],
)
def test_days_parse_as_iso_dates(raw, expected):
    assert reports.parse_day(raw) == expected


@pytest.mark.parametrize("raw", ["2026-02-30", "01/03/2026", "20260301", "2026-3-1", "mañana"])
def test_anything_but_a_real_iso_date_is_refused(raw):
    with pytest.raises(ValueError):
        reports.parse_day(raw)


def test_deals_from_the_webhook_are_reported_through_the_demo_flow(rt, client):
    """The real path: the demo flow records every won deal, even when its invoice fails."""
    make_issuer(rt)
    hook = make_hook(rt)
    good = deal(won_at="2026-03-02T10:00:00+01:00")
    bad = deal(won_at="2026-03-03T10:00:00+01:00")
    bad["customer"]["tax_id"] = "12345678A"  # the draft fails; the deal is recorded anyway
    for payload in (good, bad):
        assert post_deal(client, hook, payload).status_code == 202
    drain(rt)

    before = summary(rt).totals
    [pending, missing] = never_billed(rt).items
    assert (before.won, before.invoiced, before.draft_pending) == (2, 0, 1)
    assert (pending.external_ref, missing.external_ref) == (good["deal_id"], bad["deal_id"])
    assert pending.draft_invoice_id is not None and missing.invoice_id is None
    assert pending.owner_name == "Lucía Pérez" and pending.campaign == "Feria Madrid 2026"

    with rt.sessions.begin() as s:
        issuing.issue(s, pending.draft_invoice_id)
    after = summary(rt)
    assert (after.totals.won, after.totals.invoiced) == (2, 1)
    assert after.totals.amount_won == {"EUR": Decimal("4961.00")}
    assert after.totals.amount_invoiced == {"EUR": DRAFT_BASE}
    assert [d.external_ref for d in never_billed(rt).items] == [bad["deal_id"]]
