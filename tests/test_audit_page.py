"""`/manage/audit`: the audit log page for administrators and auditors, in the four languages, filtered;
refused to other roles; every text of it translated."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

from feedback.i18n import gettext_for
from tests.conftest import ROOT, Org, Server, make_org, rows
from tests.manage_helpers import add_user, sign_in

PASSWORD = "correct horse 1"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Org, Server]]:
    org = make_org(tmp_path_factory.mktemp("audit-page") / "feedback.db")
    add_user(org.db, "root_admin", PASSWORD, "admin")
    add_user(org.db, "aud_b", PASSWORD, "auditor", "B")
    add_user(org.db, "mai", PASSWORD, "manager", "A1")
    server = Server(org.db, env={"FEEDBACK_JOBS": "0"}).start()
    yield org, server
    server.stop()


@contextmanager
def client_for(server: Server, user: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert sign_in(client, server, user, PASSWORD).status_code == 303
        yield client


@pytest.mark.parametrize("lang", ["vi", "ru", "zh", "en"])
def test_the_page_lists_entries_in_each_language(served: tuple[Org, Server], lang: str) -> None:
    org, server = served
    _ = gettext_for(lang)
    with client_for(server, "root_admin") as client:
        page = client.get("/manage/audit", params={"lang": lang})
    assert page.status_code == 200, page.text
    html = page.text
    assert f"<h1>{_('Audit log')}</h1>" in html
    assert f'href="/manage/audit" aria-current="page">{_("Audit log")}<' in html
    newest = rows(org, "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")[0]
    assert newest["hash"] in html and f'id="entry-{newest["seq"]}"' in html
    assert _("Record kind") in html and _("Audit log entries, newest first") in html
    if lang != "en":
        assert _("Audit log") != "Audit log", "translated"


def test_filters_scope_and_refusals(served: tuple[Org, Server]) -> None:
    org, server = served
    with client_for(server, "root_admin") as admin:
        units = admin.get("/manage/audit", params={"kind": "touchpoint", "lang": "en"})
        bad = admin.get("/manage/audit", params={"from": "yesterday", "lang": "ru"})
        nothing = admin.get("/manage/audit", params={"actor": "nobody-at-all", "lang": "en"})
        beyond = [
            admin.get("/manage/audit", params={**bound, "lang": "en"})
            for bound in ({"to": "9999-12-31"}, {"from": "0001-01-01T00:00:00+01:00"})
        ]
    seqs = {int(s) for s in re.findall(r'id="entry-(\d+)"', units.text)}
    expected = {row["seq"] for row in rows(org, "SELECT seq FROM audit_log WHERE kind = 'touchpoint'")}
    assert seqs == expected and seqs
    assert bad.status_code == 400 and gettext_for("ru")("This filter is not valid: %(field)s.") % {
        "field": gettext_for("ru")("From")
    } in bad.text.replace("&#34;", '"')
    assert 'id="no-entries"' in nothing.text
    for reply, field in zip(beyond, ("To", "From"), strict=True):
        assert reply.status_code == 400 and f"This filter is not valid: {field}." in reply.text, reply.text[:300]
    with client_for(server, "aud_b") as auditor:
        scoped = auditor.get("/manage/audit", params={"lang": "en"})
    shown = {int(s) for s in re.findall(r'id="entry-(\d+)"', scoped.text)}
    of_b = {row["seq"] for row in rows(org, "SELECT seq FROM audit_log WHERE unit = 'B'")}
    assert scoped.status_code == 200 and shown == of_b and shown
    with client_for(server, "mai") as manager:
        refused = manager.get("/manage/audit")
        dashboard = manager.get("/manage/")
    assert refused.status_code == 403
    assert 'href="/manage/audit"' not in dashboard.text


def test_every_text_of_the_page_is_translated() -> None:
    sources = [
        (ROOT / "feedback" / "web" / "templates" / "manage" / "audit.html", "jinja2.ext:babel_extract"),
        (ROOT / "feedback" / "web" / "manage" / "audit_page.py", "python"),
    ]
    ids: set[str] = set()
    for path, method in sources:
        ids |= {message for _, message, _, _ in extract_from_file(method, str(path), keywords={"_": None, "N_": None})}
    assert len(ids) > 30
    for folder in ("vi", "ru", "zh_Hans"):
        translated: dict[str, str] = {}
        for po in sorted(Path(ROOT / "feedback" / "locales" / folder / "LC_MESSAGES").glob("*.po")):
            with po.open("rb") as handle:
                translated.update({m.id: m.string for m in read_po(handle) if m.id and m.string})
        missing = sorted(ids - set(translated))
        assert not missing, (folder, missing)
