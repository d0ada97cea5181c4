"""Backups that restore: `feedback backup` under a live server's writes, `feedback restore`, `--keep`
rotation, failed runs that leave nothing behind, and refusals (a database in use, a damaged backup,
bad arguments)."""

from __future__ import annotations

import json
import random
import re
import shlex
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import Org, auth_header, make_org, poll_until, run_cli
from tests.test_cli_errors import one_error

BACKUP = r"feedback-\d{8}T\d{6}Z\.db"


def backup(db: Path | str, out: Path, *extra: str) -> dict:
    done = run_cli("backup", "--db", str(db), "--out", str(out), *extra)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def sqlite_rows(path: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def pad(db: Path, megabytes: int) -> None:
    """Grow a database with a table of random bytes, so copying it takes many backup steps."""
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("CREATE TABLE padding (body BLOB)")
        conn.executemany("INSERT INTO padding VALUES (randomblob(65536))", [()] * (megabytes * 16))
    conn.close()


class Load:
    """One thread posting responses at about `rate` per second; remembers when each was acknowledged."""

    def __init__(self, url: str, rate: float = 200.0) -> None:
        self.url = url
        self.interval = 1.0 / rate
        self.acknowledged: dict[str, float] = {}  # id -> time.monotonic() of the 201
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._post, daemon=True)

    def _post(self) -> None:
        rng = random.Random(14)
        due = time.monotonic()
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self.stop.is_set():
                rid = str(uuid.uuid4())
                body = {
                    "id": rid,
                    "touchpoint": rng.choice(["tp-a", "tp-a1"]),
                    "answers": {"overall": rng.randint(1, 5)},
                }
                reply = client.post("/api/v1/responses", json=body)
                if reply.status_code == 201:
                    with self.lock:
                        self.acknowledged[rid] = time.monotonic()
                due += self.interval
                time.sleep(max(0.0, due - time.monotonic()))

    def acknowledged_before(self, moment: float) -> set[str]:
        with self.lock:
            return {rid for rid, at in self.acknowledged.items() if at <= moment}

    def count(self) -> int:
        with self.lock:
            return len(self.acknowledged)


def test_a_backup_under_200_writes_a_second_restores_every_acknowledged_response(
    org: Org, tmp_path: Path, start_process_server, start_server
) -> None:
    # Forty steps of the online backup, with the server committing between them: long enough, at 200 writes
    # a second, for many writes to land while the command runs (it starts in a fraction of a second).
    pad(org.db, 160)
    server = start_process_server(org.db)
    load = Load(server.url)
    load.thread.start()
    try:
        poll_until(lambda: load.count() >= 200, 30, "200 responses acknowledged")
        started = time.monotonic()
        before = load.acknowledged_before(started)
        summary = backup(org.db, tmp_path / "backups", "--keep", "3")
        finished = time.monotonic()
        poll_until(lambda: time.monotonic() - finished > 0.5, 5, "half a second of writes after the backup")
    finally:
        load.stop.set()
        load.thread.join(15)
    during = load.acknowledged_before(finished) - before
    first = min(load.acknowledged.values())
    rate = load.count() / (max(load.acknowledged.values()) - first)
    # Paced at 200 a second; a machine busy with other work holds it lower (51 a second was seen with the
    # whole suite running on a slow day). What the test needs is writes landing between the backup's
    # steps, so that is the floor, not a rate.
    assert len(during) > 20, f"the server was not writing while the backup ran ({rate:.0f} writes/s)"

    copy = Path(summary["file"])
    assert re.fullmatch(BACKUP, copy.name) and copy.parent == tmp_path / "backups"
    assert summary["bytes"] == copy.stat().st_size and summary["rows"]["responses"] >= len(before)
    assert summary["rows"]["padding"] == 160 * 16 and summary["attempts"] >= 1
    assert sorted(p.name for p in copy.parent.iterdir()) == [copy.name]  # nothing beside it

    restored = tmp_path / "restored" / "feedback.db"
    restored.parent.mkdir()
    done = run_cli("restore", "--from", str(copy), "--db", str(restored))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == summary["rows"]
    assert sqlite_rows(restored, "PRAGMA integrity_check") == [("ok",)]
    ids = {rid for (rid,) in sqlite_rows(restored, "SELECT id FROM responses")}
    assert before <= ids, f"{len(before - ids)} responses acknowledged before the backup are missing"
    assert len(ids) == summary["rows"]["responses"]
    # One snapshot: the rollups written with each response count exactly the responses in the copy.
    assert sqlite_rows(restored, "SELECT sum(n) FROM rollups") == [(len(ids),)]
    satisfied = sqlite_rows(restored, "SELECT count(*) FROM responses WHERE satisfied = 1")[0][0]

    serving = start_server(restored)
    reply = httpx.get(
        f"{serving.url}/api/v1/satisfaction", params={"unit": "A"}, headers=auth_header(org.tokens["admin"])
    )
    assert reply.status_code == 200, reply.text
    total = reply.json()["total"]
    assert (total["raw_n"], total["satisfied"]) == (len(ids), satisfied)


def test_keep_rotates_complete_backups_only_and_a_failed_run_takes_no_slot(org: Org, tmp_path: Path) -> None:
    out = tmp_path / "backups"
    out.mkdir()
    (out / "notes.txt").write_text("not a backup\n")
    stale = out / ".feedback-20200101T000000Z.db.partial"  # left by a run that was killed
    stale.write_bytes(b"half a copy")
    first = backup(org.db, out, "--keep", "2")
    assert not stale.exists()
    second = backup(org.db, out, "--keep", "2")
    assert first["file"] < second["file"] and second["kept"] == [Path(first["file"]).name, Path(second["file"]).name]
    before = sorted(p.name for p in out.iterdir())

    failed = run_cli("backup", "--db", str(org.db), "--out", str(out), "--keep", "2", "--deadline", "0.001")
    one_error(failed, 1, "--deadline", "0.001")
    assert sorted(p.name for p in out.iterdir()) == before  # no partial file, no slot taken, none deleted

    third = backup(org.db, out, "--keep", "2")
    assert third["deleted"] == [Path(first["file"]).name]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["notes.txt", Path(second["file"]).name, Path(third["file"]).name]
    )
    for summary in (second, third):
        assert sqlite_rows(Path(summary["file"]), "PRAGMA integrity_check") == [("ok",)]


def test_a_damaged_database_is_not_backed_up(tmp_path: Path) -> None:
    org = make_org(tmp_path / "feedback.db")
    damage(org.db)
    out = tmp_path / "backups"
    one_error(run_cli("backup", "--db", str(org.db), "--out", str(out)), 1, "--db", str(org.db))
    assert list(out.iterdir()) == []


def damage(path: Path) -> None:
    """Overwrite the pages after the first two with noise, as a failing disk might."""
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    noise = random.Random(7).randbytes(len(data) - 2 * page)
    data[2 * page :] = noise
    path.write_bytes(bytes(data))


def test_restore_refuses_a_database_in_use_a_damaged_backup_and_an_existing_file(
    org: Org, tmp_path: Path, start_process_server
) -> None:
    copy = Path(backup(org.db, tmp_path / "backups")["file"])
    srv = start_process_server(org.db)
    for level in (5, 4, 1):
        reply = httpx.post(f"{srv.url}/api/v1/responses", json={"touchpoint": "tp-a", "answers": {"overall": level}})
        assert reply.status_code == 201
    inode = org.db.stat().st_ino
    one_error(run_cli("restore", "--from", str(copy), "--db", str(org.db), "--force"), 1, "--db", "running")
    assert org.db.stat().st_ino == inode
    srv.kill()  # its last commits stay in the -wal beside the database
    assert Path(f"{org.db}-wal").stat().st_size > 0

    one_error(run_cli("restore", "--from", str(copy), "--db", str(org.db)), 1, "--db", "--force")
    assert org.db.stat().st_ino == inode

    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(copy.read_bytes())
    damage(damaged)
    target = tmp_path / "new" / "feedback.db"
    target.parent.mkdir()
    one_error(run_cli("restore", "--from", str(damaged), "--db", str(target)), 1, "--from", str(damaged))
    truncated = tmp_path / "truncated.db"
    truncated.write_bytes(copy.read_bytes()[: copy.stat().st_size // 3])
    one_error(run_cli("restore", "--from", str(truncated), "--db", str(target)), 1, "--from")
    assert list(target.parent.iterdir()) == []  # no database, no temporary file

    # With --force: the old database's -wal goes too, or its frames would be replayed into the copy.
    done = run_cli("restore", "--from", str(copy), "--db", str(org.db), "--force")
    assert done.returncode == 0, done.stderr
    assert not Path(f"{org.db}-wal").exists() and not Path(f"{org.db}-shm").exists()
    assert sqlite_rows(org.db, "PRAGMA integrity_check") == [("ok",)]
    assert sqlite_rows(org.db, "SELECT count(*) FROM responses") == [(0,)]  # as it was at the backup


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("backup", "--db", "{db}", "--out", "{out}", "--keep", "0"), 2, ("--keep",)),
        (("backup", "--db", "{db}", "--out", "{out}", "--deadline", "0"), 2, ("--deadline",)),
        (("backup", "--db", "{db}", "--out", "{out}", "--deadline", "soon"), 2, ("--deadline",)),
        (("backup", "--db", "{db}"), 2, ("--out",)),
        (("backup", "--db", "{missing}", "--out", "{out}"), 2, ("--db", "does not exist")),
        (("backup", "--db", "{db}", "--out", "{db}"), 2, ("--out",)),
        (("backup", "--db", "{db}", "--out", "{tmp}/no/such"), 1, ("--out", "does not exist")),
        (("restore", "--from", "{missing}", "--db", "{tmp}/new.db"), 2, ("--from",)),
        (("restore", "--from", "{db}", "--db", "{tmp}/new.db", "--clean"), 2, ("--clean",)),
        (("restore", "--from", "{db}"), 2, ("--db",)),
    ],
    ids=[
        "keep",
        "deadline",
        "deadline-text",
        "no-out",
        "no-db",
        "out-a-file",
        "out-parent",
        "from",
        "clean",
        "restore-no-db",
    ],
)
def test_bad_arguments_name_the_argument(org: Org, tmp_path: Path, args, code: int, words) -> None:
    filled = [a.format(db=org.db, out=tmp_path / "out", missing=tmp_path / "feedbak.db", tmp=tmp_path) for a in args]
    one_error(run_cli(*filled), code, *words)
    assert not (tmp_path / "out").exists() and not (tmp_path / "new.db").exists()


def test_the_shipped_timer_runs_a_backup_that_works(org: Org, tmp_path: Path) -> None:
    """deploy/feedback-backup.service's command, with its folder moved under tmp_path, makes a backup
    of the database FEEDBACK_DB names; its timer fires daily and catches up a missed day."""
    deploy = Path(__file__).resolve().parent.parent / "deploy"
    unit = (deploy / "feedback-backup.service").read_text()
    (command,) = [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("ExecStart=")]
    argv = shlex.split(command)
    assert argv[0] == "/opt/feedback/.venv/bin/feedback" and argv[1] == "backup"
    out = tmp_path / "var-backups-feedback"
    args = [str(out) if arg == "/var/backups/feedback" else arg for arg in argv[1:]]
    assert str(out) in args and "--keep" in args
    done = run_cli(*args, env={"FEEDBACK_DB": str(org.db)})
    assert done.returncode == 0, done.stderr
    assert [p.name for p in out.iterdir()] == [Path(json.loads(done.stdout)["file"]).name]
    timer = (deploy / "feedback-backup.timer").read_text().splitlines()
    for setting in ("OnCalendar=daily", "Persistent=true", "WantedBy=timers.target"):
        assert setting in timer, setting
    assert any(line.startswith("RandomizedDelaySec=") for line in timer)


@pytest.mark.backends("postgresql")
def test_postgresql_backup_and_restore(backend: str, org: Org, tmp_path: Path, start_server) -> None:
    """pg_dump into a checked .dump, restored with pg_restore into an empty database that then serves the
    same rates; refusals: a database with a server connected, a non-empty one, a damaged dump."""
    if backend != "postgresql":
        pytest.skip("runs with --backends including postgresql")
    from tests.conftest import new_postgres_database

    srv = start_server(org.db)
    for level in (5, 4, 2, 1, 5):
        reply = httpx.post(f"{srv.url}/api/v1/responses", json={"touchpoint": "tp-a1", "answers": {"overall": level}})
        assert reply.status_code == 201
    admin = auth_header(org.tokens["admin"])
    rate = httpx.get(f"{srv.url}/api/v1/satisfaction", params={"unit": "A"}, headers=admin).json()["total"]

    out = tmp_path / "backups"
    one_error(run_cli("backup", "--db", str(org.db), "--out", str(out), "--deadline", "0.001"), 1, "--deadline")
    assert list(out.iterdir()) == []
    summary = backup(org.db, out, "--keep", "2")
    dump = Path(summary["file"])
    assert re.fullmatch(r"feedback-\d{8}T\d{6}Z\.dump", dump.name) and summary["tables"] > 10
    assert [p.name for p in out.iterdir()] == [dump.name]

    one_error(run_cli("restore", "--from", str(dump), "--db", str(org.db)), 1, "--db", "sessions")
    srv.stop()
    one_error(run_cli("restore", "--from", str(dump), "--db", str(org.db)), 1, "--db", "not empty")
    damaged = tmp_path / "damaged.dump"
    damaged.write_bytes(dump.read_bytes()[:200])
    one_error(run_cli("restore", "--from", str(damaged), "--db", new_postgres_database()), 1, "--from")

    target = new_postgres_database()
    done = run_cli("restore", "--from", str(dump), "--db", target)
    assert done.returncode == 0, done.stderr
    restored = start_server(target)
    again = httpx.get(f"{restored.url}/api/v1/satisfaction", params={"unit": "A"}, headers=admin).json()["total"]
    assert again == rate and again["raw_n"] == 5
