"""Unit and service names in the reader's language: the reader's, else English, else the unit's own, else any.

One function (`feedback.i18n.name_in`, through `Snapshot.unit_name` / `Snapshot.service_name`) picks every
name a person reads: the survey page, the manager app, posters, the review pack and mail."""

from __future__ import annotations

import sqlite3

import httpx
import pytest

from feedback import organisation
from feedback.catalog import Snapshot, load_snapshot
from feedback.i18n import name_in
from feedback.posters import service_name as poster_service_name
from feedback.review_pack import service_label as review_service_label
from feedback.web.manage.dashboard import service_label as dashboard_service_label
from tests.conftest import Org, Server, default_plugins, make_org
from tests.manage_helpers import add_user, sign_in

CIVIL = {"vi": "Đăng ký hộ tịch", "en": "Civil registration"}  # no Russian, no Chinese
LICENCE = {"vi": "Cấp giấy phép lái xe", "zh": "驾驶证核发"}  # neither Russian nor English


def test_name_in_falls_back_in_order() -> None:
    names = {"vi": "Đơn vị", "en": "Unit", "ru": "Отдел"}
    assert name_in(names, "ru", "vi", "Đơn vị") == "Отдел"  # the reader's language
    assert name_in(CIVIL, "ru", "vi", "Đăng ký hộ tịch") == "Civil registration"  # then English
    assert name_in(LICENCE, "ru", "vi", "Cấp giấy phép lái xe") == "Cấp giấy phép lái xe"  # then the unit's own
    assert name_in({"zh": "驾驶证核发"}, "ru", "vi", "Giấy phép") == "Giấy phép"  # the record's one name
    assert name_in({"zh": "驾驶证核发"}, "ru") == "驾驶证核发"  # then whatever exists
    assert name_in({"en": ""}, "ru", None, "") == ""
    assert name_in(None, "zh", "vi", "Quầy") == "Quầy"


@pytest.fixture(scope="module")
def named_org(tmp_path_factory: pytest.TempPathFactory) -> Org:
    """make_org, with services of Vietnamese unit A1 named in some languages only and a counter for each."""
    org = make_org(tmp_path_factory.mktemp("names") / "feedback.db")
    conn = sqlite3.connect(org.db, isolation_level=None)
    conn.execute("BEGIN")
    organisation.add_unit(conn, "V", "Sở Tư pháp", lang="vi", tz="Asia/Ho_Chi_Minh", names={"vi": "Sở Tư pháp"})
    organisation.add_service(conn, "CIV", CIVIL["vi"], agency="V", names=CIVIL)
    organisation.add_service(conn, "LIC", LICENCE["vi"], agency="V", names=LICENCE)
    for code in ("CIV", "LIC"):
        organisation.add_touchpoint(conn, "V", f"Quầy {code}", "csat", counter="2", service=code, token=f"tp-{code}")
    conn.execute("COMMIT")
    conn.close()
    return org


def snapshot_of(org: Org) -> Snapshot:
    conn = sqlite3.connect(org.db)
    conn.row_factory = sqlite3.Row
    try:
        return load_snapshot(conn, default_plugins())
    finally:
        conn.close()


def test_snapshot_names_for_each_reader(named_org: Org) -> None:
    snapshot = snapshot_of(named_org)
    assert snapshot.service_name("CIV", "ru") == "Civil registration"
    assert snapshot.service_name("CIV", "zh") == "Civil registration"
    assert snapshot.service_name("CIV", "vi") == "Đăng ký hộ tịch"
    assert snapshot.service_name("LIC", "ru") == "Cấp giấy phép lái xe"  # no English: the agency's own language
    assert snapshot.service_name("LIC", "zh") == "驾驶证核发"
    assert snapshot.service_name("S1", "ru") == "Đăng ký"  # only its one name
    assert snapshot.service_name("NOPE", "ru") == "NOPE"
    assert snapshot.unit_name("A1", "ru") == "Unit A1"  # A1 is named in vi and en
    assert snapshot.unit_name("B", "vi") == "Пост Б"  # B only in its own Russian
    assert snapshot.unit_name(None, "vi") == ""
    # Every page that names a service asks the same function.
    for lang, expected in (("ru", "Civil registration"), ("vi", "Đăng ký hộ tịch")):
        assert dashboard_service_label(snapshot, "CIV", lang) == expected
        assert poster_service_name(snapshot, "CIV", lang) == expected
        assert review_service_label(snapshot, "CIV", lang, str) == expected


@pytest.fixture(scope="module")
def names_server(named_org: Org):
    srv = Server(named_org.db).start()
    yield srv
    srv.stop()


@pytest.mark.parametrize("lang", ["ru", "zh"])
def test_survey_page_names_in_english_before_vietnamese(names_server: Server, lang: str) -> None:
    page = httpx.get(f"{names_server.url}/s/tp-CIV?lang={lang}").text
    assert "Civil registration" in page
    assert "Đăng ký hộ tịch" not in page
    page = httpx.get(f"{names_server.url}/s/tp-a1?lang={lang}").text  # unit A1: vi and en
    assert "Unit A1" in page and "Đơn vị A1" not in page
    page = httpx.get(f"{names_server.url}/s/tp-LIC?lang={lang}").text
    expected = "驾驶证核发" if lang == "zh" else "Cấp giấy phép lái xe"
    assert expected in page


def test_manager_pages_name_services_in_the_readers_language(named_org: Org, names_server: Server) -> None:
    add_user(named_org.db, "olga", "correct horse 1", "admin", lang="ru")
    with httpx.Client(base_url=names_server.url) as client:
        sign_in(client, names_server, "olga", "correct horse 1")
        page = client.get("/manage/admin/services?lang=ru")
    assert page.status_code == 200
    assert "Civil registration" in page.text and "Đăng ký hộ tịch" not in page.text
