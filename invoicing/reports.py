"""Reports on won deals: won → invoiced conversion, time to invoice and to be paid, never billed.

A deal counts as *invoiced* when the invoice (kind "invoice") with its (source, external_ref)
has been issued (``issued_at`` set) and is not cancelled; it counts as *paid* when that invoice
also has ``paid_at``. A draft does not count: the deal shows in the never-billed list as
"draft pending", with the draft's id. Durations run from ``won_at`` to ``issued_at`` and to
``paid_at``; deals not yet invoiced (or paid) stay out of those figures but count in conversion.

Counts and money are grouped in SQL (one query, by owner × campaign × currency, rolled up here);
durations need each invoiced deal's three timestamps (medians cannot be computed portably in
SQLite and PostgreSQL), fetched in a second query with only those columns.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, ColumnElement, Numeric, and_, case, cast, func, or_, select
from sqlalchemy.orm import Session

from database import utcnow
from invoicing.errors import Said
from invoicing.models import Deal, Invoice, InvoiceStatus

MADRID = ZoneInfo("Europe/Madrid")  # the users' days: a date range means Madrid days
CENT = Decimal("0.01")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


# ---------------------------------------------------------------- date ranges


def parse_day(raw: str | None) -> date | None:
    """A YYYY-MM-DD date, or None when empty; ValueError for anything else."""
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    if not _DAY.fullmatch(text):
        raise ValueError(
            Said(
                f"expected a date as YYYY-MM-DD, got {raw!r}",
                f"«{raw}» no es una fecha: escríbela como AAAA-MM-DD (p. ej. 2026-03-31)",
            )
        )
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(
            Said(
                f"{raw!r} is not a valid date",
                f"«{raw}» no es una fecha que exista: revisa el día y el mes",
            )
        ) from None


def day_bounds(
    first_day: date | None, last_day: date | None
) -> tuple[datetime | None, datetime | None]:
    """The instants bounding whole Madrid days: first day's midnight, the day after the last's."""
    since = datetime.combine(first_day, time(), MADRID) if first_day else None
    until = datetime.combine(last_day + timedelta(days=1), time(), MADRID) if last_day else None
    return since, until


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class Durations:
    """Time from won to invoiced (or paid) over the deals that got there."""

    count: int = 0
    median: timedelta | None = None
    mean: timedelta | None = None

    @classmethod
    def of(cls, values: Iterable[timedelta]) -> Durations:
        micros = sorted(v // timedelta(microseconds=1) for v in values)
        n = len(micros)
        if n == 0:
            return cls()
        middle = n // 2
        median = micros[middle] if n % 2 else (micros[middle - 1] + micros[middle]) / 2
        return cls(
            n, timedelta(microseconds=round(median)), timedelta(microseconds=sum(micros) / n)
        )


def hours(value: timedelta | None, places: int = 1) -> Decimal | None:
    """A duration in hours, rounded half up to `places` decimals."""
    if value is None:
        return None
    exact = Decimal(value // timedelta(microseconds=1)) / Decimal(3_600_000_000)
    return exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def days(value: timedelta | None, places: int = 1) -> Decimal | None:
    """A duration in days, rounded half up to `places` decimals."""
    if value is None:
        return None
    exact = Decimal(value // timedelta(microseconds=1)) / Decimal(86_400_000_000)
    return exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Group:
    """The figures of a set of won deals: all of them, one owner's or one campaign's.

    ``key`` is None for the deals without an owner (or campaign). Money is per currency:
    ``amount_won`` adds the deals' amounts as the CRM gave them; ``amount_invoiced`` adds the
    taxable base (without IVA) of the invoices that count, so both are net of tax.
    """

    key: str | None
    label: str | None
    email: str | None
    won: int
    invoiced: int
    paid: int
    draft_pending: int
    amount_won: dict[str, Decimal]
    amount_invoiced: dict[str, Decimal]
    to_invoiced: Durations
    to_paid: Durations

    @property
    def never_billed(self) -> int:
        return self.won - self.invoiced

    @property
    def conversion(self) -> Decimal | None:
        """Invoiced over won, as a fraction (None when nothing was won)."""
        return Decimal(self.invoiced) / Decimal(self.won) if self.won else None

    @property
    def conversion_percent(self) -> Decimal | None:
        rate = self.conversion
        return None if rate is None else (rate * 100).quantize(Decimal("0.1"), ROUND_HALF_UP)


@dataclass(frozen=True)
class Summary:
    since: datetime | None
    until: datetime | None
    totals: Group
    by_owner: list[Group]
    by_campaign: list[Group]


@dataclass(frozen=True)
class UnbilledDeal:
    id: int
    source: str
    external_ref: str
    title: str | None
    owner_name: str | None
    owner_email: str | None
    campaign: str | None
    amount: Decimal | None
    currency: str
    customer_name: str | None
    customer_tax_id: str | None
    won_at: datetime
    age_days: int
    invoice_id: int | None  # a draft, or a cancelled invoice
    invoice_status: str | None

    @property
    def draft_invoice_id(self) -> int | None:
        return self.invoice_id if self.invoice_status == InvoiceStatus.DRAFT else None


@dataclass(frozen=True)
class NeverBilled:
    items: list[UnbilledDeal]
    total: int
    limit: int
    offset: int


# ---------------------------------------------------------------- queries


def _invoice_of_deal() -> ColumnElement[bool]:
    return and_(
        Invoice.kind == "invoice",
        Invoice.source == Deal.source,
        Invoice.external_ref == Deal.external_ref,
    )


def _counts() -> ColumnElement[bool]:
    """The deal's invoice makes it invoiced: issued and not cancelled."""
    return and_(Invoice.issued_at.is_not(None), Invoice.status != InvoiceStatus.CANCELLED)


def _in_range(since: datetime | None, until: datetime | None) -> list[ColumnElement[bool]]:
    where = []
    if since is not None:
        where.append(Deal.won_at >= since)
    if until is not None:
        where.append(Deal.won_at < until)
    return where


def _cents(column: Any) -> ColumnElement[int]:
    """Money as whole cents, so sums are exact on SQLite too (where amounts are text)."""
    return cast(func.round(cast(column, Numeric(18, 2)) * 100), BigInteger)


def _money(cents: Any) -> Decimal:
    return (Decimal(int(cents)) / 100).quantize(CENT)


def _clean(value: str | None) -> str | None:
    return (value.strip() or None) if value is not None else None


def _owner_key(name: str | None, email: str | None) -> str | None:
    """One owner per e-mail address (case aside); by name when the CRM sent no address."""
    email, name = _clean(email), _clean(name)
    if email:
        return email.casefold()
    return name.casefold() if name else None


def _campaign_key(campaign: str | None) -> str | None:
    clean = _clean(campaign)
    return clean.casefold() if clean else None


@dataclass
class _Tally:
    labels: Counter[str] = field(default_factory=Counter)
    emails: Counter[str] = field(default_factory=Counter)
    won: int = 0
    invoiced: int = 0
    paid: int = 0
    draft_pending: int = 0
    amount_won: dict[str, Decimal] = field(default_factory=dict)
    amount_invoiced: dict[str, Decimal] = field(default_factory=dict)
    to_invoiced: list[timedelta] = field(default_factory=list)
    to_paid: list[timedelta] = field(default_factory=list)

    def add(self, row: Any, label: str | None = None, email: str | None = None) -> None:
        won = int(row.won)
        if label:
            self.labels[label] += won
        if email:
            self.emails[email] += won
        self.won += won
        self.invoiced += int(row.invoiced or 0)
        self.paid += int(row.paid or 0)
        self.draft_pending += int(row.draft_pending or 0)
        _add_money(self.amount_won, row.deal_currency, row.won_cents)
        _add_money(self.amount_invoiced, row.invoice_currency, row.invoiced_cents)

    def freeze(self, key: str | None) -> Group:
        return Group(
            key=key,
            label=_most_common(self.labels),
            email=_most_common(self.emails),
            won=self.won,
            invoiced=self.invoiced,
            paid=self.paid,
            draft_pending=self.draft_pending,
            amount_won=dict(sorted(self.amount_won.items())),
            amount_invoiced=dict(sorted(self.amount_invoiced.items())),
            to_invoiced=Durations.of(self.to_invoiced),
            to_paid=Durations.of(self.to_paid),
        )


def _most_common(seen: Counter[str]) -> str | None:
    """The spelling most deals use (ties: the first in code-point order, to be stable)."""
    return min(seen.items(), key=lambda item: (-item[1], item[0]))[0] if seen else None


def _add_money(into: dict[str, Decimal], currency: str | None, cents: Any) -> None:
    if cents is None or currency is None:
        return
    into[currency] = into.get(currency, Decimal("0.00")) + _money(cents)


def _ordered(tallies: dict[str | None, _Tally]) -> list[Group]:
    """Most deals first; the group without an owner (or campaign) last."""
    groups = [tally.freeze(key) for key, tally in tallies.items()]
    return sorted(groups, key=lambda g: (g.key is None, -g.won, (g.label or "").casefold()))


def summary(session: Session, since: datetime | None, until: datetime | None) -> Summary:
    """Conversion, amounts and times of the deals won in [since, until), overall and grouped."""
    counted = _counts()
    invoiced = case((counted, 1), else_=0)
    grouped = (
        select(
            Deal.owner_name,
            Deal.owner_email,
            Deal.campaign,
            Deal.currency.label("deal_currency"),
            Invoice.currency.label("invoice_currency"),
            func.count(Deal.id).label("won"),
            func.sum(invoiced).label("invoiced"),
            func.sum(case((and_(counted, Invoice.paid_at.is_not(None)), 1), else_=0)).label("paid"),
            func.sum(case((Invoice.status == InvoiceStatus.DRAFT, 1), else_=0)).label(
                "draft_pending"
            ),
            func.sum(_cents(Deal.amount)).label("won_cents"),
            func.sum(case((counted, _cents(Invoice.base_total)), else_=None)).label(
                "invoiced_cents"
            ),
        )
        .select_from(Deal)
        .outerjoin(Invoice, _invoice_of_deal())
        .where(*_in_range(since, until))
        .group_by(Deal.owner_name, Deal.owner_email, Deal.campaign, Deal.currency, Invoice.currency)
    )
    totals = _Tally()
    owners: dict[str | None, _Tally] = {}
    campaigns: dict[str | None, _Tally] = {}
    for row in session.execute(grouped):
        owner_key = _owner_key(row.owner_name, row.owner_email)
        campaign_key = _campaign_key(row.campaign)
        totals.add(row)
        owners.setdefault(owner_key, _Tally()).add(
            row, _clean(row.owner_name), _clean(row.owner_email)
        )
        campaigns.setdefault(campaign_key, _Tally()).add(row, _clean(row.campaign))

    timed = (
        select(
            Deal.owner_name,
            Deal.owner_email,
            Deal.campaign,
            Deal.won_at,
            Invoice.issued_at,
            Invoice.paid_at,
        )
        .join(Invoice, _invoice_of_deal())
        .where(counted, *_in_range(since, until))
    )
    for owner_name, owner_email, campaign, won_at, issued_at, paid_at in session.execute(timed):
        tallies = (
            totals,
            owners[_owner_key(owner_name, owner_email)],
            campaigns[_campaign_key(campaign)],
        )
        for tally in tallies:
            tally.to_invoiced.append(issued_at - won_at)  # type: ignore[operator]  # counted
            if paid_at is not None:
                tally.to_paid.append(paid_at - won_at)

    return Summary(
        since=since,
        until=until,
        totals=totals.freeze(None),
        by_owner=_ordered(owners),
        by_campaign=_ordered(campaigns),
    )


def never_billed(
    session: Session,
    since: datetime | None,
    until: datetime | None,
    limit: int = 50,
    offset: int = 0,
    now: datetime | None = None,
) -> NeverBilled:
    """Won deals in [since, until) whose invoice was never issued (or was cancelled).

    Oldest first: those have waited longest. A deal with a draft carries the draft's id.
    """
    if limit < 1 or offset < 0:
        raise ValueError(
            Said(
                "limit must be at least 1 and offset at least 0",
                "el límite debe ser al menos 1 y el desplazamiento al menos 0",
            )
        )
    now = now or utcnow()
    where = [
        or_(
            Invoice.id.is_(None),
            Invoice.issued_at.is_(None),
            Invoice.status == InvoiceStatus.CANCELLED,
        ),
        *_in_range(since, until),
    ]
    base = select(Deal.id).outerjoin(Invoice, _invoice_of_deal()).where(*where)
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    rows = session.execute(
        select(
            Deal.id,
            Deal.source,
            Deal.external_ref,
            Deal.title,
            Deal.owner_name,
            Deal.owner_email,
            Deal.campaign,
            Deal.amount,
            Deal.currency,
            Deal.customer_name,
            Deal.customer_tax_id,
            Deal.won_at,
            Invoice.id.label("invoice_id"),
            Invoice.status.label("invoice_status"),
        )
        .outerjoin(Invoice, _invoice_of_deal())
        .where(*where)
        .order_by(Deal.won_at, Deal.id)
        .limit(limit)
        .offset(offset)
    )
    items = [
        UnbilledDeal(
            **row._asdict(),
            age_days=max((now - row.won_at) // timedelta(days=1), 0),
        )
        for row in rows
    ]
    return NeverBilled(items, total, limit, offset)


# ---------------------------------------------------------------- dashboard


def percentile(values: Sequence[timedelta], share: float) -> timedelta | None:
    """The nearest-rank percentile (share 0.5: the median, 0.95: p95) of `values`."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def won_to_draft(session: Session, since: datetime) -> list[timedelta]:
    """For each deal won since `since` that has its draft invoice: how long the draft took."""
    rows = session.execute(
        select(Deal.won_at, Invoice.created_at)
        .join(Invoice, _invoice_of_deal())
        .where(Deal.won_at >= since)
    )
    return [max(created - won, timedelta(0)) for won, created in rows]


@dataclass(frozen=True)
class Week:
    start: date  # a Monday, in Madrid
    won: int
    invoiced: int
    paid: int


def weekly(session: Session, weeks: int, today: date) -> list[Week]:
    """Won, invoiced (issued, not cancelled) and paid deals by the week they were won, the
    last `weeks` weeks up to `today`'s (Madrid weeks, Monday first), oldest first."""
    first = today - timedelta(days=today.weekday() + 7 * (weeks - 1))
    since = datetime.combine(first, time(), MADRID)
    counted = _counts()
    rows = session.execute(
        select(
            Deal.won_at,
            case((counted, 1), else_=0),
            case((and_(counted, Invoice.paid_at.is_not(None)), 1), else_=0),
        )
        .select_from(Deal)
        .outerjoin(Invoice, _invoice_of_deal())
        .where(Deal.won_at >= since)
    )
    tally = {first + timedelta(weeks=n): [0, 0, 0] for n in range(weeks)}
    for won_at, invoiced, paid in rows:
        day = won_at.astimezone(MADRID).date()
        week = tally.get(day - timedelta(days=day.weekday()))
        if week is not None:
            week[0] += 1
            week[1] += invoiced
            week[2] += paid
    return [Week(start, *counts) for start, counts in tally.items()]
