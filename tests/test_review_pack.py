"""The management-review pack: a real server renders the PDF; its text layer is read back with pypdfium2."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pypdfium2 as pdfium
import pytest

from feedback import objectives, organisation
from feedback.review_pack import fmt_day, fmt_share
from tests.conftest import ARTIFACTS, Server, auth_header, make_org

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
TODAY = datetime.now(UTC).astimezone(TZ).date()
FROM = (TODAY - timedelta(days=27)).isoformat()
TO = TODAY.isoformat()
TARGET = 0.9
LEVELS = (5, 5, 4, 5, 2, 5, 4, 1, 5, 5)


def pdf_text(data: bytes) -> str:
    document = pdfium.PdfDocument(data)
    try:
        parts = []
        for index in range(len(document)):
            page = document[index]
            text_page = page.get_textpage()
            parts.append(text_page.get_text_range())
            text_page.close()
            page.close()
        return "\n".join(parts)
    finally:
        document.close()


def squash(text: str) -> str:
    """Text without any kind of space or line break (extraction may break lines and CLDR uses NBSPs)."""
    return "".join(ch for ch in text if not ch.isspace() and ch not in "\u00a0\u202f\u2009\ufffe\u0002")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    org = make_org(tmp_path_factory.mktemp("pack") / "feedback.db")
    conn = sqlite3.connect(org.db)
    conn.execute("BEGIN")
    objective = objectives.create_objective(
        conn,
        "A1",
        {
            "metric": "satisfaction",
            "target": TARGET,
            "period": "month",
            "min_n": 5,
            "title": "Satisfaction A1",
            "valid_from": (TODAY - timedelta(days=40)).isoformat(),
        },
        actor="root",
        today=TODAY,
    )
    organisation.set_exposure(conn, "A1", "S1", TO, served=50, offered=50)
    conn.execute("COMMIT")
    conn.close()
    server = Server(org.db).start()
    for level in LEVELS:
        response = httpx.post(
            f"{server.url}/api/v1/responses",
            timeout=10,
            json={"touchpoint": "tp-a1", "answers": {"overall": level}, "service": "S1"},
        )
        assert response.status_code == 201, response.text
    yield org, server, objective
    server.stop()


def _pdf(served, lang: str) -> tuple[bytes, str]:
    org, server, _ = served
    response = httpx.get(
        f"{server.url}/api/v1/reports/management-review.pdf",
        headers=auth_header(org.tokens["admin"]),
        params={"unit": "A1", "from": FROM, "to": TO, "lang": lang},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"management_review_{lang}.pdf").write_bytes(response.content)
    return response.content, pdf_text(response.content)


@pytest.mark.parametrize(
    ("lang", "unit_name", "title"),
    [
        ("vi", "Đơn vị A1", "Xem xét của lãnh đạo"),
        ("zh", "Đơn vị A1", "管理评审"),
        ("ru", "Đơn vị A1", "Анализ со стороны руководства"),
        ("en", "Unit A1", "Management review"),
    ],
)
def test_pdf_text_holds_unit_period_and_objective_figures(served, lang: str, unit_name: str, title: str) -> None:
    org, server, objective = served
    _, text = _pdf(served, lang)
    flat = squash(text)
    assert squash(unit_name) in flat
    assert squash(title) in flat
    assert squash(fmt_day(FROM, lang)) in flat and squash(fmt_day(TO, lang)) in flat
    status = httpx.get(
        f"{server.url}/api/v1/objectives/{objective}/status",
        params={"at": TO},
        headers=auth_header(org.tokens["admin"]),
        timeout=10,
    ).json()
    assert status["value"] == pytest.approx(sum(1 for level in LEVELS if level >= 4) / len(LEVELS))
    assert "≥" + squash(fmt_share(TARGET, lang)) in flat  # the target, with its comparator as people write it
    assert squash(fmt_share(status["value"], lang)) in flat  # the value at the period end
    assert squash(fmt_share(status["ci95"][0], lang)) in flat and squash(fmt_share(status["ci95"][1], lang)) in flat
    assert "Satisfaction A1" in text


def test_pdf_language_defaults_to_the_unit_language(served) -> None:
    org, server, _ = served
    response = httpx.get(
        f"{server.url}/api/v1/reports/management-review.pdf",
        headers=auth_header(org.tokens["admin"]),
        params={"unit": "A1", "from": FROM, "to": TO},
        timeout=60,
    )
    assert response.status_code == 200
    assert squash("Xem xét của lãnh đạo") in squash(pdf_text(response.content))  # A1 speaks Vietnamese
    assert 'filename="management_review_A1_' in response.headers["content-disposition"]


def test_pdf_counts_response_rates_and_actions(served) -> None:
    _, text = _pdf(served, "en")
    flat = squash(text)
    # Exposure: 50 served, 10 respondents → 20.0 %.
    assert squash("Customers served") in flat and squash(fmt_share(10 / 50, "en")) in flat
    # The level-1 and level-2 answers of a CSAT touchpoint open no action by themselves; the section is there.
    assert squash("4. Corrective actions") in flat


def test_pdf_for_a_unit_without_data_still_renders(served) -> None:
    org, server, _ = served
    response = httpx.get(
        f"{server.url}/api/v1/reports/management-review.pdf",
        headers=auth_header(org.tokens["admin"]),
        params={"unit": "B", "from": FROM, "to": TO, "lang": "ru"},
        timeout=60,
    )
    assert response.status_code == 200
    text = squash(pdf_text(response.content))
    assert squash("Пост Б") in text
