"""A PostgreSQL connection with the face of a `sqlite3.Connection`, for the store's functions.

The store's SQL is written once, with `?` (or `:name`) parameters, and runs on both backends. This
adapter turns it into psycopg's form (`%s`, `%(name)s`, a literal `%` doubled) once per statement
text, hands rows over as `Row`s (by index and by name, like `sqlite3.Row`), loads `numeric` (what
`sum()` of integers gives) as int or float as SQLite would, and raises the store's own
`IntegrityError` / `DatabaseError` so callers catch one thing on either backend.

The connection runs in autocommit mode: transactions are the explicit `BEGIN`/`COMMIT` the store
already issues (`BEGIN IMMEDIATE` becomes `BEGIN`; the cross-node writer lock is taken by the Store).
psycopg is imported only here, and only when a `postgresql://` database is used.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import Loader

from feedback.store.errors import PgDatabaseError, PgIntegrityError, PgOperationalError

#: Parameters in the store's SQL: `?` and `:name`, and `%`, outside quoted strings and identifiers.
_TOKENS = re.compile(r"""('(?:[^']|'')*'|"(?:[^"]|"")*"|\$\$.*?\$\$|\?|(?<!:):[A-Za-z_]\w*|%)""", re.DOTALL)
_translated: dict[str, str] = {}


def translate(sql: str) -> str:
    """The statement in psycopg's parameter style (cached: the store's statements are few and fixed)."""
    found = _translated.get(sql)
    if found is None:
        found = _TOKENS.sub(_replace, sql)
        if found.lstrip().upper().startswith("BEGIN IMMEDIATE"):
            found = "BEGIN"
        if len(_translated) < 10_000:  # statements built with values inside would grow it without end
            _translated[sql] = found
    return found


def _replace(match: re.Match[str]) -> str:
    token = match.group(0)
    if token == "?":
        return "%s"
    if token == "%":
        return "%%"
    if token.startswith(":"):
        return f"%({token[1:]})s"
    return token.replace("%", "%%")  # a quoted string, identifier or $$ body: its % is a literal


class Row(tuple):
    """A row readable by position and by column name, and convertible with `dict(row)`."""

    __slots__ = ()
    _names: tuple[str, ...] = ()
    _index: dict[str, int] = {}

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_class(names: tuple[str, ...]) -> type[Row]:
    return type("Row", (Row,), {"__slots__": (), "_names": names, "_index": {n: i for i, n in enumerate(names)}})


_row_classes: dict[tuple[str, ...], type[Row]] = {}


def _named_rows(cursor: psycopg.Cursor) -> Any:
    names = tuple(column.name for column in cursor.description or ())
    cls = _row_classes.get(names)
    if cls is None:
        cls = _row_classes[names] = _row_class(names)
    return lambda values: tuple.__new__(cls, values)


class NumericLoader(Loader):
    """`numeric` as SQLite hands sums over: an int when whole, else a float (never a Decimal)."""

    def load(self, data: Any) -> int | float:
        text = bytes(data).decode()
        return int(text) if "." not in text and "e" not in text.lower() and text not in ("NaN",) else float(text)


def _raise(error: psycopg.Error) -> None:
    if isinstance(error, psycopg.IntegrityError):
        raise PgIntegrityError(str(error), getattr(error, "sqlstate", None)) from error
    if isinstance(error, psycopg.OperationalError):
        raise PgOperationalError(str(error), getattr(error, "sqlstate", None)) from error
    raise PgDatabaseError(str(error), getattr(error, "sqlstate", None)) from error


class Cursor:
    """The parts of `sqlite3.Cursor` the store uses. Made while statements are sent together
    (`Connection.sent_together`), its results are there only once the pipeline has synced: the first
    look at them (rows, rowcount, description) syncs it."""

    __slots__ = ("_connection", "_cursor", "_unsynced", "row_factory")

    def __init__(self, cursor: psycopg.Cursor, connection: Connection | None = None) -> None:
        self._cursor = cursor
        self._connection = connection
        self._unsynced = connection is not None and connection.pipeline is not None
        self.row_factory: Any = None  # rows are always `Row`s; setting it is accepted and ignored

    def _results(self) -> psycopg.Cursor:
        """The psycopg cursor, its results received (a pipeline still open is synced first)."""
        if self._unsynced:
            self._unsynced = False
            pipeline = self._connection.pipeline if self._connection is not None else None
            if pipeline is not None:
                try:
                    pipeline.sync()
                except psycopg.Error as error:
                    _raise(error)
        return self._cursor

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Cursor:
        try:
            self._cursor.execute(translate(sql), params if isinstance(params, dict) else tuple(params))
        except psycopg.Error as error:
            _raise(error)
        return self

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Cursor:
        try:
            self._cursor.executemany(translate(sql), [tuple(row) for row in rows])
        except psycopg.Error as error:
            _raise(error)
        return self

    def fetchone(self) -> Any:
        cursor = self._results()
        return cursor.fetchone() if cursor.description is not None else None

    def fetchall(self) -> list[Any]:
        cursor = self._results()
        return cursor.fetchall() if cursor.description is not None else []

    def fetchmany(self, size: int = 1) -> list[Any]:
        cursor = self._results()
        return cursor.fetchmany(size) if cursor.description is not None else []

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())

    @property
    def rowcount(self) -> int:
        return self._results().rowcount

    @property
    def description(self) -> Any:
        return self._results().description

    def close(self) -> None:
        self._cursor.close()


def configure(raw: psycopg.Connection) -> None:
    """What every connection needs: rows by name and index, `numeric` as int or float."""
    raw.row_factory = _named_rows
    raw.adapters.register_loader("numeric", NumericLoader)


def reader_pool(url: str, size: int) -> Any:
    """psycopg's pool of read connections (autocommit, each configured once when opened)."""
    from psycopg_pool import ConnectionPool

    pool = ConnectionPool(
        url,
        min_size=1,
        max_size=size,
        kwargs={"autocommit": True, "application_name": "feedback-reader"},
        configure=configure,
        open=False,
    )
    pool.open(wait=True, timeout=30)
    return pool


class Connection:
    """A psycopg connection in autocommit mode that the store's functions can use as a sqlite3 one."""

    backend = "postgresql"
    isolation_level = None  # transactions are explicit, as on the store's SQLite connections

    def __init__(self, raw: psycopg.Connection) -> None:
        self.raw = raw
        self.pipeline: psycopg.Pipeline | None = None  # while statements are sent together
        if raw.row_factory is not _named_rows:
            configure(raw)

    @classmethod
    def open(cls, url: str, *, application_name: str = "feedback") -> Connection:
        try:
            raw = psycopg.connect(url, autocommit=True, application_name=application_name)
        except psycopg.Error as error:
            _raise(error)
        return cls(raw)

    @property
    def broken(self) -> bool:
        """Whether the server closed or lost this connection (it cannot be used again)."""
        return self.raw.closed or self.raw.broken

    @property
    def in_transaction(self) -> bool:
        """Inside BEGIN … COMMIT (or a failed one awaiting ROLLBACK); never on a lost connection."""
        status = self.raw.info.transaction_status
        return status in (pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR, pq.TransactionStatus.ACTIVE)

    @property
    def row_factory(self) -> Any:
        return Row

    @row_factory.setter
    def row_factory(self, _value: Any) -> None:
        pass  # rows are always `Row`s (by index and by name)

    def cursor(self) -> Cursor:
        return Cursor(self.raw.cursor(), self)

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Cursor:
        return Cursor(self.raw.cursor(), self).execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Cursor:
        return Cursor(self.raw.cursor(), self).executemany(sql, rows)

    @contextmanager
    def sent_together(self) -> Iterator[None]:
        """Inside, statements go out without waiting for each one's answer (psycopg's pipeline mode);
        the answers are read when a result is first looked at, or on leaving. A group commit's flush,
        several statements whose results nobody reads, then takes one round trip instead of one per
        statement. An error is raised there, as the store names it; inside a transaction it fails the
        transaction as it would have statement by statement. Nested, the outer block sends."""
        if self.pipeline is not None:
            yield
            return
        try:
            with self.raw.pipeline() as pipeline:
                self.pipeline = pipeline
                try:
                    yield
                finally:
                    self.pipeline = None
        except psycopg.Error as error:
            _raise(error)

    def execute_script(self, sql: str) -> None:
        """Several statements without parameters in one round trip (psycopg sends a query without
        parameters as it is, and the server runs each statement in turn)."""
        try:
            self.raw.execute(sql)
        except psycopg.Error as error:
            _raise(error)

    def commit(self) -> None:
        if self.in_transaction:
            self.raw.execute("COMMIT")

    def rollback(self) -> None:
        if self.in_transaction:
            self.raw.execute("ROLLBACK")

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> Connection:
        # As `with sqlite3_connection:` in the CLI: the block's statements commit together, under the
        # writer lock every write transaction takes (see dialect_postgres).
        if not self.in_transaction:
            from feedback.store.dialect_postgres import begin_write

            begin_write(self)
        return self

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        if kind is None:
            self.commit()
        else:
            self.rollback()
