"""The app as Litestar 3 will take it: built with deprecation warnings as errors, and every role and unit
check a guard that knows how its route authenticates.

Litestar 2 still accepts inferred query and path parameters, inferred dependencies and a `data` without a
body marker, each with a LitestarDeprecationWarning at app creation; Litestar 3 refuses them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import msgspec

from feedback.settings import load_settings
from feedback.web.access import route_authenticator
from feedback.web.app import create_app
from tests.conftest import Org, Server, auth_header, source_env
from tests.shared_signatures import unshared_handler_signatures

# Builds the app and its OpenAPI document, as `feedback serve` and `/schema` do.
BUILD = (
    "from feedback.settings import load_settings\n"
    "from feedback.web.app import create_app\n"
    "app = create_app(load_settings())\n"
    "assert app.openapi_schema.paths\n"
)


def test_app_is_created_with_deprecation_warnings_as_errors(tmp_path: Path) -> None:
    env = source_env({"FEEDBACK_DB": str(tmp_path / "feedback.db"), "FEEDBACK_SECRET": "test-secret"})
    done = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", BUILD],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]


def test_every_guarded_route_has_a_principal_dependency(tmp_path: Path) -> None:
    """A guard finds the caller through the route's principal dependency: one without it would be a 500."""
    app = create_app(load_settings({"FEEDBACK_DB": str(tmp_path / "feedback.db"), "FEEDBACK_SECRET": "test-secret"}))
    guarded = [
        handler for route in app.routes for handler in getattr(route, "route_handlers", []) if handler.resolve_guards()
    ]
    assert len(guarded) > 40  # the API's and the manager pages' checks
    for handler in guarded:
        route_authenticator(handler)  # raises ImproperlyConfiguredException without one


def test_a_repeated_unit_parameter_is_checked_in_every_value(server: Server, shared_org: Org) -> None:
    """The unit guard checks each value, whichever one the handler takes (Litestar takes the last)."""
    token = auth_header(shared_org.tokens["manager_a1"])
    for path in ("/api/v1/satisfaction", "/api/v1/actions", "/api/v1/exports/rates.csv"):
        mine = httpx.get(f"{server.url}{path}", params=[("unit", "A1")], headers=token, timeout=10)
        assert mine.status_code == 200, (path, mine.text)
        for params in ([("unit", "B"), ("unit", "A1")], [("unit", "A1"), ("unit", "B")]):
            refused = httpx.get(f"{server.url}{path}", params=params, headers=token, timeout=10)
            assert refused.status_code == 403, (path, params, refused.text)
            body = refused.json()
            assert body["field"] == "unit" and body["detail"].startswith("unit: 'B'"), body


def test_the_web_modules_annotations_are_objects_not_strings() -> None:
    """Litestar reads every handler's annotations again for each app it builds; written as strings
    (`from __future__ import annotations`) each is compiled and evaluated anew, an eighth of a build.
    A forward reference is quoted where it is needed (metrics.py: a method returns its own class)."""
    web = Path(__file__).resolve().parent.parent / "feedback" / "web"
    postponed = sorted(
        str(module.relative_to(web))
        for module in web.rglob("*.py")
        if "from __future__ import annotations" in module.read_text(encoding="utf-8")
    )
    assert postponed == []


def _built_shape(app: Any) -> tuple[list, str]:
    """Each route handler's path, methods, name, parameters and parameter model (in a stable order: the
    order of a route's handlers varies from one build to the next), and the OpenAPI document."""
    handlers = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            model = handler.signature_model
            handlers.append(
                (
                    route.path,
                    sorted(getattr(handler, "http_methods", ())),
                    handler.handler_name,
                    {name: repr(field.annotation) for name, field in handler.parsed_fn_signature.parameters.items()},
                    model.__name__,
                    [(f.name, repr(f.type), repr(f.default)) for f in msgspec.structs.fields(model)],
                    sorted(model._dependency_name_set),
                )
            )
    return sorted(handlers, key=repr), json.dumps(app.openapi_schema.to_schema(), sort_keys=True)


def test_apps_built_with_shared_handler_signatures_are_built_as_litestar_builds_them(tmp_path: Path) -> None:
    """The test processes share handler signatures between the apps they build (tests/shared_signatures.py):
    an app built so has the same routes, parameters, parameter models and OpenAPI document as one built
    by Litestar alone."""
    settings = load_settings({"FEEDBACK_DB": str(tmp_path / "feedback.db"), "FEEDBACK_SECRET": "test-secret"})
    create_app(settings)  # so that the next one reuses what this one parsed
    shared = _built_shape(create_app(settings))
    with unshared_handler_signatures():
        alone = _built_shape(create_app(settings))
    assert len(shared[0]) > 300
    assert shared == alone
