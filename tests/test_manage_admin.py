"""The admin pages of the manager web app, driven through their forms on a real server."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import ARTIFACTS, AXE, BOTH_BACKENDS, Org, Server, axe_violations, rows, save_screenshot
from tests.manage_helpers import add_user, csrf_token, sign_in

pytestmark = BOTH_BACKENDS

PASSWORD = "correct horse 1"
ADMIN_PAGES = [
    "/manage/admin",
    "/manage/admin/units/",
    "/manage/admin/units/A1",
    "/manage/admin/services/",
    "/manage/admin/touchpoints/?unit=A",
    "/manage/admin/kiosks/",
    "/manage/admin/surveys/",
    "/manage/admin/surveys/drafts/csat",
    "/manage/admin/objectives/",
]


@pytest.fixture(scope="module")
def users(shared_org: Org) -> Org:
    add_user(shared_org.db, "boss", PASSWORD, "admin")
    add_user(shared_org.db, "mai", PASSWORD, "manager", "A1")
    add_user(shared_org.db, "vera", PASSWORD, "viewer", "A")
    return shared_org


def client_for(server: Server, name: str) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=30)
    sign_in(client, server, name, PASSWORD)
    return client


def post_form(client: httpx.Client, form_page: str, action: str, data: dict) -> httpx.Response:
    return client.post(action, data={"_csrf_token": csrf_token(client, form_page), **data})


@pytest.mark.postgres_covered_elsewhere
def test_admin_creates_a_unit_and_a_touchpoint_through_the_forms(users: Org, server: Server) -> None:
    client = client_for(server, "boss")
    reply = post_form(
        client,
        "/manage/admin/units/",
        "/manage/admin/units/",
        {
            "code": "A2",
            "name_vi": "Đơn vị A2",
            "name_en": "Unit A2",
            "parent": "A",
            "lang": "vi",
            "tz": "Asia/Ho_Chi_Minh",
            "country": "vn",
            "owner": "mai",
            "action_days": "10",
        },
    )
    assert reply.status_code == 303, reply.text[:500]
    assert reply.headers["location"] == "/manage/admin/units/A2"
    unit = rows(users, "SELECT * FROM units WHERE code = 'A2'")[0]
    assert (unit["parent"], unit["country"], unit["owner"], unit["action_days"]) == ("A", "VN", "mai", 10)
    page = client.get("/manage/admin/units/A2")
    assert "Unit A2 created." in page.text or "A2" in page.text
    reply = post_form(
        client,
        "/manage/admin/touchpoints/?unit=A2",
        "/manage/admin/touchpoints/",
        {"unit": "A2", "name": "Quầy 5", "survey": "csat", "kind": "qr", "counter": "5", "service": "S1"},
    )
    assert reply.status_code == 303
    created = rows(users, "SELECT * FROM touchpoints WHERE unit = 'A2'")
    assert [(t["name"], t["counter"], t["service"], t["lang"]) for t in created] == [("Quầy 5", "5", "S1", "vi")]
    # The unit's public results switch.
    reply = post_form(
        client,
        "/manage/admin/units/A2",
        "/manage/admin/units/A2",
        {"owner": "mai", "action_days": "", "country": "VN", "public_results": "1"},
    )
    assert reply.status_code == 303
    assert rows(users, "SELECT public_results, action_days FROM units WHERE code = 'A2'")[0] == {
        "public_results": 1,
        "action_days": None,
    }


@pytest.mark.postgres_covered_elsewhere
def test_bad_input_names_the_field_in_the_page_language(users: Org, server: Server) -> None:
    client = client_for(server, "boss")
    reply = post_form(
        client,
        "/manage/admin/units/?lang=ru",
        "/manage/admin/units/",
        {"code": "A", "name_en": "dup", "parent": "", "lang": "en"},
    )
    assert reply.status_code == 409
    assert "Код" in reply.text and 'aria-invalid="true"' in reply.text
    reply = post_form(
        client, "/manage/admin/units/", "/manage/admin/units/", {"code": "Z9", "name_en": "Z", "tz": "Mars/Olympus"}
    )
    assert reply.status_code == 400 and "Часовой пояс" in reply.text
    reply = post_form(
        client,
        "/manage/admin/objectives/",
        "/manage/admin/objectives/",
        {"unit": "A1", "metric": "satisfaction", "target": "lots"},
    )
    assert reply.status_code == 400 and "Целевое значение" in reply.text  # the target, by its Russian name


def test_retired_touchpoint_code_points_politely_to_the_live_one(users: Org, server: Server) -> None:
    client = client_for(server, "boss")
    post_form(
        client,
        "/manage/admin/touchpoints/?unit=A1",
        "/manage/admin/touchpoints/",
        {"unit": "A1", "name": "Quầy 1 mới", "survey": "csat", "kind": "qr", "counter": "1"},
    )
    new_token = rows(users, "SELECT token FROM touchpoints WHERE name = 'Quầy 1 mới'")[0]["token"]
    old_page = client.get("/manage/admin/touchpoints/?unit=A1")
    assert "/manage/admin/touchpoints/tp-a1/retire" in old_page.text
    reply = post_form(client, "/manage/admin/touchpoints/?unit=A1", "/manage/admin/touchpoints/tp-a1/retire", {})
    assert reply.status_code == 303
    assert rows(users, "SELECT retired_at FROM touchpoints WHERE token = 'tp-a1'")[0]["retired_at"]
    public = httpx.get(f"{server.url}/s/tp-a1")
    assert public.status_code == 410
    assert f'href="/s/{new_token}?lang=vi"' in public.text
    assert 'lang="vi"' in public.text and "?lang=zh" in public.text  # the switcher
    before = rows(users, "SELECT count(*) AS n FROM responses")[0]["n"]
    posted = httpx.post(f"{server.url}/s/tp-a1", data={"q.overall": "5"})
    assert posted.status_code == 410
    assert rows(users, "SELECT count(*) AS n FROM responses")[0]["n"] == before
    english = httpx.get(f"{server.url}/s/tp-a1?lang=en")
    assert "This code is no longer in use" in english.text


@pytest.mark.postgres_covered_elsewhere
def test_poster_downloads_are_pdfs(users: Org, server: Server) -> None:
    client = client_for(server, "mai")
    for path in ("/manage/admin/touchpoints/tp-a1a/poster.pdf", "/manage/admin/units/A1/posters.pdf"):
        reply = client.get(path)
        assert reply.status_code == 200, path
        assert reply.headers["content-type"].startswith("application/pdf")
        assert reply.content.startswith(b"%PDF")
    assert client.get("/manage/admin/units/B/posters.pdf").status_code == 403


def test_kiosk_enrollment_shows_a_code_and_revoke_works(users: Org, server: Server) -> None:
    client = client_for(server, "mai")
    reply = post_form(client, "/manage/admin/kiosks/", "/manage/admin/kiosks/enroll", {"touchpoint": "tp-a1a"})
    assert reply.status_code == 303
    page = client.get("/manage/admin/kiosks/")
    code = re.search(r'<strong class="code">(\d{6})</strong>', page.text)
    assert code, page.text[:2000]
    assert "code" not in reply.headers["location"]
    assert 'class="code"' not in client.get("/manage/admin/kiosks/").text  # shown once
    enrolled = httpx.post(f"{server.url}/api/v1/kiosk/enroll", json={"code": code.group(1)})
    assert enrolled.status_code in (200, 201)
    kiosk_id = enrolled.json()["kiosk"]["id"]
    reply = post_form(client, "/manage/admin/kiosks/", f"/manage/admin/kiosks/{kiosk_id}/revoke", {})
    assert reply.status_code == 303
    assert rows(users, "SELECT revoked_at FROM kiosks WHERE id = ?", (kiosk_id,))[0]["revoked_at"]


def test_admin_previews_and_publishes_a_new_survey_version(users: Org, server: Server) -> None:
    client = client_for(server, "boss")
    for lang in ("vi", "ru", "zh", "en"):
        preview = client.get(f"/manage/admin/surveys/drafts/csat/preview?lang={lang}")
        assert preview.status_code == 200 and f'lang="{lang}' in preview.text
    before = rows(users, "SELECT max(version) AS v FROM survey_versions WHERE slug = 'csat'")[0]["v"]
    reply = post_form(client, "/manage/admin/surveys/drafts/csat", "/manage/admin/surveys/drafts/csat/publish", {})
    assert reply.status_code == 303
    assert rows(users, "SELECT max(version) AS v FROM survey_versions WHERE slug = 'csat'")[0]["v"] == before + 1
    manager = client_for(server, "mai")
    refused = post_form(manager, "/manage/admin/surveys/", "/manage/admin/surveys/drafts/csat/publish", {})
    assert refused.status_code == 403


def test_objective_is_created_changed_and_retired_through_forms(users: Org, server: Server) -> None:
    client = client_for(server, "mai")
    reply = post_form(
        client,
        "/manage/admin/objectives/?unit=A1",
        "/manage/admin/objectives/",
        {"unit": "A1", "metric": "satisfaction", "target": "90", "period": "month", "title": "Hài lòng ≥ 90 %"},
    )
    assert reply.status_code == 303
    objective_id = int(reply.headers["location"].rsplit("/", 1)[1])
    version = rows(users, "SELECT target FROM objective_versions WHERE objective = ?", (objective_id,))
    assert version == [{"target": 0.9}]
    detail = f"/manage/admin/objectives/{objective_id}"
    reply = post_form(client, detail, f"{detail}/versions", {"target": "92", "current_metric": "satisfaction"})
    assert reply.status_code == 303
    assert [
        r["target"]
        for r in rows(
            users, "SELECT target FROM objective_versions WHERE objective = ? ORDER BY version", (objective_id,)
        )
    ] == [0.9, 0.92]
    page = client.get(detail)
    retire_day = re.search(r'name="from" type="date" value="([0-9-]+)"', page.text).group(1)
    reply = post_form(client, detail, f"{detail}/retire", {"from": retire_day})
    assert reply.status_code == 303
    assert (
        rows(users, "SELECT retired_from FROM objectives WHERE id = ?", (objective_id,))[0]["retired_from"]
        == retire_day
    )


@pytest.mark.postgres_covered_elsewhere
def test_manager_of_a1_cannot_open_b_and_viewer_gets_no_forms(users: Org, server: Server) -> None:
    manager = client_for(server, "mai")
    for path in (
        "/manage/admin/units/B",
        "/manage/admin/touchpoints/?unit=B",
        "/manage/admin/objectives/?unit=B",
        "/manage/admin/touchpoints/tp-b/poster.pdf",
    ):
        assert manager.get(path).status_code == 403, path
    refused = post_form(manager, "/manage/admin/units/", "/manage/admin/touchpoints/tp-b/retire", {})
    assert refused.status_code == 403
    assert not rows(users, "SELECT retired_at FROM touchpoints WHERE token = 'tp-b'")[0]["retired_at"]
    units = manager.get("/manage/admin/units/").text
    assert "Пост Б" not in units and "A1a" in units
    viewer = client_for(server, "vera")
    page = viewer.get("/manage/admin/touchpoints/?unit=A")
    assert page.status_code == 200 and "/retire" not in page.text and 'action="/manage/admin' not in page.text
    refused = post_form(
        viewer, "/manage/admin/units/", "/manage/admin/units/", {"code": "V1", "name_en": "V", "parent": "A"}
    )
    assert refused.status_code == 403
    assert not rows(users, "SELECT 1 FROM units WHERE code = 'V1'")
    # Without its CSRF token a form is refused.
    assert manager.post("/manage/admin/units/A1", data={"owner": ""}).status_code == 403


def test_admin_pages_pass_axe_and_are_screenshotted_in_each_language(users: Org, server: Server, browser) -> None:
    assert AXE.exists(), "run `npm install` in tests/browser"
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = context.new_page()
    sign_in(page, server, "boss", PASSWORD)
    ARTIFACTS.mkdir(exist_ok=True)
    for lang in ("vi", "ru", "zh", "en"):
        for path in ADMIN_PAGES:
            sep = "&" if "?" in path else "?"
            page.goto(f"{server.url}{path}{sep}lang={lang}")
            assert page.locator("html").get_attribute("lang").startswith(lang[:2])
            if lang == "en":
                bad = axe_violations(page)
                assert not bad, (path, bad)
            name = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")
            save_screenshot(page, ARTIFACTS / f"admin-{name}-{lang}.png")
    page.goto(f"{server.url}/s/tp-a1?lang=vi")
    save_screenshot(page, ARTIFACTS / "retired-touchpoint-vi.png")
    context.close()


def option_texts(html: str, select_name: str) -> dict[str, str]:
    """value -> visible text of the options of one select box."""
    box = re.search(rf'<select[^>]*name="{select_name}"[^>]*>(.*?)</select>', html, re.S)
    assert box, select_name
    return {
        value: text.strip()
        for value, text in re.findall(r'<option value="([^"]*)"[^>]*>(.*?)</option>', box.group(1), re.S)
    }


def test_objective_pages_name_metrics_and_indicators_in_the_readers_language(users: Org, server: Server) -> None:
    add_user(users.db, "pyotr", PASSWORD, "manager", "A1", lang="ru")
    add_user(users.db, "linh", PASSWORD, "viewer", "A", lang="vi")
    pyotr = client_for(server, "pyotr")
    form = pyotr.get("/manage/admin/objectives/?unit=A1").text
    assert '<html lang="ru"' in form
    metrics = option_texts(form, "metric")
    assert metrics["satisfaction"] == "Доля удовлетворённых"
    assert metrics["indicator_mean"] == "Средний балл критерия (0–100)"
    assert option_texts(form, "indicator")["waiting_time"] == "Время ожидания"
    assert option_texts(form, "service")["S1"] == "Đăng ký"  # a service's own name, its code as the value
    reply = post_form(
        pyotr,
        "/manage/admin/objectives/?unit=A1",
        "/manage/admin/objectives/",
        {"unit": "A1", "metric": "indicator_mean", "indicator": "waiting_time", "target": "80"},
    )
    assert reply.status_code == 303, reply.text[:500]
    detail = reply.headers["location"]
    objective_id = int(detail.rsplit("/", 1)[1])

    # The list: an untitled objective is named by its metric, and the metric column by name.
    listing = pyotr.get("/manage/admin/objectives/?unit=A1").text
    row = re.search(
        rf'<tr>\s*<th scope="row"><a href="[^"]*/objectives/{objective_id}">(.*?)</a></th>'
        r"\s*<td[^>]*>[^<]*</td><td[^>]*>(.*?)</td>",
        listing,
        re.S,
    )
    assert row, listing[:2000]
    assert row.group(1).strip() == f"Средний балл критерия (0–100) #{objective_id}"
    assert row.group(2).strip() == "Средний балл критерия (0–100) (Время ожидания)"
    # The objective's own page: heading, facts and versions, and its new-version form.
    page = pyotr.get(detail).text
    assert re.search(r"<h1>Средний балл критерия \(0–100\) <small>", page)
    assert "<dd>Средний балл критерия (0–100) (Время ожидания)</dd>" in page
    assert re.search(r"<td>Средний балл критерия \(0–100\)</td>", page)
    assert option_texts(page, "metric")["mean_score"] == "Средний балл (0–100)"
    # Codes stay the values, never the text a person reads.
    for html in (listing, page):
        assert not re.search(r">\s*(indicator_mean|waiting_time|satisfaction)\b", html)

    viewer = client_for(server, "linh").get(detail).text
    assert '<html lang="vi"' in viewer
    assert "<dd>Điểm trung bình tiêu chí (0–100) (Thời gian chờ)</dd>" in viewer


@pytest.mark.postgres_covered_elsewhere
def test_an_agencys_services_are_offered_to_its_whole_tree_and_to_no_other(users: Org, server: Server) -> None:
    boss = client_for(server, "boss")
    reply = post_form(
        boss,
        "/manage/admin/services/",
        "/manage/admin/services/",
        {"code": "SB1", "agency": "B", "name_ru": "Таможенное оформление", "kind": "customs"},
    )
    assert reply.status_code == 303, reply.text[:500]
    mai = client_for(server, "mai")  # a manager of A1, below agency A
    for path in ("/manage/admin/touchpoints/?unit=A1", "/manage/admin/services/", "/manage/actions/new"):
        page = mai.get(path)
        assert page.status_code == 200, path
        assert 'value="S1"' in page.text or ">S1<" in page.text, path  # agency A's service: hers to use
        assert "SB1" not in page.text, path  # agency B's: not hers
    refused = post_form(
        mai,
        "/manage/admin/touchpoints/?unit=A1",
        "/manage/admin/touchpoints/",
        {"unit": "A1", "name": "Quầy 9", "survey": "csat", "kind": "qr", "service": "SB1"},
    )
    assert refused.status_code == 403 and "Service: you may not do this here" in refused.text
    assert rows(users, "SELECT * FROM touchpoints WHERE name = 'Quầy 9'") == []
    taken = post_form(
        mai,
        "/manage/admin/touchpoints/?unit=A1",
        "/manage/admin/touchpoints/",
        {"unit": "A1", "name": "Quầy 9", "survey": "csat", "kind": "qr", "service": "S1"},
    )
    assert taken.status_code == 303
    assert [t["service"] for t in rows(users, "SELECT * FROM touchpoints WHERE name = 'Quầy 9'")] == ["S1"]
    refused = post_form(
        mai, "/manage/actions/new", "/manage/actions/new", {"unit": "A1", "title": "Queue too long", "service": "SB1"}
    )
    assert refused.status_code == 403
    assert rows(users, "SELECT * FROM actions WHERE title = 'Queue too long'") == []
