"""The cost of the argon2id password hashes is a setting; a hash of another cost is re-made at sign-in."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from argon2 import extract_parameters

from feedback import passwords
from feedback.settings import SettingsError, load_settings
from tests.conftest import Org, rows, run_cli
from tests.manage_helpers import add_user, sign_in

PASSWORD = "correct horse battery"


def cost(password_hash: str) -> tuple[int, int, int]:
    made = extract_parameters(password_hash)
    return made.time_cost, made.memory_cost, made.parallelism


def test_the_setting_is_standard_unless_told_and_a_wrong_value_is_named(tmp_path) -> None:
    db = str(tmp_path / "x.db")
    assert load_settings({"FEEDBACK_DB": db}, keep_secret=False).password_hashing == "standard"
    told = load_settings({"FEEDBACK_DB": db, "FEEDBACK_PASSWORD_HASHING": " Minimum "}, keep_secret=False)
    assert told.password_hashing == "minimum"
    with pytest.raises(SettingsError, match=r"^FEEDBACK_PASSWORD_HASHING: 'fast' is not one of standard, minimum"):
        load_settings({"FEEDBACK_DB": db, "FEEDBACK_PASSWORD_HASHING": "fast"}, keep_secret=False)
    refused = run_cli("demo", "--db", db, "--days", "0", env={"FEEDBACK_PASSWORD_HASHING": "fast"})
    assert refused.returncode != 0 and "FEEDBACK_PASSWORD_HASHING: 'fast' is not one of" in refused.stderr
    assert not Path(db).exists()  # refused before anything was made


def test_each_cost_makes_argon2id_hashes_of_its_parameters_and_either_verifies() -> None:
    try:
        passwords.use_hashing("standard")
        standard = passwords.hash_password(PASSWORD)
        passwords.use_hashing("minimum")
        minimum = passwords.hash_password(PASSWORD)
    finally:
        passwords.use_hashing("minimum")  # the suite's cost (tests/conftest.py)
    assert standard.startswith("$argon2id$") and minimum.startswith("$argon2id$")
    assert cost(standard) == (3, 65536, 4) and cost(minimum) == (2, 19456, 1)
    assert passwords.verify_password(standard, PASSWORD) and passwords.verify_password(minimum, PASSWORD)
    assert not passwords.verify_password(standard, PASSWORD + "!")
    assert passwords.needs_rehash(standard) and not passwords.needs_rehash(minimum)


def test_a_sign_in_remakes_a_hash_of_another_cost_with_the_servers(org: Org, start_server) -> None:
    add_user(org.db, "hoa", PASSWORD, "manager", "A1")  # made at the suite's cost: minimum
    [before] = rows(org, "SELECT password_hash FROM users WHERE name = 'hoa'")
    assert cost(before["password_hash"]) == (2, 19456, 1)
    try:
        server = start_server(org.db, feedback_password_hashing="standard")
        with httpx.Client(base_url=server.url) as client:
            assert sign_in(client, server, "hoa", PASSWORD).status_code == 303
    finally:
        passwords.use_hashing("minimum")  # the suite's cost (tests/conftest.py)
    [after] = rows(org, "SELECT password_hash FROM users WHERE name = 'hoa'")
    assert cost(after["password_hash"]) == (3, 65536, 4)
    assert passwords.verify_password(after["password_hash"], PASSWORD)


@pytest.mark.parametrize(("profile", "expected"), [("standard", (3, 65536, 4)), ("minimum", (2, 19456, 1))])
def test_the_command_line_hashes_at_the_configured_cost(org: Org, profile: str, expected: tuple) -> None:
    added = run_cli(
        "user", "add", "--db", str(org.db), "--user", "tuan", "--password-stdin", "--role", "viewer", "--unit", "A",
        env={"FEEDBACK_PASSWORD_HASHING": profile},
        input=PASSWORD + "\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    [user] = rows(org, "SELECT password_hash FROM users WHERE name = 'tuan'")
    assert cost(user["password_hash"]) == expected
    assert passwords.verify_password(user["password_hash"], PASSWORD)
