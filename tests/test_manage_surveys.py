"""Survey drafts in the admin pages: create from a template, edit, preview, publish, discard."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import ARTIFACTS, AXE, Org, Server, axe_violations, rows, save_screenshot
from tests.manage_helpers import add_user, csrf_token, sign_in

PASSWORD = "correct horse 1"
NEW_TEXT = "Anh/chị hài lòng thế nào với buổi làm việc hôm nay?"


@pytest.fixture(scope="module")
def users(shared_org: Org) -> Org:
    add_user(shared_org.db, "boss", PASSWORD, "admin")
    add_user(shared_org.db, "mai", PASSWORD, "manager", "A1")
    return shared_org


def client_for(server: Server, name: str) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=30)
    sign_in(client, server, name, PASSWORD)
    return client


def post_form(client: httpx.Client, form_page: str, action: str, data: dict) -> httpx.Response:
    return client.post(action, data={"_csrf_token": csrf_token(client, form_page), **data})


def new_draft(client: httpx.Client, source: str = "template") -> str:
    reply = post_form(
        client, "/manage/admin/surveys/drafts/csat", "/manage/admin/surveys/drafts/csat/edit", {"source": source}
    )
    assert reply.status_code == 303, reply.text[:500]
    assert re.fullmatch(r"/manage/admin/surveys/edit/\d+", reply.headers["location"])
    return reply.headers["location"]


def form_fields(html: str) -> dict[str, str]:
    """The edit form's text inputs and ticked boxes, as a browser would post them."""
    fields = {}
    for tag in re.findall(r"<input [^>]*>", html):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if not name or name.group(1) == "_csrf_token":
            continue
        if 'type="checkbox"' in tag and " checked" not in tag:
            continue
        fields[name.group(1)] = (
            (value.group(1) if value else "")
            .replace("&#34;", '"')
            .replace("&#39;", "'")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", '"')
        )
    return fields


def test_draft_is_edited_previewed_and_published(users: Org, server: Server) -> None:
    client = client_for(server, "boss")
    edit = new_draft(client)
    page = client.get(edit)
    assert page.status_code == 200 and 'name="q.overall.text.vi"' in page.text
    assert "Keys, kinds, scales and indicators stay" in client.get(edit + "?lang=en").text
    fields = form_fields(page.text)
    fields["q.overall.text.vi"] = NEW_TEXT
    reply = post_form(client, edit, edit, {**fields, "op": "save"})
    assert reply.status_code == 303, reply.text[:800]
    # Moving a question keeps the texts just typed, and removing an optional one works.
    fields = form_fields(client.get(edit).text)
    assert fields["q.overall.text.vi"] == NEW_TEXT
    assert post_form(client, edit, edit, {**fields, "op": "up:comment"}).status_code == 303
    fields = form_fields(client.get(edit).text)
    assert post_form(client, edit, edit, {**fields, "op": "remove:contact"}).status_code == 303
    assert post_form(client, edit, edit, {**fields, "op": "remove:overall"}).status_code == 400
    draft_id = int(edit.rsplit("/", 1)[1])
    stored = rows(users, "SELECT definition FROM survey_drafts WHERE id = ?", (draft_id,))[0]["definition"]
    assert NEW_TEXT in stored and '"contact"' not in stored
    preview = client.get(f"{edit}/preview?lang=vi")
    assert preview.status_code == 200 and NEW_TEXT in preview.text
    before = rows(users, "SELECT max(version) AS v FROM survey_versions WHERE slug = 'csat'")[0]["v"]
    assert rows(users, "SELECT max(version) AS v FROM survey_versions WHERE slug = 'csat'")[0]["v"] == before
    reply = post_form(client, edit, f"{edit}/publish", {})
    assert reply.status_code == 303
    survey = httpx.get(f"{server.url}/api/v1/touchpoints/tp-a/survey").json()
    assert survey["version"] == before + 1
    keys = [q["key"] for q in survey["questions"]]
    assert keys.index("comment") < keys.index("went_well") and "contact" not in keys
    overall = next(q for q in survey["questions"] if q["key"] == "overall")
    assert overall["text"]["vi"] == NEW_TEXT and overall["scale"] == 5 and overall["indicator"] == "overall"
    assert not rows(users, "SELECT 1 FROM survey_drafts WHERE id = ?", (draft_id,))
    assert NEW_TEXT in httpx.get(f"{server.url}/s/tp-a?lang=vi").text


def test_bad_edit_names_the_field_and_manager_is_refused(users: Org, server: Server) -> None:
    client = client_for(server, "boss")
    edit = new_draft(client, "current")
    fields = form_fields(client.get(edit).text)
    fields["q.overall.text.ru"] = ""
    reply = post_form(client, f"{edit}?lang=ru", edit, {**fields, "op": "save"})
    assert reply.status_code == 400
    assert "Вопрос overall: текст, Русский" in reply.text and 'aria-invalid="true"' in reply.text
    reply = post_form(client, f"{edit}?lang=en", edit, {**fields, "op": "save"})
    assert "Question overall: text in Русский" in reply.text
    assert client.get("/manage/admin/surveys/edit/999999").status_code == 404
    manager = client_for(server, "mai")
    assert manager.get(edit).status_code == 403
    assert post_form(manager, "/manage/admin/surveys/", f"{edit}/publish", {}).status_code == 403
    assert (
        post_form(
            manager, "/manage/admin/surveys/", "/manage/admin/surveys/drafts/csat/edit", {"source": "template"}
        ).status_code
        == 403
    )
    # Without its CSRF token a form is refused.
    assert client.post(f"{edit}/discard", data={}).status_code == 403
    reply = post_form(client, edit, f"{edit}/discard", {})
    assert reply.status_code == 303 and client.get(edit).status_code == 404


def test_edit_page_passes_axe_and_is_screenshotted(users: Org, server: Server, browser) -> None:
    assert AXE.exists(), "run `npm install` in tests/browser"
    edit = new_draft(client_for(server, "boss"))
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = context.new_page()
    sign_in(page, server, "boss", PASSWORD)
    ARTIFACTS.mkdir(exist_ok=True)
    for lang in ("vi", "ru", "zh", "en"):
        page.goto(f"{server.url}{edit}?lang={lang}")
        assert page.locator("html").get_attribute("lang").startswith(lang[:2])
        bad = axe_violations(page)
        assert not bad, (lang, bad)
        save_screenshot(page, ARTIFACTS / f"admin-survey-draft-edit-{lang}.png")
    # The browser's own form: change a text and save.
    page.fill("#f-overall-en", "How satisfied are you today?")
    with page.expect_navigation():
        page.click("button[name=op][value=save]")
    assert page.input_value("#f-overall-en") == "How satisfied are you today?"
    context.close()
