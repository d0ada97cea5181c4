"""What every command and server process pays before it does anything: no password is hashed and no
spreadsheet library is loaded on import (each is loaded when first needed)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import FEEDBACK, source_env

PROBE = """
import json, sys
import argon2

hashed = []
original = argon2.PasswordHasher.hash
argon2.PasswordHasher.hash = lambda self, *args, **kwargs: hashed.append(1) or original(self, *args, **kwargs)
import feedback.auth, feedback.cli, feedback.exports, feedback.passwords
before = {"hashes": len(hashed), "openpyxl": "openpyxl" in sys.modules}
feedback.passwords.verify_password(None, "a wrong password")  # an unknown name: checked against the dummy
print(json.dumps({**before, "hashes_after_a_check": len(hashed)}))
"""


def test_importing_the_core_hashes_no_password_and_loads_no_spreadsheet_library() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env=source_env(), capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found == {"hashes": 0, "openpyxl": False, "hashes_after_a_check": 1}


def test_a_command_that_writes_no_workbook_never_loads_openpyxl_nor_the_web_framework() -> None:
    result = subprocess.run(
        [*FEEDBACK, "--help"],
        env=source_env({"PYTHONPROFILEIMPORTTIME": "1"}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    imported = {
        line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time")
    }
    assert "feedback.cli" in imported
    assert not {name for name in imported if name.split(".")[0] == "openpyxl"}
    # Plugins name their routes ("module:attribute"), so loading them imports no Litestar (0.3 s).
    assert not {name for name in imported if name.split(".")[0] == "litestar"}


def packages_loaded_by(modules: str, packages: set[str]) -> list[str]:
    """Which of `packages` (top-level names) a fresh interpreter has loaded once it imported `modules`."""
    probe = (
        f"import json, sys; import {modules};"
        f" print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(packages)!r}))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], env=source_env(), capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_web_app_loads_the_identity_provider_and_directory_libraries_only_when_used() -> None:
    assert packages_loaded_by("feedback.web.app", {"authlib", "joserfc", "ldap3"}) == []


def test_the_web_app_loads_the_pdf_library_with_its_first_pdf_only() -> None:
    """fpdf and fontTools cost ~0.45 s of CPU to import: a worker pays for them when it first draws a
    PDF (a poster, paper forms, the review pack), not when it starts."""
    pages = "feedback.web.app, feedback.web.manage.reports, feedback.web.manage.scan_pages"
    assert packages_loaded_by(pages, {"fpdf", "fontTools"}) == []
    assert packages_loaded_by("feedback.review_pack", {"fpdf", "fontTools"}) == [
        "fontTools",
        "fpdf",
    ]  # the probe sees them
