"""Plugins' own tables: declared as backend-neutral specs (`register_tables`), created and topped up on
migrate, read and written through `feedback.store.plugin_data` with identifiers from the spec only;
and `feedback.store.unique()`, whose savepoint leaves the transaction usable after a refused row."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlite_utils
from litestar.testing import TestClient

from feedback.db import connect_writer, open_utils
from feedback.errors import Conflict
from feedback.migrations import apply_all, migrations
from feedback.plugins import build_plugin_manager
from feedback.settings import Settings
from feedback.store import plugin_data, schema, tables, unique, users
from feedback.store.tables import CORE_TABLES, Column, Index, Table, TableSpecError
from tests.conftest import Org, auth_header, make_org, rows, run_cli, wait_for_dispatch
from tests.test_plugins import write_plugin

APP_SETTINGS = {"secret": "s" * 32, "jobs": False, "rate_limit": 0}

NOTES_PLUGIN = """
    from litestar import get, post
    from litestar.datastructures import State
    from litestar.params import FromPath, FromQuery, JSONBody
    from msgspec import Struct

    from feedback import hookimpl
    from feedback.store import plugin_data, unique
    from feedback.store.tables import Column, Index, Table

    NOTES = Table(
        "notes_items",
        [
            Column("id", "integer", primary_key=True, autoincrement=True),
            Column("key", "text", nullable=False),
            Column("body", "text"),
            Column("tags", "json", nullable=False, default=[]),
            Column("done", "boolean", nullable=False, default=False),
        ],
        indexes=[Index(["key"], unique=True)],
    )


    class NoteBody(Struct):
        key: str
        body: str
        tags: list[str] = []


    @hookimpl
    def register_tables():
        return NOTES


    @hookimpl
    def track_event(event, store):
        if event.type != "response.stored":
            return None
        row = {"key": event.id, "tags": [event.type, event.data["unit"]]}
        # Keyed on the event id: a second delivery of the event inserts nothing.
        return store.write(lambda conn: plugin_data.insert(conn, NOTES, row, on_conflict="ignore"))


    @post("/notes")
    async def add_note(data: JSONBody[NoteBody], state: State) -> dict:
        def write(conn):
            with unique(conn, f"key: a note {data.key!r} exists", "key"):
                return plugin_data.insert(conn, NOTES, {"key": data.key, "body": data.body, "tags": data.tags})

        return {"id": await state.store.write(write)}


    @post("/notes/{note_id:int}/done")
    async def mark_done(note_id: FromPath[int], state: State) -> dict:
        changed = await state.store.write(
            lambda conn: plugin_data.update(conn, NOTES, {"id": note_id, "done": False}, {"done": True})
        )
        return {"changed": changed}


    @get("/notes")
    async def notes(state: State, done: FromQuery[bool | None] = None) -> list[dict]:
        where = {} if done is None else {"done": done}
        return await state.store.read(lambda conn: plugin_data.select(conn, NOTES, where, order_by="id"))


    @hookimpl
    def register_routes(settings):
        return [add_note, mark_done, notes]
"""


def test_hook_register_tables(tmp_path: Path) -> None:
    # A third party's plugin, loaded from a plugins folder: its table is created on start-up, and a
    # route and track_event write and read it with no SQL of their own.
    org = make_org(tmp_path / "f.db")
    folder = write_plugin(tmp_path / "p", "notes", NOTES_PLUGIN)
    with TestClient(create_app(org, folder)) as client:
        assert client.post("/notes", json={"key": "k1", "body": "first", "tags": ["a"]}).json() == {"id": 1}
        assert client.post("/notes", json={"key": "k2", "body": "second"}).json() == {"id": 2}
        taken = client.post("/notes", json={"key": "k1", "body": "again"})
        assert taken.status_code == 409 and taken.json()["field"] == "key"
        assert taken.json()["detail"].startswith("key: ")
        # The refused insert took nothing: the next note gets the next id.
        assert client.post("/notes", json={"key": "k3", "body": "third"}).json() == {"id": 3}
        assert client.post("/notes/2/done").json() == {"changed": 1}
        assert client.post("/notes/2/done").json() == {"changed": 0}  # compare-and-set: done already
        stored = client.post("/api/v1/responses", json={"touchpoint": "tp-a1", "answers": {"overall": 4}})
        assert stored.status_code == 201
        wait_for_dispatch(org)
        listed = client.get("/notes").json()
        assert [(n["key"], n["body"], n["tags"], n["done"]) for n in listed[:3]] == [
            ("k1", "first", ["a"], False),
            ("k2", "second", [], True),
            ("k3", "third", [], False),
        ]
        assert listed[3]["key"] == f"response.stored:{stored.json()['id']}"
        assert listed[3]["tags"] == ["response.stored", "A1"] and listed[3]["body"] is None
        assert [n["key"] for n in client.get("/notes", params={"done": "true"}).json()] == ["k2"]
    # On disk: json as text, booleans as 0/1 (SQLite's forms, hidden from the plugin).
    assert rows(org, "SELECT tags, done FROM notes_items WHERE key = 'k2'") == [{"tags": "[]", "done": 1}]


def create_app(org: Org, folder: Path | None = None, **settings: object):
    from feedback.web.app import create_app

    plugins_dir = {"plugins_dir": str(folder)} if folder else {}
    return create_app(Settings(db=str(org.db), **plugins_dir, **APP_SETTINGS, **settings))


# -- migrating a spec that grows -------------------------------------------------------------------------

VERSIONED_PLUGIN = """
    from feedback import hookimpl
    from feedback.store.tables import Column, Index, Table

    TASKS = Table(
        "tasks_items",
        [
            Column("id", "integer", primary_key=True, autoincrement=True),
            Column("title", "text", nullable=False),
            {more}
        ],
        indexes=[{indexes}],
    )


    @hookimpl
    def register_tables():
        return TASKS
"""


def versioned(tmp_path: Path, version: str, more: str = "", indexes: str = ""):
    """A plugin manager holding the tasks plugin as it is in `version` (its own folder, its own module)."""
    source = VERSIONED_PLUGIN.replace("{more}", more).replace("{indexes}", indexes)
    folder = write_plugin(tmp_path / version, "tasks", source)
    manager = build_plugin_manager(Settings(plugins_dir=str(folder)))
    spec = manager.get_plugin("tasks").TASKS
    return manager, spec


def migrate(path: Path, manager) -> None:
    db = open_utils(str(path))
    try:
        apply_all(db, manager)
    finally:
        db.close()


def test_a_column_added_to_the_spec_migrates_an_existing_database_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    first, spec_one = versioned(tmp_path, "v1")
    migrate(path, first)
    db = open_utils(str(path))
    with db.conn:
        ids = [plugin_data.insert(db.conn, spec_one, {"title": title}) for title in ("call back", "fix lift")]
    db.close()

    second, spec_two = versioned(
        tmp_path,
        "v2",
        more='Column("priority", "integer", nullable=False, default=0), Column("note", "text"),',
        indexes='Index(["priority", "title"])',
    )
    migrate(path, second)
    db = open_utils(str(path))
    assert plugin_data.select(db.conn, spec_two, order_by="id") == [
        {"id": ids[0], "title": "call back", "priority": 0, "note": None},
        {"id": ids[1], "title": "fix lift", "priority": 0, "note": None},
    ]
    assert db["tasks_items"].indexes[0].columns == ["priority", "title"]
    assert db["tasks_items"].indexes[0].name == "tasks_items__priority_title"
    # Declarative and idempotent: nothing is left to do, and a second start-up changes nothing.
    assert tables.plan(db.conn, [spec_two]) == []
    db.close()
    migrate(path, second)

    # A column that an existing table cannot take (NOT NULL, no default) stops the migration, naming it.
    third, _ = versioned(tmp_path, "v3", more='Column("owner", "text", nullable=False),')
    with pytest.raises(TableSpecError, match=r"table 'tasks_items': column 'owner' cannot be added"):
        migrate(path, third)
    assert [r["title"] for r in rows(Org(db=path), "SELECT title FROM tasks_items ORDER BY id")] == [
        "call back",
        "fix lift",
    ]


def test_a_unique_index_over_rows_that_are_not_unique_is_refused_naming_the_table(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    first, spec = versioned(tmp_path, "v1")
    migrate(path, first)
    db = open_utils(str(path))
    with db.conn:
        for _ in range(2):
            plugin_data.insert(db.conn, spec, {"title": "same"})
    db.close()
    second, _ = versioned(tmp_path, "v2", indexes='Index(["title"], unique=True)')
    with pytest.raises(TableSpecError, match="tasks_items"):
        migrate(path, second)
    assert rows(Org(db=path), "SELECT count(*) AS n FROM tasks_items") == [{"n": 2}]


# -- bad specs ---------------------------------------------------------------------------------------------

ID = Column("id", "integer", primary_key=True, autoincrement=True)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Table("Notes", [ID]), r"table 'Notes': not a valid name"),
        (lambda: Table("notes; drop table units", [ID]), r"not a valid name"),
        (lambda: Table("units", [ID]), r"table 'units': the core has a table of that name"),
        (lambda: Table("sqlite_notes", [ID]), r"table 'sqlite_notes': names starting with sqlite_"),
        (lambda: Table("notes", []), r"table 'notes': declares no column"),
        (lambda: Table("notes", [ID, Column("when", "datetime")]), r"column 'when': unknown type 'datetime'"),
        (lambda: Table("notes", [ID, Column("Body Text", "text")]), r"column 'Body Text': not a valid name"),
        (lambda: Table("notes", [ID, Column("id", "text")]), r"column 'id' is declared twice"),
        (lambda: Table("notes", [ID, Column("n", "integer", default="1")]), r"column 'n': default must be integer"),
        (lambda: Table("notes", [Column("id", "text", primary_key=True, autoincrement=True)]), "autoincrement"),
        (lambda: Table("notes", [ID], indexes=[Index(["body"])]), r"index on 'body', which is not a column"),
        (lambda: Table("notes", [ID], indexes=[Index(["id", "id"])]), r"distinct columns"),
    ],
)
def test_bad_specs_are_refused_naming_the_table_and_column(build, message: str) -> None:
    with pytest.raises(TableSpecError, match=message):
        build()


def test_the_core_table_list_is_what_the_core_migrations_create() -> None:
    db = sqlite_utils.Database(memory=True)
    migrations.apply(db)
    tables.migrate(db.conn, schema.CORE_SCHEMA)  # the tables added since come from the spec alone
    created = {name for name in db.table_names() if not name.startswith(("sqlite_", "_"))}
    assert created == CORE_TABLES


def test_a_core_table_or_a_table_declared_twice_stops_the_migration(tmp_path: Path) -> None:
    # Built inside register_tables: the failure is not swallowed as a plugin error; `feedback init` fails
    # and says which plugin and table.
    folder = write_plugin(
        tmp_path / "p",
        "clash",
        """
        from feedback import hookimpl
        from feedback.store.tables import Column, Table

        @hookimpl
        def register_tables():
            return Table("units", [Column("code", "text", primary_key=True)])
        """,
    )
    result = run_cli("init", "--db", str(tmp_path / "f.db"), env={"FEEDBACK_PLUGINS_DIR": str(folder)})
    assert result.returncode != 0
    assert "plugin clash: register_tables failed" in result.stderr
    assert "table 'units': the core has a table of that name" in result.stderr

    twice = """
        from feedback import hookimpl
        from feedback.store.tables import Column, Table

        @hookimpl
        def register_tables():
            return Table("shared_items", [Column("id", "integer", primary_key=True)])
    """
    folder = write_plugin(tmp_path / "q", "one", twice)
    write_plugin(folder, "two", twice)
    with pytest.raises(TableSpecError, match=r"table 'shared_items': the name 'shared_items' is declared twice"):
        migrate(tmp_path / "g.db", build_plugin_manager(Settings(plugins_dir=str(folder))))


# -- the data interface -------------------------------------------------------------------------------------

ITEMS = Table(
    "items_things",
    [
        ID,
        Column("name", "text", nullable=False),
        Column("size", "real"),
        Column("flag", "boolean", nullable=False, default=True),
        Column("meta", "json"),
        Column("at", "timestamp"),
    ],
)
PAIRS = Table(
    "items_pairs",
    [Column("a", "text", primary_key=True), Column("b", "integer", primary_key=True), Column("v", "text")],
)


@pytest.fixture
def conn(tmp_path: Path):
    connection = connect_writer(str(tmp_path / "d.db"))
    tables.migrate(connection, [ITEMS, PAIRS])
    yield connection
    connection.close()


def test_rows_round_trip_with_the_same_types_on_every_backend(conn) -> None:
    first = plugin_data.insert(
        conn, ITEMS, {"name": "a", "size": 2, "meta": {"k": [1, 2]}, "at": "2025-01-02T03:04:05Z"}
    )
    second = plugin_data.insert(conn, ITEMS, {"name": "b", "flag": False})
    assert (first, second) == (1, 2)
    assert plugin_data.first(conn, ITEMS, {"id": first}) == {
        "id": 1,
        "name": "a",
        "size": 2,
        "flag": True,
        "meta": {"k": [1, 2]},
        "at": "2025-01-02T03:04:05Z",
    }
    assert plugin_data.select(conn, ITEMS, {"meta": None}, columns=["name", "flag"]) == [{"name": "b", "flag": False}]
    assert [r["id"] for r in plugin_data.select(conn, ITEMS, {"name": ["a", "b", "c"]}, order_by="-id")] == [2, 1]
    assert plugin_data.select(conn, ITEMS, {"name": []}) == []
    assert [r["id"] for r in plugin_data.select(conn, ITEMS, order_by=["flag", "-name"], limit=1)] == [2]
    assert plugin_data.count(conn, ITEMS, {"flag": True}) == 1
    assert plugin_data.update(conn, ITEMS, {"flag": False}, {"meta": ["x"], "size": 1.5}) == 1
    assert plugin_data.first(conn, ITEMS, {"id": 2}, columns=["meta", "size"]) == {"meta": ["x"], "size": 1.5}
    assert plugin_data.first(conn, ITEMS, {"id": 99}) is None
    # Composite keys come back as a tuple; an ignored conflict inserts nothing and answers None.
    assert plugin_data.insert(conn, PAIRS, {"a": "x", "b": 1}) == ("x", 1)
    assert plugin_data.insert(conn, PAIRS, {"a": "x", "b": 1, "v": "again"}, on_conflict="ignore") is None
    assert plugin_data.select(conn, PAIRS) == [{"a": "x", "b": 1, "v": None}]
    defaults = Table("items_defaults", [ID, Column("state", "text", nullable=False, default="new")])
    tables.migrate(conn, [defaults])
    assert plugin_data.insert(conn, defaults, {}) == 1
    assert plugin_data.select(conn, defaults) == [{"id": 1, "state": "new"}]
    assert plugin_data.delete(conn, ITEMS, {"id": [1, 2]}) == 2
    assert plugin_data.delete(conn, PAIRS, {}) == 1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: plugin_data.select(c, ITEMS, {"name = name OR 1": 1}), r"no column 'name = name OR 1'"),
        (lambda c: plugin_data.select(c, ITEMS, columns=["name", "secret"]), r"no column 'secret'"),
        (lambda c: plugin_data.select(c, ITEMS, columns="name"), r"a list of names"),
        (lambda c: plugin_data.select(c, ITEMS, order_by="name; DROP TABLE units"), r"no column"),
        (lambda c: plugin_data.select(c, ITEMS, order_by="-nope"), r"no column 'nope'"),
        (lambda c: plugin_data.select(c, ITEMS, limit=-1), r"limit"),
        (lambda c: plugin_data.insert(c, ITEMS, {"name": "a", "colour": "red"}), r"no column 'colour'"),
        (lambda c: plugin_data.insert(c, ITEMS, {"size": 1.0}), r"items_things.name: a value is required"),
        (lambda c: plugin_data.insert(c, ITEMS, {"name": 5}), r"items_things.name: must be text, not int"),
        (lambda c: plugin_data.insert(c, ITEMS, {"name": "a", "flag": 1}), r"items_things.flag: must be boolean"),
        (lambda c: plugin_data.insert(c, ITEMS, {"name": "a", "size": True}), r"items_things.size: must be real"),
        (lambda c: plugin_data.insert(c, ITEMS, {"name": "a", "meta": object()}), r"items_things.meta: is not JSON"),
        (lambda c: plugin_data.insert(c, PAIRS, {"a": "x"}), r"items_pairs.b: a value is required"),
        (lambda c: plugin_data.insert(c, ITEMS, {"name": "a"}, on_conflict="replace"), r"on_conflict"),
        (lambda c: plugin_data.insert(c, PAIRS, {}), r"items_pairs.a: a value is required"),
        (lambda c: plugin_data.update(c, ITEMS, None, {"name": "b"}), r"where is required"),
        (lambda c: plugin_data.update(c, ITEMS, {"id": 1}, {}), r"names no column to set"),
        (lambda c: plugin_data.update(c, ITEMS, {"id": 1}, {"rowid": 1}), r"no column 'rowid'"),
        (lambda c: plugin_data.delete(c, ITEMS, None), r"where is required"),
        (lambda c: plugin_data.count(c, "units"), r"not a table spec"),
    ],
)
def test_identifiers_come_from_the_spec_and_values_fit_their_columns(conn, call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(conn)
    assert plugin_data.count(conn, ITEMS) == 0  # refused before any SQL ran


# -- the webhooks plugin's table, as older databases have it ---------------------------------------------------

OLD_WEBHOOKS = """CREATE TABLE webhooks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    events TEXT NOT NULL DEFAULT '["*"]',
    created_by TEXT, created_at TEXT NOT NULL{disabled_at}
)"""


@pytest.mark.parametrize("shape", ["as the old migration made it", "older, without disabled_at"])
def test_a_database_with_the_old_webhooks_table_keeps_working(tmp_path: Path, shape: str) -> None:
    org = make_org(tmp_path / "f.db")
    conn = sqlite3.connect(org.db)
    with conn:
        conn.execute("DROP TABLE webhooks")
        conn.execute(OLD_WEBHOOKS.format(disabled_at=",\n    disabled_at TEXT" if "old migration" in shape else ""))
        conn.execute(
            "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES (?, ?, ?)",
            ("feedback_webhooks", "m001_webhooks", "2025-01-01 00:00:00"),
        )
        conn.execute(
            "INSERT INTO webhooks (url, secret, events, created_by, created_at) VALUES (?, ?, ?, ?, ?)",
            ("https://example.org/old", "s1", '["action.opened"]', "root", "2025-01-01T00:00:00Z"),
        )
        conn.execute("INSERT INTO webhooks (url, secret, created_at) VALUES ('https://example.org/all', 's2', 'x')")
    conn.close()

    admin = auth_header(org.tokens["admin"])
    with TestClient(create_app(org, webhook_allow_private=True)) as client:
        listed = client.get("/api/v1/webhooks", headers=admin).json()
        assert [(h["id"], h["url"], h["events"], h["active"]) for h in listed] == [
            (1, "https://example.org/old", ["action.opened"], True),
            (2, "https://example.org/all", ["*"], True),
        ]
        gone = client.delete("/api/v1/webhooks/1", headers=admin)
        assert gone.status_code == 200 and gone.json()["active"] is False
        made = client.post(
            "/api/v1/webhooks",
            json={"url": "http://127.0.0.1:9/h", "secret": "s3", "events": ["kiosk.silent"]},
            headers=admin,
        )
        assert made.status_code == 201 and made.json()["id"] == 3
        assert client.get("/api/v1/webhooks/1/deliveries", headers=admin).json() == []
    kept = rows(org, "SELECT id, secret, events, disabled_at IS NOT NULL AS disabled FROM webhooks ORDER BY id")
    assert kept == [
        {"id": 1, "secret": "s1", "events": '["action.opened"]', "disabled": 1},
        {"id": 2, "secret": "s2", "events": '["*"]', "disabled": 0},
        {"id": 3, "secret": "s3", "events": '["kiosk.silent"]', "disabled": 0},
    ]


# -- unique(): a refused row leaves the transaction usable -------------------------------------------------------


def test_a_refused_insert_under_unique_leaves_the_transaction_usable(tmp_path: Path) -> None:
    org = make_org(tmp_path / "f.db")
    conn = connect_writer(str(org.db))
    conn.execute("BEGIN IMMEDIATE")
    users.insert(conn, "an", "viewer", None, "2025-01-01T00:00:00Z")
    with pytest.raises(Conflict) as refused:
        users.insert(conn, "root", "viewer", None, "2025-01-01T00:00:00Z")  # root holds the admin token
    assert refused.value.field == "name" and refused.value.message.startswith("name: ")
    # The whole guarded block is undone, not only the statement the key refused.
    with pytest.raises(Conflict), unique(conn, "name: taken", "name"):
        users.insert(conn, "binh", "viewer", None, "2025-01-01T00:00:00Z")
        users.insert(conn, "an", "viewer", None, "2025-01-01T00:00:00Z")
    users.insert(conn, "chi", "viewer", None, "2025-01-01T00:00:00Z")  # the transaction goes on
    conn.execute("COMMIT")
    conn.close()
    assert [
        r["name"] for r in rows(org, "SELECT name FROM users WHERE name IN ('an', 'binh', 'chi') ORDER BY name")
    ] == [
        "an",
        "chi",
    ]


def test_unique_leaves_the_commit_to_a_connection_that_opens_transactions_itself(tmp_path: Path) -> None:
    # The CLI's connections open a transaction at the first write and commit when the command is done:
    # a guarded insert must not commit on its own, so a command that fails later leaves nothing behind.
    org = make_org(tmp_path / "f.db")
    db = open_utils(str(org.db))
    assert not db.conn.in_transaction
    users.insert(db.conn, "dung", "viewer", None, "2025-01-01T00:00:00Z")
    assert db.conn.in_transaction
    db.conn.rollback()
    db.close()
    assert rows(org, "SELECT name FROM users WHERE name = 'dung'") == []
