"""Raw codes become words on the manager pages: action titles built in the reader's language by the
plugin that opened the action (old stored titles stay readable), objective targets and periods,
service kinds, surveys, languages and tablets by name; and no vi or ru table heads two columns with
the same word. A real SQLite file and a real server."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from feedback.i18n import gettext_for
from tests.conftest import Server, auth_header, enrollment_code, make_org, rows, run_cli
from tests.manage_helpers import add_user, sign_in
from tests.test_plugins import write_plugin

PASSWORD = "correct horse 1"
TITLES = {
    "vi": "Ít phàn nàn tại ki-ốt",
    "ru": "Мало жалоб у киоска",
    "zh": "自助终端投诉少",
    "en": "Few complaints at the kiosk",
}
NOW = datetime.now(UTC)


def session(srv: Server, user: str, lang: str) -> httpx.Client:
    client = httpx.Client(base_url=srv.url, timeout=30)
    client.cookies.set("fb_lang", lang)
    sign_in(client, srv, user, PASSWORD)
    return client


def title_on_list(client: httpx.Client, action_id: int) -> str:
    html = client.get("/manage/actions", params={"sort": "opened"}).text
    row = re.search(rf'<tr id="action-{action_id}".*?class="act-title"[^>]*>(.*?)</a>', html, re.S)
    assert row, f"no row for action {action_id}"
    return " ".join(row.group(1).split())


def insert_action(db: Path, **values: object) -> int:
    row = {
        "kind": "nonconformity",
        "source_type": "objective",
        "unit": "A1a",
        "status": "new",
        "due": (NOW + timedelta(days=5)).date().isoformat(),
        "opened_at": NOW.isoformat(),
        "updated_at": NOW.isoformat(),
        **values,
    }
    conn = sqlite3.connect(db)
    with conn:
        found = conn.execute(
            f"INSERT INTO actions ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)}) RETURNING id",
            list(row.values()),
        ).fetchone()[0]
    conn.close()
    return found


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    org = make_org(tmp_path_factory.mktemp("titles") / "feedback.db")
    add_user(org.db, "boss", PASSWORD, "admin", None)
    srv = Server(org.db, env={"FEEDBACK_JOBS": "0"}).start()
    reply = httpx.post(
        f"{srv.url}/api/v1/objectives",
        headers=auth_header(org.tokens["admin"]),
        json={
            "unit": "A1a",
            "metric": "not_dissatisfied",
            "target": 0.995,
            "period": "rolling_30",
            "min_n": 1,
            "title": TITLES["vi"],
            "titles": TITLES,
        },
    )
    assert reply.status_code == 201, reply.text
    assert reply.json()["titles"] == TITLES
    objective = reply.json()["id"]
    for _ in range(3):  # bad 好差评 ratings: work orders, and a breach of the objective
        assert httpx.post(
            f"{srv.url}/api/v1/responses", json={"touchpoint": "tp-a1a", "answers": {"overall": 1}}
        ).is_success
    result = run_cli("tick", "--db", str(org.db), "--job", "objectives.evaluate")
    assert result.returncode == 0, result.stderr + result.stdout
    yield org, srv, objective
    srv.stop()


def test_a_breach_is_titled_in_each_readers_language_from_its_parts(site) -> None:
    org, srv, objective = site
    opened = rows(org, "SELECT id, title, data FROM actions WHERE objective_id = ?", (objective,))
    assert len(opened) == 1
    action = opened[0]
    data = json.loads(action["data"])
    assert data["rule"] == "objective_breached" and data["period"] == "rolling_30"  # the parts, kept
    assert action["title"].startswith(f"Mục tiêu không đạt: {TITLES['vi']} là ")  # stored in the unit's language
    expected = {
        "en": f"Objective breached: {TITLES['en']} is 0.0% against a target of 99.5% (",
        "ru": f"Цель не достигнута: {TITLES['ru']} — 0,0 % при целевом значении 99,5 % (",
        "vi": f"Mục tiêu không đạt: {TITLES['vi']} là 0,0% so với chỉ tiêu 99,5% (",
    }
    for lang, start in expected.items():
        client = session(srv, "boss", lang)
        shown = title_on_list(client, action["id"])
        assert shown.startswith(start), shown
        assert "R30" not in shown and "rolling" not in shown
        page = client.get(f"/manage/actions/{action['id']}").text
        assert start in " ".join(re.sub(r"<[^>]+>", " ", page).split())
        assert "R30:" not in page
    # The days of the window in the reader's language, not a key.
    assert re.search(r"\(\w{3} \d+ – \w{3} \d+, \d{4}\)$", title_on_list(session(srv, "boss", "en"), action["id"]))


def test_work_orders_read_in_the_readers_language(site) -> None:
    org, srv, _ = site
    work_order = rows(org, "SELECT id, title FROM actions WHERE kind = 'work_order' ORDER BY id LIMIT 1")[0]
    assert work_order["title"] == "Đánh giá không hài lòng (mức 1) tại 3号窗口"
    assert title_on_list(session(srv, "boss", "en"), work_order["id"]) == "Bad review (level 1) at 3号窗口"
    assert title_on_list(session(srv, "boss", "ru"), work_order["id"]) == "Негативная оценка (уровень 1): 3号窗口"


def test_titles_stored_before_stay_readable(site) -> None:
    org, srv, objective = site
    old_breach = insert_action(
        org.db,
        source_key="old:breach",
        objective_id=objective,
        period="2026-12",
        target=0.9,
        title="Mục tiêu không đạt: X là 86.3 % so với chỉ tiêu 90.0 % (R30:2026-12-02)",
        data=json.dumps({"status": "breached", "signals": [], "value": 0.863, "n": 3917}),
    )
    old_signal = insert_action(
        org.db,
        source_key="old:signal",
        objective_id=objective,
        period="2026-Q4",
        target=0.9,
        title="Tín hiệu biểu đồ kiểm soát: X (beyond_limits, tuần 2026-W45)",
        data=json.dumps(
            {"status": "at_risk", "signals": [{"rule": "beyond_limits", "week": "2026-W45", "side": "below"}]}
        ),
    )
    old_work_order = insert_action(
        org.db,
        kind="work_order",
        source_type="response",
        source_key="old:work-order",
        title="Đánh giá không hài lòng (mức 2) tại 3号窗口 · HS-77",
        data=json.dumps({"case_ref": "HS-77", "officer": None, "counter": None, "reasons": None}),
    )
    en = session(srv, "boss", "en")
    assert title_on_list(en, old_breach) == (
        f"Objective breached: {TITLES['en']} is 86.3% against a target of 90% (December 2026)"
    )
    assert title_on_list(en, old_signal) == (
        f"Control chart signal: {TITLES['en']}, a week outside the control limits (Nov 2 – 8, 2026)"
    )
    assert title_on_list(en, old_work_order) == "Đánh giá không hài lòng (mức 2) tại 3号窗口 · HS-77"  # as stored


def test_hook_action_title(tmp_path: Path) -> None:
    org = make_org(tmp_path / "feedback.db")
    add_user(org.db, "boss", PASSWORD, "admin", None)
    folder = write_plugin(
        tmp_path / "p",
        "audit_titles",
        """
        from feedback import hookimpl

        TITLES = {
            "vi": "Phát hiện đánh giá nội bộ",
            "ru": "Замечание внутреннего аудита",
            "en": "Internal audit finding",
        }

        @hookimpl
        def action_title(action, lang, snapshot):
            if action["title"] == "broken":
                raise RuntimeError("a plugin that fails leaves the stored title")
            if action["title"] != "audit-7" or action["unit"] not in snapshot.units:
                return None
            return TITLES.get(lang)
        """,
    )
    srv = Server(org.db, env={"FEEDBACK_JOBS": "0", "FEEDBACK_PLUGINS_DIR": str(folder)}).start()
    try:
        ids = []
        for title in ("audit-7", "broken", "Plain title"):
            reply = httpx.post(
                f"{srv.url}/api/v1/actions",
                headers=auth_header(org.tokens["admin"]),
                json={"unit": "A1", "title": title},
            )
            assert reply.status_code == 201, reply.text
            ids.append(reply.json()["id"])
        for lang in ("vi", "ru", "en"):
            client = session(srv, "boss", lang)
            assert (
                title_on_list(client, ids[0])
                == {
                    "vi": "Phát hiện đánh giá nội bộ",
                    "ru": "Замечание внутреннего аудита",
                    "en": "Internal audit finding",
                }[lang]
            )
            assert title_on_list(client, ids[1]) == "broken"
            assert title_on_list(client, ids[2]) == "Plain title"
        assert title_on_list(session(srv, "boss", "zh"), ids[0]) == "audit-7"  # no answer in zh: as stored
        # The API keeps the stored title.
        api = httpx.get(f"{srv.url}/api/v1/actions/{ids[0]}", headers=auth_header(org.tokens["admin"])).json()
        assert api["title"] == "audit-7"
    finally:
        srv.stop()


def headers_of_each_table(html: str) -> list[list[str]]:
    found = []
    for table in re.findall(r"<table.*?</table>", html, re.S):
        heads = [
            " ".join(re.sub(r"<[^>]+>", "", h).split())
            for h in re.findall(r'<th scope="col"[^>]*>(.*?)</th>', table, re.S)
        ]
        found.append([h for h in heads if h])
    return found


def test_codes_read_as_words_and_no_two_columns_share_a_heading(site) -> None:
    org, srv, objective = site
    code = enrollment_code(org)
    assert httpx.post(f"{srv.url}/api/v1/kiosk/enroll", json={"code": code}).is_success
    action = rows(org, "SELECT id FROM actions ORDER BY id LIMIT 1")[0]["id"]
    pages = (
        "/manage/",
        "/manage/units/A1a",
        "/manage/actions",
        f"/manage/actions/{action}",
        "/manage/admin/objectives/",
        f"/manage/admin/objectives/{objective}",
        "/manage/admin/services/",
        "/manage/admin/touchpoints/",
        "/manage/admin/kiosks/",
    )
    for lang in ("vi", "ru", "zh", "en"):
        client = session(srv, "boss", lang)
        _ = gettext_for(lang)
        for path in pages:
            html = client.get(path).text
            for heads in headers_of_each_table(html):
                assert len(heads) == len(set(heads)), (lang, path, heads)
            assert "R30:" not in html and not re.search(r">[^<]*&gt;=", html), (lang, path)  # no key, no ">="
        objectives = client.get(f"/manage/admin/objectives/{objective}").text
        assert f"<h1>{TITLES[lang]} " in objectives  # the objective's own title in the reader's language
        assert _("Last 30 days") in objectives and ">rolling_30<" not in objectives
        touchpoints = client.get("/manage/admin/touchpoints/").text
        assert ">csat<" not in touchpoints and ">haochaping<" not in touchpoints  # surveys by their titles
        assert ">zh<" not in touchpoints and ">中文<" in touchpoints  # languages by their own names
        kiosks = client.get("/manage/admin/kiosks/").text
        assert _("Tablet at %(place)s") % {"place": "3号窗口"} in kiosks
        assert ">kiosk " not in kiosks
    # A service's kind in words.
    conn = sqlite3.connect(org.db)
    with conn:
        conn.execute("UPDATE services SET kind = 'customs' WHERE code = 'S1'")
    conn.close()
    for lang in ("vi", "ru"):
        services = session(srv, "boss", lang).get("/manage/admin/services/").text
        assert gettext_for(lang)("Customs procedure") in services and "<td>customs</td>" not in services
