"""Outgoing HTTPS clients share one TLS context (`feedback.tls.client_context`): a context made per
client reads the whole CA bundle, tens of milliseconds on the event loop for each delivery or sign-in."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, source_env

CLIENTS = {"Client", "AsyncClient"}


def client_calls(path: Path) -> list[tuple[int, set[str]]]:
    """(line, keyword names) of every httpx.Client(...) or httpx.AsyncClient(...) in a source file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in CLIENTS
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "httpx"
        ):
            found.append((node.lineno, {keyword.arg for keyword in node.keywords if keyword.arg}))
    return found


def test_every_outgoing_client_of_the_service_is_given_the_shared_context() -> None:
    sources = [*(ROOT / "feedback").rglob("*.py"), *(ROOT / "plugins" / "feedback_plugins").rglob("*.py")]
    calls = {(path.relative_to(ROOT), line): keywords for path in sources for line, keywords in client_calls(path)}
    assert len(calls) >= 5  # webhooks, SMS, the two OpenID calls, a child's reports and its join
    assert [place for place, keywords in calls.items() if "verify" not in keywords] == []


def test_the_context_is_made_once_and_checks_certificates() -> None:
    # A process of its own: the test process shares httpx's default contexts (tests/conftest.py).
    script = (
        "import ssl\n"
        "from feedback import tls\n"
        "one, two = tls.client_context(), tls.client_context()\n"
        "assert one is two\n"
        "assert one.verify_mode == ssl.CERT_REQUIRED and one.check_hostname\n"
        "assert one.cert_store_stats()['x509_ca'] > 0\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env=source_env(), capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
