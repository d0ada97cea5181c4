"""Rows of a plugin's own tables, through the table's spec (`feedback.store.tables.Table`).

A plugin writes no SQL: it hands these functions the spec it registered with `register_tables` and
plain values. Every identifier in the SQL is a name from the spec (anything else raises ValueError),
every value travels as a parameter, and values are checked against the column types the same way on
every backend: json columns are encoded on the way in and decoded on the way out, booleans come back
as bools. `where` maps columns to values: a value matches with `=`, None with `IS NULL`, and a list,
tuple or set (in a column that is not json) with `IN`. The SQL is the portable kind (`RETURNING`,
`ON CONFLICT DO NOTHING`, no rowid).

    from feedback.store import plugin_data

    note_id = await store.write(lambda conn: plugin_data.insert(conn, NOTES, {"text": "hi", "at": now}))
    rows = await store.read(lambda conn: plugin_data.select(conn, NOTES, {"done": False}, order_by="-id"))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import msgspec

from feedback.store import Connection, all_rows, first_row, marks, scalar
from feedback.store.tables import Column, Table, check_value, quoted

__all__ = ["count", "delete", "first", "insert", "select", "update"]


def insert(
    conn: Connection, table: Table, values: Mapping[str, Any], *, on_conflict: Literal["error", "ignore"] = "error"
) -> Any:
    """Insert one row; returns its primary key (a tuple for a composite key; None when the table has
    none). With `on_conflict="ignore"` a row a key or unique index refuses is skipped and None
    returned; otherwise the refusal raises (wrap the call in `feedback.store.unique` for a Conflict)."""
    _spec(table)
    for column in table.columns:
        if column.required and values.get(column.name) is None:
            raise ValueError(f"{table.name}.{column.name}: a value is required")
    names = list(values)
    params = [_to_db(table, name, values[name]) for name in names]
    if names:
        sql = f"INSERT INTO {quoted(table.name)} ({', '.join(map(quoted, names))}) VALUES ({marks(names)})"
    else:
        sql = f"INSERT INTO {quoted(table.name)} DEFAULT VALUES"
    if on_conflict == "ignore":
        if not names:  # SQLite takes no ON CONFLICT after DEFAULT VALUES
            raise ValueError(f"{table.name}: on_conflict='ignore' needs at least one value")
        sql += " ON CONFLICT DO NOTHING"
    elif on_conflict != "error":
        raise ValueError(f"on_conflict: {on_conflict!r} is neither 'error' nor 'ignore'")
    keys = table.primary_key
    if not keys:
        conn.execute(sql, params).close()
        return None
    row = first_row(conn, f"{sql} RETURNING {', '.join(map(quoted, keys))}", params)
    if row is None:
        return None
    return row[keys[0]] if len(keys) == 1 else tuple(row[key] for key in keys)


def select(
    conn: Connection,
    table: Table,
    where: Mapping[str, Any] | None = None,
    *,
    columns: Sequence[str] | None = None,
    order_by: str | Sequence[str] = (),
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The matching rows as dicts of `columns` (all the spec's by default), in `order_by` order (column
    names, each prefixed with "-" for descending), at most `limit` of them."""
    sql, params = _select_sql(table, where, columns, order_by)
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise ValueError(f"limit: must be a whole number from 0, not {limit!r}")
        sql += " LIMIT ?"
        params.append(limit)
    return _from_db(table, all_rows(conn, sql, params))


def first(
    conn: Connection,
    table: Table,
    where: Mapping[str, Any] | None = None,
    *,
    columns: Sequence[str] | None = None,
    order_by: str | Sequence[str] = (),
) -> dict[str, Any] | None:
    """The first matching row (in `order_by` order), or None."""
    sql, params = _select_sql(table, where, columns, order_by)
    row = first_row(conn, f"{sql} LIMIT 1", params)
    return None if row is None else _from_db(table, [row])[0]


def count(conn: Connection, table: Table, where: Mapping[str, Any] | None = None) -> int:
    """How many rows match."""
    condition, params = _where(_spec(table), where)
    return int(scalar(conn, f"SELECT count(*) FROM {quoted(table.name)}{condition}", params, 0))


def update(conn: Connection, table: Table, where: Mapping[str, Any], values: Mapping[str, Any]) -> int:
    """Set `values` in the matching rows (`where={}` for every row); returns how many rows changed.
    A condition on the old value makes it a compare-and-set: `where={"id": 3, "done": False}`."""
    _spec(table)
    if not values:
        raise ValueError(f"{table.name}: update names no column to set")
    assignments = ", ".join(f"{quoted(table.column(name).name)} = ?" for name in values)
    params = [_to_db(table, name, value) for name, value in values.items()]
    condition, where_params = _where(table, _required(table, where))
    cursor = conn.execute(f"UPDATE {quoted(table.name)} SET {assignments}{condition}", [*params, *where_params])
    return cursor.rowcount


def delete(conn: Connection, table: Table, where: Mapping[str, Any]) -> int:
    """Delete the matching rows (`where={}` for every row); returns how many."""
    condition, params = _where(_spec(table), _required(table, where))
    return conn.execute(f"DELETE FROM {quoted(table.name)}{condition}", params).rowcount


# -- building blocks --------------------------------------------------------------------------------------


def _spec(table: Any) -> Table:
    if not isinstance(table, Table):
        raise ValueError(f"not a table spec: {table!r} (pass the feedback.store.tables.Table you registered)")
    return table


def _required(table: Table, where: Mapping[str, Any] | None) -> Mapping[str, Any]:
    # An update or delete of every row must be asked for ({}), never fall out of a forgotten argument.
    if where is None:
        raise ValueError(f"{table.name}: where is required (an empty dict means every row)")
    return where


def _to_db(table: Table, name: Any, value: Any) -> Any:
    column = table.column(name)
    if value is None:
        return None  # a NOT NULL column refuses it in the database
    try:
        check_value(column, value)
    except ValueError as error:
        raise ValueError(f"{table.name}.{column.name}: {error}") from None
    return msgspec.json.encode(value).decode() if column.type == "json" else value


def _decoded(column: Column, value: Any) -> Any:
    if value is None:
        return None
    if column.type == "json":
        return msgspec.json.decode(value)
    if column.type == "boolean":
        return bool(value)
    return value


def _from_db(table: Table, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    columns = {column.name: column for column in table.columns}
    return [{name: _decoded(columns[name], value) for name, value in row.items()} for row in found]


def _where(table: Table, where: Mapping[str, Any] | None) -> tuple[str, list[Any]]:
    if where is not None and not isinstance(where, Mapping):
        raise ValueError(f"{table.name}: where must map column names to values")
    parts: list[str] = []
    params: list[Any] = []
    for name, value in (where or {}).items():
        column = table.column(name)
        if value is None:
            parts.append(f"{quoted(column.name)} IS NULL")
        elif isinstance(value, list | tuple | set | frozenset) and column.type != "json":
            if not value:
                parts.append("1 = 0")  # IN () is not SQL: nothing matches an empty list
                continue
            parts.append(f"{quoted(column.name)} IN ({marks(list(value))})")
            params.extend(_to_db(table, name, item) for item in value)
        else:
            parts.append(f"{quoted(column.name)} = ?")
            params.append(_to_db(table, name, value))
    return (" WHERE " + " AND ".join(parts)) if parts else "", params


def _order(table: Table, order_by: str | Sequence[str]) -> str:
    keys: Iterable[Any] = [order_by] if isinstance(order_by, str) else order_by
    terms = []
    for key in keys:
        descending = isinstance(key, str) and key.startswith("-")
        column = table.column(key[1:] if descending else key)
        terms.append(f"{quoted(column.name)} {'DESC' if descending else 'ASC'}")
    return f" ORDER BY {', '.join(terms)}" if terms else ""


def _select_sql(
    table: Table, where: Mapping[str, Any] | None, columns: Sequence[str] | None, order_by: str | Sequence[str]
) -> tuple[str, list[Any]]:
    _spec(table)
    if isinstance(columns, str):
        raise ValueError(f"{table.name}: columns must be a list of names, not one string")
    names = [table.column(name).name for name in columns] if columns is not None else [c.name for c in table.columns]
    if not names:
        raise ValueError(f"{table.name}: columns names no column")
    condition, params = _where(table, where)
    sql = f"SELECT {', '.join(map(quoted, names))} FROM {quoted(table.name)}{condition}{_order(table, order_by)}"
    return sql, params
