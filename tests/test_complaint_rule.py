"""The built-in complaint rule: one bad rating on any survey opens one complaint action, per the unit's
inherited `complaint_levels`; a jurisdiction's own rule comes first; the thank-you page promises only
what really happened."""

from __future__ import annotations

import json
import sqlite3
import textwrap
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from babel.dates import format_date

from feedback import organisation, surveys
from feedback.catalog import load_snapshot
from feedback.db import open_utils
from feedback.models import ChoiceQuestion, RatingQuestion, SurveyDefinition, TextQuestion
from feedback.plugins import build_plugin_manager
from feedback.settings import Settings
from tests.conftest import Org, Server, auth_header, default_plugins, make_org, rows
from tests.manage_helpers import add_user, csrf_token, sign_in

# Preset → (touchpoint, the kind of action a level-1 rating opens there). The jurisdiction presets keep
# their own rule's action; every other preset gets the complaint rule's.
PRESETS = {
    "csat": ("tp-a1", "complaint"),
    "vn_one_stop": ("tp-vn", "complaint"),
    "a11_v2": ("tp-a11", "complaint"),
    "govuk": ("tp-govuk", "complaint"),
    "haochaping": ("tp-hc", "work_order"),
    "vash_kontrol": ("tp-b", "callback"),
}
JURISDICTION = {"haochaping", "vash_kontrol"}


def with_every_preset(path: Path) -> Org:
    """The test organisation plus a QR touchpoint in A1 for each preset it lacks (and a QR 好差评 one)."""
    org = make_org(path)
    db = open_utils(str(path))
    conn = db.conn
    conn.execute("BEGIN")
    for slug in ("vn_one_stop", "a11_v2", "govuk"):
        surveys.publish_template(conn, slug, default_plugins())
        org.touchpoints[slug] = organisation.add_touchpoint(conn, "A1", f"{slug} desk", slug, token=PRESETS[slug][0])
    org.touchpoints["hc"] = organisation.add_touchpoint(conn, "A1", "好差评 QR", "haochaping", token="tp-hc")
    conn.execute("COMMIT")
    db.close()
    return org


def definition(slug: str) -> SurveyDefinition:
    return surveys.survey_templates(default_plugins())[slug]


def answers_at(slug: str, value: int) -> dict[str, Any]:
    """Every rating at `value`, and whatever else the survey then requires."""
    survey = definition(slug)
    answers: dict[str, Any] = {q.key: value for q in survey.questions if isinstance(q, RatingQuestion)}
    for question in survey.questions:
        if not question.required or question.key in answers:
            continue
        if question.show_if is not None and not question.show_if.holds(answers):
            continue
        if isinstance(question, ChoiceQuestion):
            first = question.options[0].key
            answers[question.key] = [first] if question.multiple else first
        elif isinstance(question, TextQuestion):
            answers[question.key] = "x"
    return answers


def post(url: str, touchpoint: str, answers: dict[str, Any], **extra: Any) -> httpx.Response:
    return httpx.post(f"{url}/api/v1/responses", json={"touchpoint": touchpoint, "answers": answers, **extra})


def patch(url: str, token: str, code: str, body: Any) -> httpx.Response:
    return httpx.patch(f"{url}/api/v1/units/{code}", json=body, headers=auth_header(token))


def actions_of(org: Org, response_id: str) -> list[dict]:
    return rows(org, "SELECT kind, unit, source_key, title FROM actions WHERE response_id = ?", (response_id,))


@pytest.fixture(scope="module")
def preset_org(tmp_path_factory: pytest.TempPathFactory) -> Org:
    return with_every_preset(tmp_path_factory.mktemp("presets") / "feedback.db")


@pytest.mark.parametrize("slug", list(PRESETS))
def test_a_level_1_rating_opens_exactly_one_action_on_every_preset(tmp_path: Path, start_server, slug: str) -> None:
    org = with_every_preset(tmp_path / "feedback.db")
    srv = start_server(org.db)
    touchpoint, kind = PRESETS[slug]
    reply = post(srv.url, touchpoint, answers_at(slug, 1))
    assert reply.status_code == 201, reply.text
    response = rows(org, "SELECT level, unit FROM responses WHERE id = ?", (reply.json()["id"],))[0]
    assert response["level"] == 1
    [action] = actions_of(org, reply.json()["id"])
    assert (action["kind"], action["unit"], action["source_key"]) == (
        kind,
        response["unit"],
        f"response:{reply.json()['id']}",
    )
    # A rating at the top opens nothing.
    good = post(srv.url, touchpoint, answers_at(slug, definition(slug).primary_rating().scale))
    assert good.status_code == 201 and actions_of(org, good.json()["id"]) == []
    # Switched off for the unit: only a jurisdiction's own rule still opens its action.
    assert patch(srv.url, org.tokens["admin"], response["unit"], {"complaint_levels": []}).status_code == 200
    again = post(srv.url, touchpoint, answers_at(slug, 1))
    assert [a["kind"] for a in actions_of(org, again.json()["id"])] == ([kind] if slug in JURISDICTION else [])


def test_the_complaint_title_is_in_the_units_language(preset_org: Org, start_server) -> None:
    srv = start_server(preset_org.db)
    reply = post(srv.url, "tp-vn", answers_at("vn_one_stop", 1))
    [action] = actions_of(preset_org, reply.json()["id"])
    assert action["title"] == "Phản ánh không hài lòng (mức 1) tại vn_one_stop desk"  # A1 speaks Vietnamese
    # Each reader gets the title in their own language, built from the parts the action keeps.
    plugins = build_plugin_manager(Settings())
    conn = sqlite3.connect(preset_org.db)
    try:
        snapshot = load_snapshot(conn, plugins)
    finally:
        conn.close()
    [stored] = rows(preset_org, "SELECT touchpoint, data FROM actions WHERE response_id = ?", (reply.json()["id"],))
    action = {"touchpoint": stored["touchpoint"], "data": json.loads(stored["data"])}
    titles = {
        lang: plugins.hook.action_title(action=action, lang=lang, snapshot=snapshot) for lang in ("ru", "zh", "en")
    }
    assert titles == {
        "ru": "Жалоба (уровень 1): vn_one_stop desk",
        "zh": "投诉（1 级）：vn_one_stop desk",
        "en": "Complaint (level 1) at vn_one_stop desk",
    }


def test_levels_are_inherited_from_the_nearest_unit_that_sets_them(org: Org, start_server) -> None:
    srv = start_server(org.db)
    admin = org.tokens["admin"]

    def opened(touchpoint: str, level: int) -> list[str]:
        reply = post(srv.url, touchpoint, {"overall": level})
        assert reply.status_code == 201, reply.text
        return [a["kind"] for a in actions_of(org, reply.json()["id"])]

    assert opened("tp-a1", 2) == ["complaint"]  # the default: levels 1 and 2
    assert opened("tp-a1", 3) == []
    reply = patch(srv.url, admin, "A", {"complaint_levels": [1]})
    assert reply.status_code == 200, reply.text
    assert (reply.json()["complaint_levels"], reply.json()["complaint_levels_in_force"]) == ([1], [1])
    assert opened("tp-a1", 2) == []  # A1 follows A
    assert opened("tp-a1", 1) == ["complaint"]
    reply = patch(srv.url, admin, "A1", {"complaint_levels": [3, 2]})
    assert (reply.json()["complaint_levels"], reply.json()["complaint_levels_in_force"]) == ([2, 3], [2, 3])
    assert opened("tp-a1", 3) == ["complaint"]
    assert opened("tp-a1", 1) == []
    assert opened("tp-a", 1) == ["complaint"]  # A keeps its own
    listed = {
        u["code"]: (u["complaint_levels"], u["complaint_levels_in_force"])
        for u in httpx.get(f"{srv.url}/api/v1/units", headers=auth_header(admin)).json()
    }
    assert listed == {"A": ([1], [1]), "A1": ([2, 3], [2, 3]), "A1a": (None, [2, 3]), "B": (None, [1, 2])}
    # null follows the unit above again.
    reply = patch(srv.url, admin, "A1", {"complaint_levels": None})
    assert (reply.json()["complaint_levels"], reply.json()["complaint_levels_in_force"]) == (None, [1])
    assert opened("tp-a1", 3) == []


def test_no_action_for_a_suspect_response(org: Org, start_server) -> None:
    srv = start_server(org.db)
    case = {"case_ref": "HS-1", "officer": "OFF-1"}
    first = post(srv.url, "tp-a1", {"overall": 1}, **case)
    assert first.status_code == 201
    # The honeypot, and a second rating of a case a verified reference claimed: stored, flagged, no action.
    signed = httpx.post(
        f"{srv.url}/api/v1/touchpoints/tp-a1/case-links",
        json={"case_ref": "HS-2"},
        headers=auth_header(org.tokens["manager_a1"]),
    ).json()
    form = {"lang": "en", "q.overall": "1", "case_ref": "HS-2", "case_sig": signed["sig"]}
    assert httpx.post(f"{srv.url}/s/tp-a1", data=form).status_code == 201
    assert httpx.post(f"{srv.url}/s/tp-a1", data={**form, "case_sig": ""}).status_code == 201
    honeypot = httpx.post(f"{srv.url}/s/tp-a1", data={"lang": "en", "q.overall": "1", "website": "x"})
    assert honeypot.status_code == 201
    stored = rows(
        org,
        "SELECT r.flags, count(a.id) AS actions FROM responses r LEFT JOIN actions a"
        " ON a.response_id = r.id GROUP BY r.id ORDER BY r.server_time",
    )
    assert [(json.loads(r["flags"]), r["actions"]) for r in stored] == [
        ([], 1),
        ([], 1),
        (["duplicate_case"], 0),
        (["honeypot"], 0),
    ]
    assert "corrective action" not in honeypot.text


def test_a_third_party_rule_for_the_response_takes_precedence(tmp_path: Path, org: Org, start_server) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "refunds.py").write_text(
        textwrap.dedent(
            """
            from feedback import hookimpl
            from feedback.models import ActionRequest

            @hookimpl
            def evaluate_triggers(response):
                if response is None or "refund" not in (response.answers.get("comment") or ""):
                    return None
                return ActionRequest(kind="work_order", source_key=f"refund:{response.id}", unit=response.unit,
                                     title="Refund", response_id=response.id)
            """
        )
    )
    srv = start_server(org.db, feedback_plugins_dir=str(folder))
    refund = post(srv.url, "tp-a1", {"overall": 1, "comment": "refund please"})
    assert [a["kind"] for a in actions_of(org, refund.json()["id"])] == ["work_order"]
    plain = post(srv.url, "tp-a1", {"overall": 1})
    assert [a["kind"] for a in actions_of(org, plain.json()["id"])] == ["complaint"]


@pytest.mark.parametrize(
    "value",
    [[0], [6], [1, 1], "1,2", [True], {"1": True}, [1.5], 2, [None]],
)
def test_bad_complaint_levels_name_the_field(shared_org: Org, server: Server, value: Any) -> None:
    before = rows(shared_org, "SELECT * FROM units ORDER BY code")
    reply = patch(server.url, shared_org.tokens["admin"], "A1", {"complaint_levels": value})
    assert reply.status_code == 400, reply.text
    assert reply.json()["field"] == "complaint_levels" and reply.json()["detail"].startswith("complaint_levels")
    assert rows(shared_org, "SELECT * FROM units ORDER BY code") == before


def test_complaint_levels_are_set_by_admins_and_managers_of_the_subtree(shared_org: Org, server: Server) -> None:
    tokens = shared_org.tokens
    assert patch(server.url, tokens["manager_a1"], "A1a", {"complaint_levels": [1]}).status_code == 200
    assert patch(server.url, tokens["manager_a1"], "A", {"complaint_levels": [1]}).status_code == 403
    assert patch(server.url, tokens["manager_a1"], "B", {"complaint_levels": [1]}).status_code == 403
    assert patch(server.url, tokens["viewer_b"], "B", {"complaint_levels": [1]}).status_code == 403
    assert httpx.patch(f"{server.url}/api/v1/units/B", json={"complaint_levels": [1]}).status_code == 401
    assert rows(shared_org, "SELECT code, complaint_levels FROM units WHERE complaint_levels IS NOT NULL") == [
        {"code": "A1a", "complaint_levels": "[1]"}
    ]


# -- the thank-you page ----------------------------------------------------------------------------

PROMISE = {
    "en": "A corrective action was opened for your rating. The unit will report back within 5 working days, by {date}.",
    "vi": "Một hành động khắc phục đã được mở cho đánh giá của bạn. "
    "Đơn vị sẽ phản hồi trong vòng 5 ngày làm việc, chậm nhất ngày {date}.",
    "ru": "По вашей оценке открыто корректирующее действие. "
    "Подразделение сообщит о результатах до {date} (в течение 5 раб. дн.).",
    "zh": "已针对您的评价启动整改措施。本单位将在5个工作日内（{date}前）反馈处理结果。",
}
BABEL = {"en": "en", "vi": "vi", "ru": "ru", "zh": "zh_Hans"}
CONTACT_LINE = "Because you left a contact, the unit will tell you what was done."
COUNTS_LINE = "Your rating counts in this unit's satisfaction results, which its managers review."


def submit(url: str, token: str, lang: str, **fields: str) -> httpx.Response:
    return httpx.post(f"{url}/s/{token}?lang={lang}", data={"lang": lang, **fields})


def text_of(page: str) -> str:
    """The page's text with its whitespace folded, as a reader sees it."""
    import re

    return " ".join(re.sub(r"<[^>]+>", " ", page).replace("&#39;", "'").split())


@pytest.mark.parametrize("lang", list(PROMISE))
def test_the_thank_you_page_promises_the_action_that_was_opened(org: Org, start_server, lang: str) -> None:
    srv = start_server(org.db)
    assert patch(srv.url, org.tokens["admin"], "A1", {"action_days": 5, "country": "VN"}).status_code == 200
    page = submit(srv.url, "tp-a1", lang, **{"q.overall": "1"})
    assert page.status_code == 201
    [action] = rows(org, "SELECT due FROM actions")
    promise = PROMISE[lang].format(date=format_date(date.fromisoformat(action["due"]), "long", locale=BABEL[lang]))
    assert " ".join(promise.split()) in text_of(page.text)
    receipt = rows(org, "SELECT receipt FROM responses")[0]["receipt"]
    assert f'href="/r/{receipt}?lang={lang}"' in page.text


def test_the_thank_you_page_promises_nothing_when_nothing_was_opened(org: Org, start_server) -> None:
    srv = start_server(org.db)
    contact = {"q.contact": "me@example.org", "contact_consent": "1"}
    good = text_of(submit(srv.url, "tp-a1", "en", **{"q.overall": "5"}, **contact).text)
    assert "corrective action" not in good and CONTACT_LINE not in good and COUNTS_LINE in good
    # Switched off for the unit: a level-1 rating opens nothing, and the page says nothing of an action.
    assert patch(srv.url, org.tokens["admin"], "A1", {"complaint_levels": []}).status_code == 200
    bad = text_of(submit(srv.url, "tp-a1", "en", **{"q.overall": "1"}, **contact).text)
    assert "corrective action" not in bad and "report back" not in bad and CONTACT_LINE not in bad
    assert rows(org, "SELECT count(*) AS n FROM actions")[0]["n"] == 0
    # Where one opens, a contact left with it is promised the call-back.
    assert patch(srv.url, org.tokens["admin"], "A1", {"complaint_levels": [1]}).status_code == 200
    opened = text_of(submit(srv.url, "tp-a1", "en", **{"q.overall": "1"}, **contact).text)
    assert "A corrective action was opened for your rating." in opened and CONTACT_LINE in opened


def test_a_resent_form_is_told_what_the_first_one_opened(org: Org, start_server) -> None:
    srv = start_server(org.db)
    form = {"form_id": str(uuid.uuid4()), "q.overall": "2"}
    first = submit(srv.url, "tp-a1", "en", **form)
    again = submit(srv.url, "tp-a1", "en", **form)
    assert (first.status_code, again.status_code) == (201, 200)
    assert "Your rating was already recorded." in again.text
    assert "A corrective action was opened for your rating." in text_of(again.text)
    assert rows(org, "SELECT count(*) AS n FROM actions")[0]["n"] == 1


def test_a_jurisdictions_action_is_the_one_promised(preset_org: Org, start_server) -> None:
    srv = start_server(preset_org.db)
    page = text_of(submit(srv.url, "tp-hc", "zh", **{"q.overall": "1"}).text)
    assert "已针对您的评价启动整改措施。" in page
    [action] = rows(preset_org, "SELECT kind FROM actions WHERE touchpoint = 'tp-hc'")
    assert action["kind"] == "work_order"


# -- the unit's admin page -------------------------------------------------------------------------

LEGEND = {"vi": "Mức đánh giá mở phản ánh", "ru": "Уровни жалобы", "zh": "投诉等级", "en": "Complaint levels"}


def test_the_unit_page_shows_and_sets_the_complaint_levels(org: Org, start_server) -> None:
    srv = start_server(org.db)
    add_user(org.db, "mai", "correct horse 1", "manager", "A1")
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        sign_in(client, srv, "mai", "correct horse 1")
        for lang, legend in LEGEND.items():
            page = client.get(f"/manage/admin/units/A1a?lang={lang}")
            assert page.status_code == 200 and legend in page.text
        assert 'id="f-complaint_inherit" name="complaint_mode" type="radio" value="inherit" checked' in page.text

        def save(code: str, **fields: str) -> httpx.Response:
            form = {"_csrf_token": csrf_token(client, f"/manage/admin/units/{code}"), "owner": "", "action_days": ""}
            return client.post(f"/manage/admin/units/{code}", data={**form, **fields})

        assert save("A1", complaint_mode="own", complaint_level_1="1", complaint_level_3="1").status_code == 303
        assert save("A1a", complaint_mode="own").status_code == 303  # nothing ticked: no complaints
        levels = {r["code"]: r["complaint_levels"] for r in rows(org, "SELECT code, complaint_levels FROM units")}
        assert (levels["A1"], levels["A1a"]) == ("[1,3]", "[]")
        page = client.get("/manage/admin/units/A1a?lang=en").text
        assert "As the unit above (levels: 1, 3)" in page
        assert 'id="f-complaint_own" name="complaint_mode" type="radio" value="own" checked' in page
        # A post without the choice (an older form) leaves the setting alone; "inherit" follows the unit above.
        assert save("A1a").status_code == 303
        assert rows(org, "SELECT complaint_levels FROM units WHERE code = 'A1a'")[0]["complaint_levels"] == "[]"
        assert save("A1a", complaint_mode="inherit").status_code == 303
        assert rows(org, "SELECT complaint_levels FROM units WHERE code = 'A1a'")[0]["complaint_levels"] is None
        refused = save("A1", complaint_mode="sometimes")
        assert refused.status_code == 400 and 'aria-invalid="true"' in refused.text
        assert rows(org, "SELECT complaint_levels FROM units WHERE code = 'A1'")[0]["complaint_levels"] == "[1,3]"
