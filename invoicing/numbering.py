"""Correlative numbers per series and year: gapless, never repeated, safe under concurrency."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from invoicing.models import Series, SeriesCounter


def next_serial(session: Session, series: Series, year: int) -> int:
    """Take the next number of `series` in `year` inside the caller's transaction.

    The counter row's UPDATE holds its lock until commit: a concurrent issuer waits and then
    takes the following number; a rollback gives the number back. So there are no gaps and
    no duplicates, on PostgreSQL and on SQLite (where writers are serialized anyway).
    """
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        insert(SeriesCounter)
        .values(series_id=series.id, year=year, last_number=0)
        .on_conflict_do_nothing(index_elements=["series_id", "year"])
    )
    serial: int = session.execute(
        update(SeriesCounter)
        .where(SeriesCounter.series_id == series.id, SeriesCounter.year == year)
        .values(last_number=SeriesCounter.last_number + 1)
        .returning(SeriesCounter.last_number)
    ).scalar_one()
    return serial


def format_number(series: Series, year: int, serial: int) -> str:
    """ "F2026-00042": series code, year, five-digit serial (VERI*FACTU allows 60 characters)."""
    return f"{series.code}{year}-{serial:05d}"
