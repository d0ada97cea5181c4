"""The layers hold: import-linter's contracts in pyproject.toml, and no plugin loaded on import.

The contracts: the CLI and the web app above the core and the core above the store (every module of
`feedback` placed in one layer), the built-in plugins importing the public API only, the core never
importing them, and no import cycle among the modules of a package.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, source_env

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
CONTRACTS = (
    "Layers: the CLI and the web app above the core, the store below it",
    "The built-in plugins use the public API only",
    "The core loads the built-in plugins by name only, never imports them",
    "No import cycle among the modules of a package",
)


def test_the_import_contracts_are_kept() -> None:
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=ROOT,
        env=source_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    for name in CONTRACTS:
        assert f"{name} KEPT" in report, report
    assert f"{len(CONTRACTS)} kept, 0 broken" in report, report


def test_importing_the_app_loads_no_plugin() -> None:
    """The plugin manager is built per app from its settings, never when a module is imported."""
    probe = (
        "import json, sys\n"
        "import feedback.cli, feedback.plugins, feedback.web.app\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('feedback_plugins', 'plugins_dir')))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=source_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
