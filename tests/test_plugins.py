"""The plugin system: every hook documented and exercised through a real CLI and server."""

from __future__ import annotations

import inspect
import json
import os
import re
import sqlite3
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from feedback import hookspecs
from feedback.plugins import build_plugin_manager
from feedback.settings import Settings
from tests.conftest import auth_header, make_org, run_cli, wait_for_dispatch

ROOT = Path(__file__).resolve().parent.parent
HOOKS = sorted(name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "feedback_spec"))


def write_plugin(folder: Path, name: str, source: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return folder


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
    assert sets == {"feedback", "notes_plugin"}  # the built-in plugins declare tables (register_tables)


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


def test_hook_register_question_types(tmp_path: Path, start_server) -> None:
    folder = write_plugin(tmp_path / "p", "nps", NPS_PLUGIN)
    from feedback import organisation, surveys
    from feedback.db import open_utils

    org = make_org(tmp_path / "f.db")
    db = open_utils(str(org.db))
    db.conn.execute("BEGIN")
    surveys.publish_template(db.conn, "nps_exit", build_plugin_manager(Settings(plugins_dir=str(folder))))
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


def test_hook_register_survey_templates(tmp_path: Path) -> None:
    from feedback.surveys import survey_templates

    builtin = survey_templates(build_plugin_manager(Settings()))
    assert {"csat", "haochaping", "vash_kontrol", "vn_one_stop", "a11_v2", "govuk"} <= set(builtin)
    assert "nps_exit" not in builtin
    folder = write_plugin(tmp_path / "p", "nps", NPS_PLUGIN)
    assert "nps_exit" in survey_templates(build_plugin_manager(Settings(plugins_dir=str(folder))))


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
    wait_for_dispatch(org)  # track_event runs after the commit, on the dispatcher
    events = [json.loads(line) for line in log.read_text().splitlines()]
    # The rating (level 2) opened a complaint action; the replay fires nothing.
    assert sorted(e["type"] for e in events) == ["action.opened", "response.stored"]
    events.sort(key=lambda e: e["type"] != "response.stored")
    assert events[1]["data"]["kind"] == "complaint"
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


# -- hook calls go through pluggy, each implementation isolated ---------------------------------------------


def prepared_with(tmp_path: Path, folder: Path, answers: dict | None = None, block: tuple[str, ...] = ()):
    """A real organisation's snapshot and a plugin manager with `folder`'s plugins (less `block`): the
    response `prepare` makes of a CSAT rating at tp-a, and the manager."""
    from feedback.catalog import load_snapshot
    from feedback.ingest import prepare
    from feedback.models import Submission

    pm = build_plugin_manager(Settings(plugins_dir=str(folder), block_plugins=list(block)))
    org = make_org(tmp_path / "f.db")
    conn = sqlite3.connect(org.db)
    conn.row_factory = sqlite3.Row
    snapshot = load_snapshot(conn, pm)
    conn.close()
    submission = Submission(touchpoint="tp-a", answers=answers or {"overall": 4})
    return prepare(submission, snapshot, plugins=pm), pm


def test_a_wrapper_implementation_is_honoured(tmp_path: Path) -> None:
    folder = write_plugin(
        tmp_path / "p",
        "tens",
        """
        import msgspec
        from feedback import hookimpl

        @hookimpl(wrapper=True)
        def score_response(survey):
            score = yield  # whatever the scorers inside decided
            if score is None or score.score is None:
                return score
            return msgspec.structs.replace(score, score=score.score // 10 * 10)
    """,
    )
    prepared, pm = prepared_with(tmp_path, folder)
    # The built-in CSAT scorer gives a 4 of 5 the score 75; the wrapper around it rounds it down.
    assert (prepared.row["level"], prepared.row["score"]) == (4, 70.0)
    assert pm.failures.snapshot() == {}


def test_firstresult_stops_at_the_first_answer(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    write_plugin(
        folder,
        "first",
        """
        from feedback import hookimpl
        from feedback.models import Score

        @hookimpl(tryfirst=True)
        def score_response(survey):
            return Score(level=2, satisfied=False, dissatisfied=True, score=25.0)
    """,
    )
    write_plugin(
        folder,
        "second",
        """
        from feedback import hookimpl
        from feedback.models import Score

        CALLS = []

        @hookimpl
        def score_response(survey):
            CALLS.append(survey.slug)
            return Score(level=5, satisfied=True, dissatisfied=False, score=100.0)
    """,
    )
    prepared, pm = prepared_with(tmp_path, folder)
    assert (prepared.row["level"], prepared.row["dissatisfied"]) == (2, 1)
    assert pm.get_plugin("second").CALLS == []  # never asked: the first answer won


BROKEN = """
    from feedback import hookimpl

    @hookimpl(tryfirst=True)
    def score_response(survey):
        raise RuntimeError("scorer broke")

    @hookimpl
    def evaluate_triggers(response):
        raise RuntimeError("rule broke")

    @hookimpl
    def track_event(event):
        async def later():
            raise RuntimeError("bus broke")

        return later()
"""


def test_a_raising_implementation_is_isolated_and_recorded_under_its_own_name(tmp_path: Path) -> None:
    import asyncio

    from feedback.models import Event
    from feedback.plugins import await_me_maybe

    folder = tmp_path / "p"
    write_plugin(folder, "broken", BROKEN)
    write_plugin(
        folder,
        "broken_wrapper",
        """
        from feedback import hookimpl

        @hookimpl(wrapper=True)
        def evaluate_triggers(response):
            yield
            raise RuntimeError("wrapper broke")
    """,
    )
    write_plugin(
        folder,
        "opener",
        """
        from feedback import hookimpl
        from feedback.models import ActionRequest

        @hookimpl
        def evaluate_triggers(response):
            if response is not None:
                return ActionRequest(kind="work_order", source_key=f"response:{response.id}", unit=response.unit,
                                     title="Look at it", response_id=response.id)
    """,
    )
    # The built-in event plugins want a real store; this test fires an event without one.
    prepared, pm = prepared_with(
        tmp_path, folder, {"overall": 5}, ("feedback_plugins.mail", "feedback_plugins.webhooks")
    )
    # firstresult: the broken scorer is skipped and the built-in one answers; nothing is flagged.
    assert (prepared.row["level"], prepared.flags) == (5, [])
    # A normal hook: the broken rule and the broken wrapper around it cost nothing; the other rule's
    # request comes through.
    assert [request.title for request in prepared.requests] == ["Look at it"]
    # What a plugin hands back to await is isolated too.
    event = Event(type="response.stored", id="response.stored:x", created_at="2026-01-01T00:00:00+00:00", data={})

    async def fire() -> None:
        for result in pm.hook.track_event(event=event, store=None):
            await await_me_maybe(result)

    asyncio.run(fire())
    failures = pm.failures.snapshot()
    assert set(failures) == {
        "broken.score_response",
        "broken.evaluate_triggers",
        "broken_wrapper.evaluate_triggers",
        "broken.track_event",
    }
    assert "scorer broke" in failures["broken.score_response"]["last"]
    assert "wrapper broke" in failures["broken_wrapper.evaluate_triggers"]["last"]
    assert "bus broke" in failures["broken.track_event"]["last"]


def test_two_apps_in_one_process_have_their_own_plugins(tmp_path: Path) -> None:
    from litestar.testing import TestClient

    from feedback.web.app import create_app

    folder = write_plugin(tmp_path / "p", "broken", BROKEN)
    write_plugin(
        folder,
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
    one, two = make_org(tmp_path / "one.db"), make_org(tmp_path / "two.db")
    common = {"secret": "s" * 32, "jobs": False, "rate_limit": 0}
    with (
        TestClient(create_app(Settings(db=str(one.db), plugins_dir=str(folder), **common))) as first,
        TestClient(
            create_app(Settings(db=str(two.db), block_plugins=["feedback_plugins.a11_export"], **common))
        ) as second,
    ):
        assert first.get("/hello").json() == {"hello": "world"}
        assert second.get("/hello").status_code == 404
        admin_one, admin_two = (auth_header(org.tokens["admin"]) for org in (one, two))
        assert first.get("/api/v1/exports/a11.csv?unit=A", headers=admin_one).status_code == 200
        assert second.get("/api/v1/exports/a11.csv?unit=A", headers=admin_two).status_code == 404
        for client in (first, second):
            reply = client.post("/api/v1/responses", json={"touchpoint": "tp-a", "answers": {"overall": 5}})
            assert reply.status_code == 201
        assert first.get("/healthz").json()["plugin_failures"]["broken.score_response"]["count"] == 1
        assert second.get("/healthz").json()["plugin_failures"] == {}
    stored = [sqlite3.connect(org.db).execute("SELECT level, flags FROM responses").fetchall() for org in (one, two)]
    assert stored == [[(5, "[]")], [(5, "[]")]]


def test_a_plugin_may_name_its_routes_so_that_only_an_app_imports_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`register_routes` may return "module:attribute": the app imports it when it is built, so loading
    the plugin (as every command does) imports neither the routes nor Litestar."""
    from litestar.testing import TestClient

    from feedback.web.app import create_app

    # The routes in a module of the plugin's package (here: on the path), the hooks in the plugin.
    monkeypatch.syspath_prepend(str(write_plugin(tmp_path / "package", "greeting_routes", GREETING_ROUTES)))
    monkeypatch.delitem(sys.modules, "greeting_routes", raising=False)
    folder = write_plugin(tmp_path / "p", "greeting", naming_routes('"greeting_routes:greeting"'))
    org = make_org(tmp_path / "f.db")
    settings = Settings(db=str(org.db), plugins_dir=str(folder), secret="s" * 32, jobs=False, rate_limit=0)
    build_plugin_manager(settings)
    assert "greeting_routes" not in sys.modules
    with TestClient(create_app(settings)) as client:
        assert client.get("/greeting").json() == {"greeting": "xin chào"}
    for named, refused in (
        ('"greeting_routes"', r"register_routes: 'greeting_routes' is not \"module:attribute\""),  # no attribute
        ('"greeting_routes:farewell"', r"register_routes: 'greeting_routes:farewell' cannot be imported: .*farewell"),
    ):
        write_plugin(folder, "greeting", naming_routes(named))
        with pytest.raises(ValueError, match=refused):
            create_app(settings)


def naming_routes(name: str) -> str:
    """A plugin whose `register_routes` returns the one route `name` (a Python string literal)."""
    return f"""
        from feedback import hookimpl

        @hookimpl
        def register_routes(settings):
            return [{name}]
    """


GREETING_ROUTES = """
from litestar import get


@get("/greeting")
async def greeting() -> dict:
    return {"greeting": "xin chào"}
"""


def test_a_plugin_file_rewritten_within_the_second_at_the_same_size_runs_its_new_code(tmp_path: Path) -> None:
    """Python's bytecode cache trusts a file whose mtime and size are unchanged; a plugins-folder file is
    compiled from its source on every load instead, and leaves no __pycache__ in the folder."""
    folder = tmp_path / "p"
    source = """
        from feedback import hookimpl

        @hookimpl
        def register_survey_templates():
            return []

        ANSWER = {answer}
    """
    plugin = write_plugin(folder, "answer", source.format(answer=111)) / "answer.py"
    stamp = plugin.stat().st_mtime_ns
    assert build_plugin_manager(Settings(plugins_dir=str(folder))).get_plugin("answer").ANSWER == 111
    write_plugin(folder, "answer", source.format(answer=222))
    os.utime(plugin, ns=(stamp, stamp))  # the same second, the same size: only the content differs
    assert build_plugin_manager(Settings(plugins_dir=str(folder))).get_plugin("answer").ANSWER == 222
    assert not (folder / "__pycache__").exists()


# -- exporters and catalogues from a plugin --------------------------------------------------------------------

VISITS = """
    from pathlib import Path

    from feedback import hookimpl
    from feedback.exports import Exporter, ResponseFilter, iter_responses


    def rows(conn, snapshot, units, date_from, date_to):
        counts = {}
        for row in iter_responses(conn, ResponseFilter(tuple(units), date_from, date_to)):
            counts[row["unit"]] = counts.get(row["unit"], 0) + 1
        return [[unit, counts[unit]] for unit in sorted(counts)]


    @hookimpl
    def register_exporters():
        return Exporter(
            name="visits",
            title="Visits per unit (CSV)",
            description="How many ratings each unit of the subtree received.",
            header=lambda: ["unit", "ratings"],
            rows=rows,
            summary="Ratings per unit",
        )


    @hookimpl
    def register_translations():
        return Path(__file__).parent / "visits_locales"
"""
VISITS_PO = """
msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\\n"
"Language: {lang}\\n"

msgid "Visits per unit (CSV)"
msgstr "{title}"

msgid "How many ratings each unit of the subtree received."
msgstr "{description}"

# The core translates this one already: its own translation wins.
msgid "Download CSV"
msgstr "Bấm vào đây"
"""


@pytest.fixture(scope="module")
def visits_site(tmp_path_factory: pytest.TempPathFactory):
    """A server whose plugins folder holds a third-party exporter shipping its own catalogue."""
    from tests.conftest import Server

    root = tmp_path_factory.mktemp("visits")
    folder = write_plugin(root / "plugins", "visits", VISITS)
    texts = {
        "vi": ("Lượt đánh giá theo đơn vị (CSV)", "Số lượt đánh giá mỗi đơn vị trong cây đã nhận."),
        "ru": ("Оценки по подразделениям (CSV)", "Сколько оценок получило каждое подразделение."),
    }
    for lang, (title, description) in texts.items():
        messages = folder / "visits_locales" / lang / "LC_MESSAGES"
        messages.mkdir(parents=True)
        po = VISITS_PO.format(lang=lang, title=title, description=description)
        (messages / "visits.po").write_text(textwrap.dedent(po).lstrip(), encoding="utf-8")
    org = make_org(root / "f.db")
    server = Server(org.db, env={"FEEDBACK_PLUGINS_DIR": str(folder)}).start()
    for touchpoint in ("tp-a", "tp-a1", "tp-a1"):
        reply = httpx.post(f"{server.url}/api/v1/responses", json={"touchpoint": touchpoint, "answers": {"overall": 4}})
        assert reply.status_code == 201
    yield server, org, texts
    server.stop()


def test_hook_register_exporters(visits_site) -> None:
    server, org, _ = visits_site
    reply = httpx.get(
        f"{server.url}/api/v1/exports/visits.csv", params={"unit": "A"}, headers=auth_header(org.tokens["admin"])
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/csv")
    assert re.match(
        r'attachment; filename="visits_A_\d{4}-\d\d-\d\d_\d{4}-\d\d-\d\d\.csv"', reply.headers["content-disposition"]
    )
    assert reply.content.decode("utf-8-sig").splitlines() == ["unit,ratings", "A,1", "A1,2"]
    # Scoped like the core's exports: the subtree of a unit the caller may see, and nothing else.
    outside = httpx.get(
        f"{server.url}/api/v1/exports/visits.csv", params={"unit": "A"}, headers=auth_header(org.tokens["viewer_b"])
    )
    assert outside.status_code == 403
    operation = httpx.get(f"{server.url}/schema/openapi.json").json()["paths"]["/api/v1/exports/visits.csv"]["get"]
    assert operation["summary"] == "Ratings per unit" and operation["tags"] == ["exports"]


def test_hook_register_translations(visits_site) -> None:
    from tests.manage_helpers import add_user, sign_in

    server, org, texts = visits_site
    for user, lang in (("lan", "vi"), ("olga", "ru")):
        add_user(org.db, user, "correct horse 1", "admin", lang=lang)
        with httpx.Client(base_url=server.url, timeout=30) as client:
            sign_in(client, server, user, "correct horse 1")
            page = client.get("/manage/reports").text
        title, description = texts[lang]
        assert f'<h2 id="visits-heading">{title}</h2>' in page
        assert description in page
        assert 'action="/api/v1/exports/visits.csv"' in page
        # The built-in A-11 export's texts come from the built-in plugins' own catalogue.
        a11 = {"vi": "Báo cáo quý theo OMB A-11 §280 v2 (CSV)", "ru": "Квартальный отчёт OMB A-11 §280 v2 (CSV)"}
        assert a11[lang] in page
        # A message id the core translates keeps the core's translation.
        assert "Bấm vào đây" not in page
        assert {"vi": "Tải CSV", "ru": "Скачать CSV"}[lang] in page
