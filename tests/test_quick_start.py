"""The README's quick start, as a newcomer runs it: `feedback demo` into demo.json, a server over it, the
landing page, the sign-in users the summary prints, and every command of the "Try:" block run as
written (only the address is this server's), each answer checked against what the README promises."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
from datetime import date

import httpx
import pytest

from tests.conftest import ARTIFACTS, ROOT, Server, axe_violations, run_cli, save_screenshot
from tests.manage_helpers import sign_in

README = ROOT / "README.md"
DAYS = 35  # more than a month, so a month view always spans two months; the README's demo has 90


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("quick_start")
    made = run_cli("demo", "--db", str(folder / "demo.db"), "--force", "--days", str(DAYS))
    assert made.returncode == 0, made.stderr[-2000:]
    (folder / "demo.json").write_text(made.stdout, encoding="utf-8")  # `… > demo.json`
    summary = json.loads(made.stdout)  # stdout is the summary alone, so the README's json.load works
    server = Server(folder / "demo.db").start()
    yield folder, summary, server
    server.stop()


def try_block() -> list[str]:
    """The shell lines of the quick start's "Try:" block."""
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    found = next(block for block in blocks if "curl -s http://127.0.0.1:8000/healthz" in block)
    return [line for line in found.splitlines() if line.strip()]


def test_the_readme_commands_return_what_they_promise(demo) -> None:
    folder, summary, server = demo
    lines = try_block()
    setup = [line for line in lines if not line.startswith("curl ")]
    assert setup == [line for line in lines if line.startswith("TOKEN=")], "only TOKEN=… besides the curls"
    answers = {}
    for line in (line for line in lines if line.startswith("curl ")):
        command = "\n".join([*setup, line.replace("http://127.0.0.1:8000", server.url)])
        done = subprocess.run(["bash", "-c", command], cwd=folder, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (line, done.stderr)
        path = re.search(r"8000(/[^\s\"]*)", line).group(1)
        answers[path] = json.loads(done.stdout)
    assert answers["/healthz"]["status"] == "ok"
    units = {unit["code"] for unit in answers["/api/v1/units"]}
    assert set(summary["roots"]) <= units and "HP-KV1" in units
    # "Hai Phong Customs' satisfaction month by month": months, more than one.
    months = answers["/api/v1/satisfaction?unit=HP&by=month"]
    keys = [row["key"] for row in months["rows"]]
    assert len(keys) >= 2 and all(re.fullmatch(r"\d{4}-\d{2}", key) for key in keys), keys
    assert months["from"].endswith("-01") and sum(row["n"] for row in months["rows"]) == months["total"]["n"]
    assert date.fromisoformat(months["from"]) <= date.fromisoformat(months["to"])
    # "HP-KV1's objectives": its 30-day objective among them.
    objectives = answers["/api/v1/objectives?unit=HP-KV1"]
    assert any(o["unit"] == "HP-KV1" and o["period"] == "rolling_30" for o in objectives)
    # "Hai Phong's overdue corrective actions": some, and every one overdue, in Hai Phong.
    overdue = answers["/api/v1/actions?unit=HP&overdue=true"]
    assert overdue and all(action["overdue"] for action in overdue)
    assert all(action["unit"].startswith("HP") for action in overdue)


def test_the_summary_signs_an_admin_and_a_unit_manager_in(demo) -> None:
    folder, summary, server = demo
    users = summary["sign_in"]
    assert [(u["user"], u["role"], u["unit"]) for u in users] == [
        ("admin", "admin", None),
        ("hp-kv1.lead", "manager", "HP-KV1"),
    ]
    assert len({u["password"] for u in users}) == 2 and all(len(u["password"]) >= 12 for u in users)
    for user in users:
        client = httpx.Client(base_url=server.url, timeout=15)
        sign_in(client, server, user["user"], user["password"])
        page = client.get("/manage/")
        assert page.status_code == 200 and user["user"] in page.text
    # Kept as argon2id hashes only: the passwords are in the summary and nowhere in the database.
    conn = sqlite3.connect(folder / "demo.db")
    hashes = dict(conn.execute("SELECT name, password_hash FROM users WHERE name IN ('admin', 'hp-kv1.lead')"))
    conn.close()
    assert all(value.startswith("$argon2id$") for value in hashes.values()) and len(hashes) == 2
    assert not any(u["password"].encode() in (folder / "demo.db").read_bytes() for u in users)


@pytest.mark.parametrize(
    ("lang", "title", "sign_in_text"),
    [
        ("vi", "Dịch vụ lấy ý kiến người dân", "Đăng nhập ứng dụng quản lý"),
        ("ru", "Сервис оценки качества услуг", "Войти в приложение руководителя"),
        ("zh", "服务评价系统", "登录管理端"),
        ("en", "Feedback service", "Sign in to the manager app"),
    ],
)
def test_the_landing_page_says_where_to_go(demo, lang: str, title: str, sign_in_text: str) -> None:
    _folder, summary, server = demo
    accept = {"vi": "vi-VN,vi;q=0.9", "ru": "ru-RU,ru;q=0.9", "zh": "zh-CN,zh;q=0.9", "en": "en-GB,en;q=0.9"}[lang]
    for page in (
        httpx.get(f"{server.url}/", headers={"Accept-Language": accept}, timeout=15),
        httpx.get(f"{server.url}/", params={"lang": lang}, timeout=15),
    ):
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert f"<title>{title}</title>" in page.text and sign_in_text in page.text
        assert 'href="/manage/"' in page.text and 'href="/schema"' in page.text
        linked = set(re.findall(r'href="(/s/[^"]+)"', page.text))
        assert linked == set(summary["survey_pages"].values())  # one survey page per agency
    for href in ["/schema", *summary["survey_pages"].values()]:
        assert httpx.get(f"{server.url}{href}", timeout=15).status_code == 200


def test_the_landing_page_of_an_installation_lists_no_survey(server) -> None:
    page = httpx.get(f"{server.url}/", timeout=15)
    assert page.status_code == 200 and 'href="/manage/"' in page.text
    assert "/s/" not in page.text  # only the demo offers its survey pages on the landing page


def test_the_landing_page_passes_axe_on_a_small_phone(demo, browser) -> None:
    _folder, _summary, server = demo
    context = browser.new_context(viewport={"width": 320, "height": 640}, locale="vi-VN", bypass_csp=True)
    try:
        page = context.new_page()
        page.goto(f"{server.url}/")
        assert page.evaluate("document.documentElement.scrollWidth") <= 320  # no sideways scrolling
        ARTIFACTS.mkdir(exist_ok=True)
        save_screenshot(page, ARTIFACTS / "landing_vi_320.png")
        assert axe_violations(page, impacts=None) == []
    finally:
        context.close()


def test_every_text_of_the_landing_page_is_translated() -> None:
    from feedback.i18n import gettext_for

    template = (ROOT / "feedback" / "web" / "templates" / "landing.html").read_text(encoding="utf-8")
    messages = set(re.findall(r'_\("([^"]+)"\)', template))
    assert len(messages) >= 8
    for lang in ("vi", "ru", "zh"):
        _ = gettext_for(lang)
        assert [message for message in messages if _(message) == message] == [], lang
