"""Errors, not tracebacks: every command given a bad path, a database named nowhere, an unknown job or an
unusable setting prints one clear line and exits 1 (the environment) or 2 (the command line)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import FEEDBACK, free_port, make_org, run_cli, source_env


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory):
    return make_org(tmp_path_factory.mktemp("cli_errors") / "feedback.db")


def one_error(result: subprocess.CompletedProcess, code: int, *words: str) -> str:
    """The one `Error:` line of a failed command, which must name `words`; never a traceback."""
    assert result.returncode == code, (result.returncode, result.stdout[-500:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0], (word, errors[0])
    return errors[0]


def without_database_settings() -> dict[str, str]:
    return {k: v for k, v in source_env().items() if k not in ("FEEDBACK_DB", "FEEDBACK_CONFIG")}


@pytest.mark.parametrize(
    "args",
    [
        ("init", "--db", "{missing}/feedback.db"),
        ("demo", "--db", "{missing}/demo.db", "--days", "1"),
        ("serve", "--db", "{missing}/feedback.db", "--port", "{port}"),
    ],
    ids=["init", "demo", "serve"],
)
def test_a_database_in_a_missing_folder(tmp_path: Path, args: tuple[str, ...]) -> None:
    missing = tmp_path / "no" / "such"
    filled = [arg.format(missing=missing, port=free_port()) for arg in args]
    one_error(run_cli(*filled), 1, "--db", str(missing), "does not exist")
    assert not (tmp_path / "no").exists()


def test_qr_into_a_missing_folder(org, tmp_path: Path) -> None:
    out = tmp_path / "posters" / "a1.pdf"
    one_error(run_cli("qr", "--db", str(org.db), "--unit", "A1", "--out", str(out)), 1, "--out", str(out.parent))


def test_serve_without_a_database_refuses_rather_than_make_one_here(tmp_path: Path) -> None:
    done = subprocess.run(
        [*FEEDBACK, "serve", "--port", str(free_port())],
        cwd=tmp_path,
        env=without_database_settings(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    one_error(done, 2, "--db", "FEEDBACK_DB")
    assert list(tmp_path.iterdir()) == []  # no ./feedback.db, no secret beside it


def test_serve_with_feedback_db_in_a_missing_folder(tmp_path: Path) -> None:
    env = {**without_database_settings(), "FEEDBACK_DB": str(tmp_path / "gone" / "f.db")}
    done = subprocess.run(
        [*FEEDBACK, "serve", "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=60
    )
    one_error(done, 1, "FEEDBACK_DB", "does not exist")


def test_tick_with_an_unknown_job_lists_the_jobs(org) -> None:
    line = one_error(run_cli("tick", "--db", str(org.db), "--job", "objectives.evalute"), 2, "objectives.evalute")
    for job in ("objectives.evaluate", "actions.deadlines", "actions.effectiveness", "outbox.prune"):
        assert job in line


@pytest.mark.parametrize(
    "args",
    [
        ("token", "create", "--db", "{db}", "--user", "hoa"),
        ("kiosk", "enroll", "--db", "{db}", "--touchpoint", "tp-a1a"),
        ("user", "add", "--db", "{db}", "--user", "hoa", "--role", "admin"),
        ("tick", "--db", "{db}"),
        ("rebuild-rollups", "--db", "{db}"),
    ],
    ids=["token", "kiosk", "user", "tick", "rebuild"],
)
def test_commands_on_a_database_that_is_not_there_make_none(tmp_path: Path, args: tuple[str, ...]) -> None:
    typo = tmp_path / "feedbak.db"
    one_error(run_cli(*(arg.format(db=typo) for arg in args)), 2, "--db", "does not exist")
    assert not typo.exists()


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n")
    one_error(run_cli("init", "--db", str(notes)), 1, str(notes), "not a database")
    one_error(run_cli("token", "create", "--db", str(notes), "--user", "hoa"), 1, str(notes))


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"FEEDBACK_MIN_N": "thirty"}, ("FEEDBACK_MIN_N",)),
        ({"FEEDBACK_CONFIG": "/nonexistent/feedback.toml"}, ("FEEDBACK_CONFIG", "/nonexistent/feedback.toml")),
        ({"FEEDBACK_TRUSTED_PROXIES": "nginx"}, ("FEEDBACK_TRUSTED_PROXIES", "nginx")),
        ({"FEEDBACK_LOG_LEVEL": "loud"}, ("FEEDBACK_LOG_LEVEL", "loud")),
    ],
    ids=["number", "config", "proxies", "log-level"],
)
def test_a_setting_that_cannot_be_used(org, env: dict[str, str], words: tuple[str, ...]) -> None:
    one_error(run_cli("init", "--db", str(org.db), env=env), 2, *words)


def test_serve_refuses_a_port_out_of_range(org) -> None:
    result = run_cli("serve", "--db", str(org.db), "--port", "70000")
    assert result.returncode == 2 and "Traceback" not in result.stderr and "--port" in result.stderr
