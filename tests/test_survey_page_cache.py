"""The survey page's cache: a view is the cached page with its own form id (and case), its headers made
ahead yet exact, and a page follows changes to what it shows (a renamed service or unit) without a restart."""

from __future__ import annotations

import re
import sqlite3
from urllib.parse import quote

import httpx
import msgspec

from feedback.web.survey_page import read_form_id
from tests.conftest import Org, Server, poll_until

FORM_ID = re.compile(r'name="form_id" value="([^"]+)"')


def test_each_view_is_the_cached_page_with_its_own_signed_form_id(server: Server) -> None:
    first, second = (httpx.get(f"{server.url}/s/tp-a1?lang=en") for _ in range(2))
    ids = [FORM_ID.search(reply.text)[1] for reply in (first, second)]
    assert ids[0] != ids[1]
    assert all(read_form_id(form_id, "test-secret")[1] is not None for form_id in ids)  # signed by this server
    assert first.text.replace(ids[0], "") == second.text.replace(ids[1], "")
    for reply in (first, second):
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "text/html; charset=utf-8"
        assert reply.headers["cache-control"] == "private, no-cache"
        assert int(reply.headers["content-length"]) == len(reply.content)
        assert "frame-ancestors 'none'" in reply.headers["content-security-policy"]
        assert reply.headers["x-content-type-options"] == "nosniff"


def test_a_case_in_any_script_is_escaped_and_counted_in_bytes(server: Server) -> None:
    case = "Дело №5 <b>&"
    reply = httpx.get(f"{server.url}/s/tp-a1", params={"lang": "ru", "case": case, "sig": "подпись"})
    assert reply.status_code == 200
    assert int(reply.headers["content-length"]) == len(reply.content)  # bytes, not characters
    assert "Дело №5 &lt;b&gt;&amp;" in reply.text and "<b>&" not in reply.text
    assert f"&amp;case={quote(case, safe='')}&amp;sig={quote('подпись', safe='')}" in reply.text  # language links
    assert 'name="case_sig" value="подпись"' in reply.text
    assert "__CASE" not in reply.text and "__FORM_ID__" not in reply.text
    plain = httpx.get(f"{server.url}/s/tp-a1?lang=ru")
    assert "case=" not in plain.text and "__CASE" not in plain.text


def test_the_page_follows_a_renamed_service_and_unit_without_a_restart(start_server, org: Org) -> None:
    srv = start_server(org.db)
    page = httpx.get(f"{srv.url}/s/tp-a1?lang=ru").text
    assert "Đăng ký" in page and "Unit A1" in page
    # Another process (an admin's command, a second worker) renames them in the database.
    conn = sqlite3.connect(org.db)
    with conn:
        names = msgspec.json.encode({"vi": "Đăng ký", "ru": "Регистрация"}).decode()
        conn.execute("UPDATE services SET names = ? WHERE code = 'S1'", (names,))
        names = msgspec.json.encode({"vi": "Đơn vị A1", "ru": "Отдел А1"}).decode()
        conn.execute("UPDATE units SET names = ? WHERE code = 'A1'", (names,))
    conn.close()

    def renamed() -> str | None:
        text = httpx.get(f"{srv.url}/s/tp-a1?lang=ru").text
        return text if "Регистрация" in text else None

    page = poll_until(renamed, timeout=20, what="the renamed service on the page")
    assert "Отдел А1" in page and "Unit A1" not in page
