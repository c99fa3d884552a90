"""Shared database plumbing: engine, sessions, column types, `utcnow`, insert helpers.

Neutral ground: the engine (connector/) and the invoicing core both import it, it imports
neither.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    MetaData,
    Numeric,
    String,
    create_engine,
    event,
    insert,
    inspect,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import (
    MANYTOONE,
    DeclarativeBase,
    Session,
    make_transient_to_detached,
    sessionmaker,
)
from sqlalchemy.types import TypeDecorator

T = TypeVar("T")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on SQLite (which stores no zone) and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; store timezone-aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class DecimalType(TypeDecorator[Decimal]):
    """Exact decimals: NUMERIC on PostgreSQL, text on SQLite (whose NUMERIC is a float)."""

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int = 18, scale: int = 2) -> None:
        super().__init__()
        self.precision = precision
        self.scale = scale
        self.quantum = Decimal(1).scaleb(-scale)

    def __repr__(self) -> str:  # Alembic renders the column type from this
        return f"{type(self).__name__}({self.precision}, {self.scale})"

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(self.precision + 2))
        return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"expected Decimal, got {type(value).__name__}")
        exact = value.quantize(self.quantum)
        if exact != value:
            raise ValueError(f"{value} has more than {self.scale} decimals")
        return str(exact) if dialect.name == "sqlite" else exact

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(str(value)).quantize(self.quantum)


JSONType = JSON().with_variant(JSONB(), "postgresql")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create the engine; SQLite gets WAL, foreign keys and write-ready transactions."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            json_serializer=_json_dumps,
            **kwargs,
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, json_serializer=_json_dumps, **kwargs)


def is_transient(exc: DBAPIError) -> bool:
    """A database error worth trying again in a moment: the connection refused, lost or shut
    down by the server (what a restart does), a serialization failure or deadlock, SQLite busy.
    A missing table, a broken constraint and the like are not."""
    if exc.connection_invalidated:
        return True
    code = getattr(exc.orig, "sqlstate", None)
    if code:  # PostgreSQL: 40001 serialization, 40P01 deadlock, 08 connection, 57P0x shutdown
        return str(code).startswith(("40001", "40P01", "08", "57P"))
    name = getattr(exc.orig, "sqlite_errorname", None)
    if name:
        return str(name) in ("SQLITE_BUSY", "SQLITE_LOCKED")
    # psycopg reports a connection it could not make (refused, timed out) with no code.
    return isinstance(exc, OperationalError)


SQLITE_BUSY_SECONDS = 30.0  # how long a transaction waits for SQLite's write lock
READ_ONLY = {"puente_read_only": True}  # execution options of a session that only reads


@contextmanager
def reading(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session that only reads. On SQLite its transaction does not take the write lock (WAL
    gives it a snapshot), so it never waits behind a worker's writes; elsewhere it is a
    session like any other."""
    with sessions() as s:
        s.connection(execution_options=READ_ONLY)
        yield s


def _sqlite_begin(conn: Connection) -> None:
    """BEGIN IMMEDIATE takes the write lock up front: two writers wait for each other instead
    of failing with "database is locked" on lock upgrade. A reader needs no lock at all."""
    dbapi_connection: Any = conn.connection.dbapi_connection
    if conn.get_execution_options().get("puente_read_only"):
        dbapi_connection.execute("BEGIN")
    else:
        _begin_immediate(dbapi_connection)


def _begin_immediate(dbapi_connection: Any) -> None:
    """BEGIN IMMEDIATE, waiting for the write lock in steps of at most 2 ms.

    SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25… ms between tries, so a writer
    waiting for one that holds the lock for a few ms sleeps well past its release: with two
    workers and the web on one file most of that wait was idle time. Here it looks again
    after 0.1 ms, doubling to 2 ms, for up to SQLITE_BUSY_SECONDS, and then fails as SQLite
    would ("database is locked")."""
    delay, deadline = 0.0001, time.monotonic() + SQLITE_BUSY_SECONDS
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout=0")  # the tries are ours, for BEGIN only
        while True:
            try:
                cursor.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorname != "SQLITE_BUSY" or time.monotonic() > deadline:
                    # As SQLAlchemy wraps what SQLite raises, so that callers see its kind.
                    raise OperationalError("BEGIN IMMEDIATE", None, exc) from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.002)
    finally:
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_SECONDS * 1000)}")
        cursor.close()


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # let the "begin" listener issue BEGIN itself
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_SECONDS * 1000)}")
    cursor.close()


def _json_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def insert_new(
    session: Session, model: type[T], values: dict[str, Any], unique: list[str]
) -> T | None:
    """INSERT the row unless one with the same `unique` columns exists: the new object, or
    None when it exists (perhaps made by another transaction a moment ago).

    One statement (INSERT … ON CONFLICT DO NOTHING RETURNING id), where a savepoint around a
    plain INSERT takes three round trips and an IntegrityError to say the same; the object is
    handed to the session as store_new does (an ORM INSERT … RETURNING cost three times as
    much)."""
    obj = model(**values)
    if not _inserted(session, obj, tuple(unique)):
        return None
    make_transient_to_detached(obj)
    session.add(obj)
    return obj


def _inserted(session: Session, obj: Any, unique: tuple[str, ...] | None) -> bool:
    """INSERT the object's row unless it clashes on `unique` (None: on any unique constraint);
    whether it did, its new id set."""
    mapper = inspect(obj).mapper
    dialect = session.get_bind().dialect.name
    statement = _on_conflict_do_nothing(dialect, mapper.local_table, unique, returning_id=True)
    new_id = session.scalar(statement, _row(mapper, obj))
    if new_id is None:
        return False
    obj.id = new_id
    return True


@cache
def _on_conflict_do_nothing(
    dialect: str, table: Any, unique: tuple[str, ...] | None, returning_id: bool
) -> Any:
    """INSERT … ON CONFLICT [(unique)] DO NOTHING [RETURNING id], built once per shape."""
    build = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = build(table).on_conflict_do_nothing(index_elements=unique)
    return statement.returning(table.c.id) if returning_id else statement


def insert_ignore(
    session: Session, table: Any, rows: list[dict[str, Any]], unique: list[str]
) -> None:
    """INSERT the rows, skipping those whose `unique` columns exist already (one statement)."""
    dialect = session.get_bind().dialect.name
    statement = _on_conflict_do_nothing(dialect, table, tuple(unique), returning_id=False)
    session.execute(statement, rows)


def store_new(session: Session, obj: Any, *collections: str) -> bool:
    """INSERT a new object and the new objects in its one-to-many `collections` with Core
    statements, then put them in the session as the ORM's flush would leave them: persistent,
    every column loaded, nothing pending. False, and nothing stored, when the object's row
    clashes with a stored one on a unique constraint (ON CONFLICT DO NOTHING: no savepoint
    and IntegrityError to say so).

    The unit of work for a draft (invoice, lines, taxes) was ~1 ms of a run's ~6 on SQLite
    (bench/README.md). For plain rows only: Python-side column defaults (no server defaults),
    many-to-one relations to objects already stored."""
    children = [(name, list(getattr(obj, name))) for name in collections]
    if not _inserted(session, obj, None):
        return False
    for name, items in children:
        [fk] = _one_to_many(obj, name).remote_side
        for item in items:
            setattr(item, fk.key, obj.id)
        if items:
            for item, new_id in zip(items, _insert(session, items), strict=True):
                item.id = new_id
            for item in items:
                make_transient_to_detached(item)
    make_transient_to_detached(obj)
    session.add(obj)
    return True


def _one_to_many(obj: Any, name: str) -> Any:
    return inspect(obj).mapper.relationships[name]


def _insert(session: Session, objects: list[Any]) -> list[int]:
    """INSERT objects of one class in one statement; their new ids, in order. Through the
    session, so that whatever it holds pending is flushed first (a row ours may refer to)."""
    mapper = inspect(objects[0]).mapper
    table = mapper.local_table
    rows = [_row(mapper, obj) for obj in objects]
    many = len(rows) > 1
    return list(session.scalars(_insert_statement(table, many), rows if many else rows[0]))


@cache
def _insert_statement(table: Any, many: bool) -> Any:
    return insert(table).returning(table.c.id, sort_by_parameter_order=many)


def _row(mapper: Any, obj: Any) -> dict[str, Any]:
    """The object's columns, with its many-to-one keys and the columns' defaults set on it."""
    for relation in mapper.relationships:
        target = obj.__dict__.get(relation.key)
        if relation.direction is MANYTOONE and target is not None:
            for local, remote in relation.local_remote_pairs:
                setattr(obj, mapper.get_property_by_column(local).key, getattr(target, remote.key))
    row: dict[str, Any] = {}
    for prop in mapper.column_attrs:
        column = prop.columns[0]
        if column.primary_key:
            continue
        if prop.key not in obj.__dict__:
            default = column.default
            value = None if default is None else default.arg
            setattr(obj, prop.key, value(None) if callable(value) else value)
        row[column.key] = obj.__dict__[prop.key]
    return row


def make_sessionmaker(engine: Engine) -> sessionmaker[Any]:
    sessions = sessionmaker(engine, expire_on_commit=False)
    event.listen(sessions, "do_orm_execute", _fresh_under_lock)
    return sessions


def _fresh_under_lock(state: Any) -> None:
    """A row read with FOR UPDATE is read afresh into objects the session already holds.

    SQLAlchemy keeps what an object held when it is loaded again, so a caller that had the
    invoice before taking its lock would check and change the values from before the lock:
    on PostgreSQL a payment or a cancellation committed meanwhile would be overwritten.
    """
    if state.is_select and state.statement._for_update_arg is not None:
        state.update_execution_options(populate_existing=True)
