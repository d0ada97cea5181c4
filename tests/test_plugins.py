"""The plugin system: every hook documented and exercised through a real CLI and server."""

from __future__ import annotations

import inspect
import json
import re
import sqlite3
import textwrap
from pathlib import Path

import httpx
import pytest

from feedback import hookspecs, plugins
from tests.conftest import make_org, run_cli

ROOT = Path(__file__).resolve().parent.parent
HOOKS = sorted(name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "feedback_spec"))


def write_plugin(folder: Path, name: str, source: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return folder


@pytest.fixture
def registered():
    """Register plugin folders in this test process for one test, and unregister them after."""
    names: list[str] = []

    def register(folder: Path) -> None:
        before = {name for name, _ in plugins.pm.list_name_plugin()}
        plugins.load_plugins_dir(plugins.pm, str(folder))
        names.extend(n for n, _ in plugins.pm.list_name_plugin() if n not in before)

    yield register
    for name in names:
        plugins.pm.unregister(name=name)


def test_every_hook_is_documented_with_its_signature() -> None:
    docs = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    assert HOOKS, "no hookspecs found"
    for name in HOOKS:
        assert f"### {name}\n" in docs, f"{name} is not documented"
        params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert f"`{name}({params})" in docs, f"{name}'s signature differs in docs/plugins.md"


def test_every_hook_has_a_test() -> None:
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").glob("test_*.py"))
    for name in HOOKS:
        assert re.search(rf"def test_hook_{name}\b", sources), f"no test_hook_{name}"


def test_feedback_plugins_lists_builtins_and_their_hooks() -> None:
    result = run_cli("plugins")
    assert result.returncode == 0, result.stderr
    listed = {p["name"]: p for p in json.loads(result.stdout)}
    assert "score_response" in listed["feedback_plugins.csat"]["hooks"]
    assert "register_survey_templates" in listed["feedback_plugins.templates"]["hooks"]
    assert listed["feedback_plugins.csat"]["builtin"] is True


def test_blocked_plugin_is_not_loaded() -> None:
    result = run_cli("plugins", env={"FEEDBACK_BLOCK_PLUGINS": "feedback_plugins.criteria_mean"})
    names = [p["name"] for p in json.loads(result.stdout)]
    assert "feedback_plugins.criteria_mean" not in names
    assert "feedback_plugins.csat" in names


def test_misspelt_hook_stops_start_up(tmp_path: Path) -> None:
    folder = write_plugin(
        tmp_path / "p",
        "typo",
        """
        from feedback import hookimpl

        @hookimpl
        def scor_response(survey):
            return None
    """,
    )
    result = run_cli("plugins", env={"FEEDBACK_PLUGINS_DIR": str(folder)})
    assert result.returncode != 0
    assert "scor_response" in result.stderr


def test_hook_register_migrations(tmp_path: Path) -> None:
    folder = write_plugin(
        tmp_path / "p",
        "notes",
        """
        import sqlite_utils
        from feedback import hookimpl

        migrations = sqlite_utils.Migrations("notes_plugin")

        @migrations()
        def create_notes(db):
            db.table("plugin_notes").create({"id": int, "text": str}, pk="id", if_not_exists=True)

        @hookimpl
        def register_migrations():
            return migrations
    """,
    )
    db = tmp_path / "f.db"
    env = {"FEEDBACK_PLUGINS_DIR": str(folder)}
    assert run_cli("init", "--db", str(db), env=env).returncode == 0
    assert run_cli("init", "--db", str(db), env=env).returncode == 0  # safe to re-run
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'plugin_notes'").fetchone()[0] == 1
    sets = {row[0] for row in conn.execute("SELECT DISTINCT migration_set FROM _sqlite_migrations")}
    assert sets == {"feedback", "feedback_webhooks", "notes_plugin"}  # feedback_webhooks: a built-in plugin


NPS_PLUGIN = """
    from feedback import hookimpl
    from feedback.models import QuestionBase, RatingQuestion, SurveyDefinition

    class NetPromoter(QuestionBase, tag="nps"):
        def validate_answer(self, value):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 10:
                raise ValueError("must be a whole number from 0 to 10")
            return value

    @hookimpl
    def register_question_types():
        return [NetPromoter]

    @hookimpl
    def register_survey_templates():
        text = {"vi": "Bạn có giới thiệu?", "ru": "Порекомендуете?", "zh": "您会推荐吗？", "en": "Recommend us?"}
        return [SurveyDefinition(slug="nps_exit", title=text, questions=[
            RatingQuestion(key="overall", text=text, primary=True, required=True),
            NetPromoter(key="nps", text=text),
        ])]
"""


def test_hook_register_question_types(tmp_path: Path, registered, start_server) -> None:
    folder = write_plugin(tmp_path / "p", "nps", NPS_PLUGIN)
    registered(folder)
    from feedback import organisation, surveys
    from feedback.db import open_utils

    org = make_org(tmp_path / "f.db")
    db = open_utils(str(org.db))
    db.conn.execute("BEGIN")
    surveys.publish_template(db.conn, "nps_exit")
    organisation.add_touchpoint(db.conn, "A", "NPS desk", "nps_exit", token="tp-nps")
    db.conn.execute("COMMIT")
    db.close()
    srv = start_server(org.db, feedback_plugins_dir=str(folder))
    survey = httpx.get(f"{srv.url}/api/v1/touchpoints/tp-nps/survey").json()
    assert [q["kind"] for q in survey["questions"]] == ["rating", "nps"]
    bad = httpx.post(f"{srv.url}/api/v1/responses", json={"touchpoint": "tp-nps", "answers": {"overall": 4, "nps": 11}})
    assert bad.status_code == 400 and bad.json()["field"] == "answers.nps"
    good = httpx.post(f"{srv.url}/api/v1/responses", json={"touchpoint": "tp-nps", "answers": {"overall": 4, "nps": 9}})
    assert good.status_code == 201


def test_hook_register_survey_templates(tmp_path: Path, registered) -> None:
    from feedback.surveys import survey_templates

    assert {"csat", "haochaping", "vash_kontrol", "vn_one_stop", "a11_v2", "govuk"} <= set(survey_templates())
    registered(write_plugin(tmp_path / "p", "nps", NPS_PLUGIN))
    assert "nps_exit" in survey_templates()


def test_hook_register_routes(tmp_path: Path, org, start_server) -> None:
    folder = write_plugin(
        tmp_path / "p",
        "hello",
        """
        from litestar import get
        from feedback import hookimpl

        @get("/hello")
        async def hello() -> dict:
            return {"hello": "world"}

        @hookimpl
        def register_routes(settings):
            return [hello]
    """,
    )
    srv = start_server(org.db, feedback_plugins_dir=str(folder))
    assert httpx.get(f"{srv.url}/hello").json() == {"hello": "world"}


def test_hook_register_commands(tmp_path: Path) -> None:
    folder = write_plugin(
        tmp_path / "p",
        "hello_cli",
        """
        import click
        from feedback import hookimpl

        @hookimpl
        def register_commands(cli):
            @cli.command()
            @click.argument("name")
            def greet(name):
                click.echo(f"hello {name}")
    """,
    )
    result = run_cli("greet", "Lan", env={"FEEDBACK_PLUGINS_DIR": str(folder)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello Lan"


def test_hook_startup(tmp_path: Path, org, start_server) -> None:
    marker = tmp_path / "started.txt"
    folder = write_plugin(
        tmp_path / "p",
        "boot",
        f"""
        from feedback import hookimpl

        @hookimpl
        def startup(store, settings):
            async def count():
                rows = await store.query("SELECT count(*) AS n FROM units")
                open({str(marker)!r}, "w").write(f"{{settings.min_n}} {{rows[0]['n']}}")
            return count()
    """,
    )
    start_server(org.db, feedback_plugins_dir=str(folder), feedback_min_n="12")
    assert marker.read_text() == "12 4"


def test_hook_score_response(tmp_path: Path, org, start_server) -> None:
    folder = write_plugin(
        tmp_path / "p",
        "lenient",
        """
        from feedback import hookimpl
        from feedback.models import Score

        @hookimpl
        def score_response(survey, answers):
            if survey.slug != "csat":
                return None
            return Score(level=3, satisfied=True, dissatisfied=False, score=42.0, indicators={"overall": 42.0})
    """,
    )
    srv = start_server(org.db, feedback_plugins_dir=str(folder))
    rid = httpx.post(f"{srv.url}/api/v1/responses", json={"touchpoint": "tp-a", "answers": {"overall": 1}}).json()["id"]
    other = httpx.post(f"{srv.url}/api/v1/responses", json={"touchpoint": "tp-a1a", "answers": {"overall": 1}}).json()
    conn = sqlite3.connect(org.db)
    assert conn.execute("SELECT level, satisfied, score FROM responses WHERE id = ?", (rid,)).fetchone() == (3, 1, 42.0)
    # Another survey falls through to the built-in CSAT scorer.
    assert conn.execute("SELECT level, dissatisfied FROM responses WHERE id = ?", (other["id"],)).fetchone() == (1, 1)


def test_hook_track_event(tmp_path: Path, org, start_server) -> None:
    log = tmp_path / "events.jsonl"
    folder = write_plugin(
        tmp_path / "p",
        "recorder",
        f"""
        import json
        from feedback import hookimpl

        @hookimpl
        def track_event(event):
            with open({str(log)!r}, "a") as f:
                f.write(json.dumps({{"type": event.type, "id": event.id, "data": event.data}}) + "\\n")
    """,
    )
    srv = start_server(org.db, feedback_plugins_dir=str(folder))
    body = {"id": "3d9c3f0e-8b7a-4a56-9a4e-0b3e1c2d4f5a", "touchpoint": "tp-a1", "answers": {"overall": 2}}
    assert httpx.post(f"{srv.url}/api/v1/responses", json=body).status_code == 201
    assert httpx.post(f"{srv.url}/api/v1/responses", json=body).status_code == 200
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(events) == 1  # the replay fires nothing
    assert events[0]["type"] == "response.stored"
    assert events[0]["id"] == f"response.stored:{body['id']}"
    assert events[0]["data"]["unit"] == "A1" and events[0]["data"]["dissatisfied"] == 1


def test_failing_plugin_never_loses_a_response(tmp_path: Path, org, start_server) -> None:
    folder = write_plugin(
        tmp_path / "p",
        "broken",
        """
        from feedback import hookimpl

        @hookimpl
        def score_response(survey):
            raise RuntimeError("scorer broke")

        @hookimpl
        def track_event(event):
            raise RuntimeError("bus broke")
    """,
    )
    srv = start_server(org.db, feedback_plugins_dir=str(folder))
    reply = httpx.post(f"{srv.url}/api/v1/responses", json={"touchpoint": "tp-a", "answers": {"overall": 5}})
    assert reply.status_code == 201
    conn = sqlite3.connect(org.db)
    row = conn.execute("SELECT level, flags FROM responses WHERE id = ?", (reply.json()["id"],)).fetchone()
    # The broken scorer is skipped, the built-in one still scores, and nothing is lost.
    assert row == (5, "[]")
    failures = httpx.get(f"{srv.url}/healthz").json()["plugin_failures"]
    assert failures["broken.score_response"]["count"] == 1
    assert failures["broken.track_event"]["count"] == 1
    assert "bus broke" in failures["broken.track_event"]["last"]
