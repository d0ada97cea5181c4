"""The code under test is the working tree: the test process and every server and command it starts
import `feedback`, the built-in plugins and the kiosk app from this checkout, never from a copy
installed earlier."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

import feedback
import feedback_kiosk
import feedback_plugins
from tests.conftest import ROOT, Org, run_cli

# A site plugin that reports where the server process found each package.
WHERE_PLUGIN = """
import sys

from litestar import get

from feedback import hookimpl


@get("/site/where", include_in_schema=False)
async def where() -> dict:
    return {name: sys.modules[name].__file__ for name in ("feedback", "feedback_plugins", "feedback_kiosk",
                                                           "feedback.web.app")}


@hookimpl
def register_routes(settings):
    return [where]
"""


def inside_checkout(path: str) -> bool:
    return Path(path).resolve().is_relative_to(ROOT)


def test_the_test_process_imports_the_working_tree() -> None:
    for module in (feedback, feedback_plugins, feedback_kiosk):
        assert inside_checkout(module.__file__), module.__file__


@pytest.mark.parametrize("fresh", [False, True], ids=["forked", "fresh-interpreter"])
def test_a_server_process_under_test_runs_the_working_tree(
    org: Org, start_process_server, tmp_path: Path, fresh: bool
) -> None:
    """In-process servers run what this process imported (above); a `feedback serve` process must too,
    whether forked from the command line's pre-imported process (the default) or started afresh."""
    folder = tmp_path / "site-plugins"
    folder.mkdir()
    (folder / "site_where.py").write_text(WHERE_PLUGIN, encoding="utf-8")
    server = start_process_server(org.db, fresh=fresh, feedback_plugins_dir=str(folder))
    assert isinstance(server.process, subprocess.Popen) == fresh

    found = httpx.get(f"{server.url}/site/where", timeout=10).json()

    assert set(found) == {"feedback", "feedback_plugins", "feedback_kiosk", "feedback.web.app"}
    assert all(inside_checkout(path) for path in found.values()), found
    assert Path(found["feedback_plugins"]).parent == ROOT / "plugins" / "feedback_plugins"


def test_a_command_under_test_runs_the_working_tree() -> None:
    listed = {plugin["name"] for plugin in json.loads(run_cli("plugins").stdout)}
    assert "feedback_plugins.csat" in listed
    result = run_cli("--version")
    assert result.returncode == 0 and feedback.__version__ in result.stdout
