"""The management-review pack: a real server renders the PDF; its text layer is read back with pypdfium2."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

import httpx
import pypdfium2 as pdfium
import pytest

from feedback import objectives, organisation
from feedback.review_pack import fmt_day, fmt_share
from tests.conftest import ARTIFACTS, Server, auth_header, make_org

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
TARGET = 0.9
LEVELS = (5, 5, 4, 5, 2, 5, 4, 1, 5, 5)


class Period(NamedTuple):
    """A1's day when a fixture stored its responses, and the 28 days ending on it: read when the fixture
    runs, not when the module is collected (a run may pass A1's midnight, 17:00 UTC, in between)."""

    today: date
    start: str
    end: str

    @classmethod
    def now(cls) -> Period:
        today = datetime.now(UTC).astimezone(TZ).date()
        return cls(today, (today - timedelta(days=27)).isoformat(), today.isoformat())


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
    period = Period.now()
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
            "valid_from": (period.today - timedelta(days=40)).isoformat(),
        },
        actor="root",
        today=period.today,
    )
    organisation.set_exposure(conn, "A1", "S1", period.end, served=50, offered=50)
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
    yield org, server, objective, period
    server.stop()


def _pdf(served, lang: str) -> tuple[bytes, str]:
    org, server, _, period = served
    response = httpx.get(
        f"{server.url}/api/v1/reports/management-review.pdf",
        headers=auth_header(org.tokens["admin"]),
        params={"unit": "A1", "from": period.start, "to": period.end, "lang": lang},
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
        # A1 is named in vi and en: a reader of another language gets the English name.
        ("zh", "Unit A1", "管理评审"),
        ("ru", "Unit A1", "Анализ со стороны руководства"),
        ("en", "Unit A1", "Management review"),
    ],
)
def test_pdf_text_holds_unit_period_and_objective_figures(served, lang: str, unit_name: str, title: str) -> None:
    org, server, objective, period = served
    _, text = _pdf(served, lang)
    flat = squash(text)
    assert squash(unit_name) in flat
    assert squash(title) in flat
    assert squash(fmt_day(period.start, lang)) in flat and squash(fmt_day(period.end, lang)) in flat
    status = httpx.get(
        f"{server.url}/api/v1/objectives/{objective}/status",
        params={"at": period.end},
        headers=auth_header(org.tokens["admin"]),
        timeout=10,
    ).json()
    assert status["value"] == pytest.approx(sum(1 for level in LEVELS if level >= 4) / len(LEVELS))
    assert "≥" + squash(fmt_share(TARGET, lang)) in flat  # the target, with its comparator as people write it
    assert squash(fmt_share(status["value"], lang)) in flat  # the value at the period end
    assert squash(fmt_share(status["ci95"][0], lang)) in flat and squash(fmt_share(status["ci95"][1], lang)) in flat
    assert "Satisfaction A1" in text


def test_pdf_language_defaults_to_the_unit_language(served) -> None:
    org, server, _, period = served
    response = httpx.get(
        f"{server.url}/api/v1/reports/management-review.pdf",
        headers=auth_header(org.tokens["admin"]),
        params={"unit": "A1", "from": period.start, "to": period.end},
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
    org, server, _, period = served
    response = httpx.get(
        f"{server.url}/api/v1/reports/management-review.pdf",
        headers=auth_header(org.tokens["admin"]),
        params={"unit": "B", "from": period.start, "to": period.end, "lang": "ru"},
        timeout=60,
    )
    assert response.status_code == 200
    text = squash(pdf_text(response.content))
    assert squash("Пост Б") in text


# -- every character of all four languages, targets at the precision they were set with ------------------
PRECISE_TARGET = 0.9947  # Guangxi's objective: 99.47 %, never "99.5 %"
PRECISE_TITLE = "广西壮族自治区政务服务满意率 ≥ 99.47 %"  # Chinese first, so its cell starts in the CJK face
PRECISE_LEVELS = (5, 5, 4, 5, 2, 5, 4, 1, 5, 5, 5, 4)


@pytest.fixture(scope="module")
def precise(tmp_path_factory: pytest.TempPathFactory):
    org = make_org(tmp_path_factory.mktemp("precise") / "feedback.db")
    period = Period.now()
    conn = sqlite3.connect(org.db)
    conn.execute("BEGIN")
    objectives.create_objective(
        conn,
        "A1",
        {
            "metric": "satisfaction",
            "target": PRECISE_TARGET,
            "period": "month",
            "min_n": 5,
            "title": PRECISE_TITLE,
            "valid_from": (period.today - timedelta(days=40)).isoformat(),
        },
        actor="root",
        today=period.today,
    )
    conn.execute("COMMIT")
    conn.close()
    server = Server(org.db).start()
    for level in PRECISE_LEVELS:
        response = httpx.post(
            f"{server.url}/api/v1/responses",
            timeout=10,
            json={"touchpoint": "tp-a1", "answers": {"overall": level}, "service": "S1"},
        )
        assert response.status_code == 201, response.text
    yield org, server, period
    server.stop()


def _percent(value: float, digits: int, lang: str) -> str:
    """A share as the pack should print it, formatted here straight with Babel."""
    from babel.numbers import format_percent

    locale = {"zh": "zh_Hans", "vi": "vi", "ru": "ru", "en": "en"}[lang]
    return format_percent(value, "#,##0." + "0" * digits + "%", locale=locale)


@pytest.mark.parametrize("lang", ["vi", "ru", "zh", "en"])
def test_pdf_prints_every_character_and_the_target_as_set(precise, lang: str) -> None:
    from feedback.i18n import gettext_for
    from feedback.rates import wilson

    org, server, period = precise
    response = httpx.get(
        f"{server.url}/api/v1/reports/management-review.pdf",
        headers=auth_header(org.tokens["admin"]),
        params={"unit": "A1", "from": period.start, "to": period.end, "lang": lang},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"management_review_precise_{lang}.pdf").write_bytes(response.content)
    flat = squash(pdf_text(response.content))
    _ = gettext_for(lang)
    unit = "Đơn vị A1" if lang == "vi" else "Unit A1"  # named in vi and en only: English for the others
    satisfied = sum(1 for level in PRECISE_LEVELS if level >= 4)
    low, high = wilson(satisfied, len(PRECISE_LEVELS))
    expected = [
        _("Management review"),
        _("Input to the management review (ISO 9001:2015, 9.3)"),
        _("2. Quality objectives at the end of the period"),
        # The cell wraps before "(": that line used to print the bracket as a glyph of the bold face.
        f"{PRECISE_TITLE} ({unit})",
        "≥" + _percent(PRECISE_TARGET, 2, lang),  # 99.47 %, as it was set
        # The value and its interval at the target's precision, so none is rounded across the target.
        _percent(satisfied / len(PRECISE_LEVELS), 2, lang),
        f"{_percent(low, 2, lang)} – {_percent(high, 2, lang)}",
        _("Not dissatisfied: %(share)s. Mean score: %(mean)s/100. Suspect responses kept out: %(n)s.").split("%")[0],
    ]
    for text in expected:
        assert squash(text) in flat, (lang, text)
    assert squash("≥" + _percent(PRECISE_TARGET, 1, lang)) not in flat  # the rounded target is gone


def test_fonts_cover_every_character_the_pack_prints() -> None:
    """Every character of the pack's catalogue in the four languages has a glyph in a face the pack embeds
    (Noto Sans, then the fallbacks): nothing can come out as a missing-glyph box."""
    from babel.messages.pofile import read_po
    from fontTools.ttLib import TTFont

    from feedback.posters import FONTS_DIR
    from feedback.review_pack import COMPARATOR

    faces = ("NotoSans-Regular.ttf", "NotoSans-Bold.ttf", "DroidSansFallbackFull.ttf", "DejaVuSans.ttf")
    covered: dict[str, set[int]] = {}
    for face in faces:
        with TTFont(FONTS_DIR / face, lazy=True) as font:
            covered[face] = set(font.getBestCmap())
    regular = covered["NotoSans-Regular.ttf"] | covered["DroidSansFallbackFull.ttf"] | covered["DejaVuSans.ttf"]
    bold = covered["NotoSans-Bold.ttf"] | covered["DroidSansFallbackFull.ttf"] | covered["DejaVuSans.ttf"]
    locales = FONTS_DIR.parent / "locales"
    texts = [*COMPARATOR.values(), "–—%‰#()[]/:;,.!?0123456789", PRECISE_TITLE]
    for locale in ("vi", "ru", "zh_Hans", "en"):
        with (locales / locale / "LC_MESSAGES" / "manage_reports.po").open("rb") as handle:
            texts.extend(str(message.string) for message in read_po(handle) if message.id and message.string)
    both = regular & bold
    missing = {ch for text in texts for ch in text if not ch.isspace() and ord(ch) not in both}
    assert not missing, sorted(missing)
