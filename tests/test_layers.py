"""The store layer holds: no SQL and no `sqlite3` outside `feedback/store/` in the web app, the CLI or
the plugins, and the CLI does not reach into the manager web app.

The check reads the source: a SQL statement in a string, a `.execute(` call or an `import sqlite3` in
one of those files fails it, naming the file and line. Files still being moved sit in ALLOWED with
the reason; the test fails too once an allowed file is clean, so the list only ever shrinks.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = [ROOT / "feedback" / "web", ROOT / "feedback" / "cli.py", ROOT / "plugins"]

SQL = re.compile(
    r"\b(SELECT [a-z*(]|INSERT (OR [A-Z]+ )?INTO|DELETE FROM|UPDATE [a-z_]+ SET|REPLACE INTO"
    r"|CREATE (TABLE|INDEX|UNIQUE INDEX|TRIGGER|VIRTUAL TABLE)|ALTER TABLE|DROP TABLE|PRAGMA [a-z_]+"
    r"|SAVEPOINT [a-z_]+|ROLLBACK TO|BEGIN IMMEDIATE)"
)
EXECUTE = re.compile(r"\.(execute|executemany|executescript)\(")

# Files whose SQL is still being moved, each with the reason; remove a file once it is clean (the
# kiosk sync handler in feedback/web/kiosk_api.py was the last: it now goes through feedback/ingest.py).
ALLOWED: dict[str, str] = {}


def scanned_files() -> list[Path]:
    files: list[Path] = []
    for place in SCANNED:
        files.extend([place] if place.is_file() else sorted(place.rglob("*.py")))
    return files


def problems_in(path: Path) -> list[str]:
    """Every SQL string, `.execute(` call and `sqlite3` import of a file, as "line: what"."""
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if SQL.search(line):
            found.append(f"{number}: SQL {SQL.search(line).group(0)!r}")
        elif EXECUTE.search(line):
            found.append(f"{number}: a .execute( call")
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        if any(name == "sqlite3" or name.startswith("sqlite3.") for name in names):
            found.append(f"{node.lineno}: import sqlite3 (annotate with feedback.store.Connection)")
    return found


def test_no_sql_outside_the_store() -> None:
    files = scanned_files()
    assert any(f.name == "kiosk_api.py" for f in files) and any(f.name == "cli.py" for f in files)
    offenders = {}
    for path in files:
        relative = path.relative_to(ROOT).as_posix()
        if relative not in ALLOWED and (found := problems_in(path)):
            offenders[relative] = found
    assert not offenders, (
        "SQL belongs in a module of feedback/store/ (one per aggregate); call a store function instead:\n"
        + "\n".join(f"{name}:{line}" for name, lines in offenders.items() for line in lines)
    )


def test_the_allow_list_only_shrinks() -> None:
    clean = [name for name in ALLOWED if not (ROOT / name).exists() or not problems_in(ROOT / name)]
    assert not clean, f"no SQL left in {clean}: remove them from ALLOWED in tests/test_layers.py"


def test_the_scan_sees_sql_in_each_form(tmp_path: Path) -> None:
    # The scanner itself: each form that must stay out is found (so a clean result means something).
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import sqlite3\n"
        'A = "SELECT id FROM responses"\n'
        'B = f"INSERT OR IGNORE INTO t (a) VALUES (?)"\n'
        "conn.execute(query)\n"
        'C = "UPDATE users SET lang = ?"\n'
        'D = """CREATE TABLE IF NOT EXISTS x (a)"""\n'
        "from sqlite3 import Row\n"
        'E = "Select a unit"  # ordinary text passes\n',
        encoding="utf-8",
    )
    found = problems_in(sample)
    assert [line.split(":")[0] for line in found] == ["2", "3", "4", "5", "6", "1", "7"], found


def test_the_cli_does_not_import_the_manager_app() -> None:
    tree = ast.parse((ROOT / "feedback" / "cli.py").read_text(encoding="utf-8"))
    imported = [
        node.module or ""
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("feedback.web")
    ]
    imported += [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name.startswith("feedback.web")
    ]
    assert imported == [], f"cli.py imports the web app: {imported}"
