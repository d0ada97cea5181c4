"""Printable paper forms through a real server and the command line: each form's QR code decodes (as a
scanner would read it) to a serial registered with the survey version it carries, every question is
printed, in each of the four languages, and bad requests are refused naming the field."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pypdfium2 as pdfium
import pytest
import zxingcpp

from feedback import paper_forms, paper_pdf
from feedback.catalog import Snapshot
from feedback.errors import InvalidInput
from feedback.i18n import gettext_for, text_in
from feedback.models import LANGUAGES, ChoiceQuestion, RatingQuestion, SurveyDefinition, SurveyVersion, Touchpoint, Unit
from feedback_plugins.templates import register_survey_templates
from tests.conftest import BOTH_BACKENDS, Org, Server, auth_header, rows, run_cli
from tests.manage_helpers import add_user, sign_in

pytestmark = BOTH_BACKENDS

A4, A5 = (595.28, 841.89), (419.53, 595.28)  # points
TEMPLATES = {survey.slug: survey for survey in register_survey_templates()}
PDF_PATH = "/api/v1/touchpoints/{token}/paper-forms.pdf"


def get(server: Server, path: str, token: str | None = None, **params) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", params=params, headers=auth_header(token) if token else {}, timeout=60)


def pdf_pages(content: bytes) -> list[tuple[tuple[float, float], str, list[str]]]:
    """Each page's size in points, its text layer, and the QR codes found on it rendered at 200 dpi."""
    document = pdfium.PdfDocument(content)
    pages = []
    for index in range(len(document)):
        page = document[index]
        image = page.render(scale=200 / 72, grayscale=True).to_pil()
        codes = [code.text for code in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)]
        pages.append((page.get_size(), page.get_textpage().get_text_range(), codes))
    document.close()
    return pages


def squeezed(text: str) -> str:
    """Text with no white space: a printed text wraps where the page needs, a searched one does not."""
    return re.sub(r"\s+", "", text)


def registered(org: Org, serial: str) -> dict:
    found = rows(org, "SELECT * FROM paper_forms WHERE serial = ?", (serial,))
    assert found, f"serial {serial} was not registered"
    return found[0]


def forms_count(org: Org) -> int:
    return rows(org, "SELECT count(*) AS n FROM paper_forms")[0]["n"]


@pytest.mark.postgres_covered_elsewhere
def test_each_form_carries_its_registered_serial_in_a_qr_code(server: Server, shared_org: Org) -> None:
    reply = get(server, PDF_PATH.format(token="tp-a1"), shared_org.tokens["manager_a1"], count=3, paper="a5", lang="vi")
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/pdf"
    assert 'filename="paper-forms-tp-a1-vi-A5.pdf"' in reply.headers["content-disposition"]
    pages = pdf_pages(reply.content)
    assert len(pages) == 3
    serials = []
    for size, text, codes in pages:
        assert size == pytest.approx(A5, abs=0.5)
        [payload] = codes
        prefix, serial, slug, version = payload.split(":")
        assert (prefix, slug, version) == ("FBP1", "csat", "1")
        assert paper_forms.normalise_serial(serial) == serial
        assert serial in text  # printed as text too, for a clerk to type
        form = registered(shared_org, serial)
        assert (form["touchpoint"], form["unit"], form["survey"], form["survey_version"]) == ("tp-a1", "A1", "csat", 1)
        assert (form["lang"], form["paper"], form["printed_by"]) == ("vi", "A5", "lan")
        serials.append(serial)
    assert len(set(serials)) == 3


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.postgres_covered_elsewhere
def test_every_question_and_option_is_printed_in_each_language(server: Server, shared_org: Org, lang: str) -> None:
    reply = get(server, PDF_PATH.format(token="tp-a1"), shared_org.tokens["admin"], lang=lang)
    assert reply.status_code == 200, reply.text
    [(size, text, codes)] = pdf_pages(reply.content)
    assert size == pytest.approx(A4, abs=0.5) and len(codes) == 1
    page = squeezed(text)
    survey = TEMPLATES["csat"]
    expected = [text_in(survey.title, lang)]
    for question in survey.questions:
        expected.append(text_in(question.text, lang))
        if isinstance(question, ChoiceQuestion):
            expected.extend(text_in(option.text, lang) for option in question.options)
    expected.append(gettext_for(lang)(paper_pdf.DATE_HEADING))
    # Readers of the survey's other languages are told, in theirs, that the form exists in their language.
    expected.extend(gettext_for(other)(paper_pdf.OTHER_LANGUAGE) for other in LANGUAGES if other != lang)
    missing = [item for item in expected if squeezed(item) not in page]
    assert not missing, missing


@pytest.mark.postgres_covered_elsewhere
def test_ratings_print_their_numbers_and_words_and_the_touchpoints_language_is_the_default(
    server: Server, shared_org: Org
) -> None:
    reply = get(server, PDF_PATH.format(token="tp-b"), shared_org.tokens["admin"])
    [(_, text, [payload])] = pdf_pages(reply.content)
    form = registered(shared_org, payload.split(":")[1])
    assert form["lang"] == "ru" and form["survey"] == "vash_kontrol"
    page = squeezed(text)
    for question in TEMPLATES["vash_kontrol"].questions:
        assert squeezed(question.text["ru"]) in page
        if isinstance(question, RatingQuestion):
            assert all(squeezed(word) in page for word in (question.labels or {})["ru"])


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"count": "0"}, "count"),
        ({"count": "501"}, "count"),
        ({"count": "many"}, "count"),
        ({"paper": "A3"}, "paper"),
        ({"lang": "de"}, "lang"),
    ],
)
@pytest.mark.postgres_covered_elsewhere
def test_bad_parameters_are_400_naming_the_field_and_register_nothing(
    server: Server, shared_org: Org, params: dict, field: str
) -> None:
    before = forms_count(shared_org)
    reply = get(server, PDF_PATH.format(token="tp-a1"), shared_org.tokens["admin"], **params)
    assert reply.status_code == 400 and reply.json()["field"] == field, reply.text
    assert forms_count(shared_org) == before


@pytest.mark.postgres_covered_elsewhere
def test_forms_need_a_writer_of_the_touchpoints_subtree(server: Server, shared_org: Org) -> None:
    before = forms_count(shared_org)
    assert get(server, PDF_PATH.format(token="tp-a1")).status_code == 401
    other_unit = get(server, PDF_PATH.format(token="tp-b"), shared_org.tokens["manager_a1"])
    assert other_unit.status_code == 403 and other_unit.json()["field"] == "unit"
    # Scope first: a bad parameter for another unit's touchpoint tells nothing of its languages or state.
    probing = get(server, PDF_PATH.format(token="tp-b"), shared_org.tokens["manager_a1"], lang="xx")
    assert probing.status_code == 403 and probing.json()["field"] == "unit", probing.text
    viewer = get(server, PDF_PATH.format(token="tp-b"), shared_org.tokens["viewer_b"])
    assert viewer.status_code == 403 and viewer.json()["field"] == "role"
    unknown = get(server, PDF_PATH.format(token="nope"), shared_org.tokens["admin"])
    assert unknown.status_code == 404 and unknown.json()["field"] == "touchpoint"
    assert forms_count(shared_org) == before
    # Below the manager's unit: a touchpoint of A1a, by its kiosk's token.
    assert get(server, PDF_PATH.format(token="tp-a1a"), shared_org.tokens["manager_a1"]).status_code == 200


@pytest.mark.postgres_covered_elsewhere
def test_a_signed_in_manager_prints_from_the_manager_app(server: Server, shared_org: Org) -> None:
    add_user(shared_org.db, "olga", "correct horse 1", "manager", "B")
    with httpx.Client(base_url=server.url, timeout=60) as client:
        sign_in(client, server, "olga", "correct horse 1")
        api = client.get(PDF_PATH.format(token="tp-b"), params={"count": 2})
        page = client.get("/manage/entry/print", params={"touchpoint": "tp-b", "count": "1", "paper": "A5"})
        refused = client.get("/manage/entry/print", params={"touchpoint": "tp-a1", "count": "1"})
    assert api.status_code == 200 and len(pdf_pages(api.content)) == 2
    [(size, _, [payload])] = pdf_pages(page.content)
    assert size == pytest.approx(A5, abs=0.5)
    assert registered(shared_org, payload.split(":")[1])["printed_by"] == "olga"
    assert refused.status_code == 403 and "text/html" in refused.headers["content-type"]


@pytest.mark.postgres_covered_elsewhere
def test_the_command_line_prints_the_same(shared_org: Org, tmp_path: Path) -> None:
    out = tmp_path / "forms.pdf"
    common = ["paper", "forms", "--db", str(shared_org.db), "--touchpoint", "tp-b", "--out", str(out)]
    result = run_cli(*common, "--count", "2", "--lang", "en", "--paper", "A5")
    assert result.returncode == 0, result.stderr
    pages = pdf_pages(out.read_bytes())
    assert len(pages) == 2
    for size, text, [payload] in pages:
        assert size == pytest.approx(A5, abs=0.5)
        serial = payload.split(":")[1]
        form = registered(shared_org, serial)
        assert (form["lang"], form["paper"], form["touchpoint"]) == ("en", "A5", "tp-b")
        assert form["printed_by"].startswith("cli:")
        assert squeezed(TEMPLATES["vash_kontrol"].questions[0].text["en"]) in squeezed(text)

    for option, value in (("--count", "0"), ("--lang", "fr")):
        bad = tmp_path / "bad.pdf"
        args = ["paper", "forms", "--db", str(shared_org.db), "--touchpoint", "tp-b", "--out", str(bad), option, value]
        refused = run_cli(*args)
        assert refused.returncode == 2 and option in refused.stderr, (option, refused.stderr)
        assert not bad.exists()


def _snapshot_with(survey: SurveyDefinition) -> Snapshot:
    snapshot = Snapshot()
    snapshot.units["U"] = Unit(code="U", name="Unit", lang="en", path="/U/")
    snapshot.touchpoints["tp-long"] = Touchpoint(token="tp-long", name="Desk", unit="U", lang="en", survey=survey.slug)
    version = SurveyVersion(slug=survey.slug, version=1, definition=survey, published_at="2026-01-01T00:00:00+00:00")
    snapshot.current[survey.slug] = version
    snapshot.versions[(survey.slug, 1)] = version
    return snapshot


def test_a_survey_that_does_not_fit_on_one_page_is_refused_naming_the_paper_or_the_touchpoint() -> None:
    def rating(i: int) -> RatingQuestion:
        return RatingQuestion(key=f"q{i}", text={"en": f"Question {i}"}, scale=5)

    def plan(survey: SurveyDefinition, paper: str) -> InvalidInput:
        with pytest.raises(InvalidInput) as refused:
            paper_pdf.plan_print(_snapshot_with(survey), "tp-long", lang=None, count=1, paper=paper, printed_by=None)
        return refused.value

    # Fits on A4, not on A5: print it on A4.
    medium = SurveyDefinition(slug="medium", title={"en": "Medium"}, questions=[rating(i) for i in range(11)])
    assert plan(medium, "A5").field == "paper"
    assert paper_pdf.plan_print(_snapshot_with(medium), "tp-long", lang=None, count=1, paper="A4", printed_by=None)
    # Fits on neither: one form is one page, so the touchpoint's survey cannot be printed.
    long = SurveyDefinition(slug="long", title={"en": "Long"}, questions=[rating(i) for i in range(30)])
    assert plan(long, "A4").field == "touchpoint"
    # Every built-in survey fits on both papers.
    for survey in TEMPLATES.values():
        for paper in ("A4", "A5"):
            job = paper_pdf.plan_print(
                _snapshot_with(survey), "tp-long", lang=None, count=1, paper=paper, printed_by=None
            )
            assert len(job.forms) == 1


def test_every_text_of_the_forms_and_the_scan_pages_is_translated() -> None:
    from babel.messages.extract import extract_from_file
    from babel.messages.pofile import read_po

    root = Path(__file__).resolve().parent.parent
    templates = root / "feedback" / "web" / "templates" / "manage"
    sources = [
        (root / "feedback" / "paper_pdf.py", "python"),
        (root / "feedback" / "web" / "manage" / "scan_pages.py", "python"),
        *[(templates / name, "jinja2.ext:babel_extract") for name in ("entry_scans.html", "entry_review.html")],
        (templates / "entry_review_page.html", "jinja2.ext:babel_extract"),
    ]
    ids: set[str] = set()
    for path, method in sources:
        for _, message, _, _ in extract_from_file(
            method, str(path), keywords={"_": None, "N_": None, "ngettext": (1, 2)}
        ):
            ids.add(message if isinstance(message, str) else message[0])
    assert len(ids) > 80
    for folder in ("vi", "ru", "zh_Hans"):
        translated: dict[str, str] = {}
        for po in sorted((root / "feedback" / "locales" / folder / "LC_MESSAGES").glob("*.po")):
            with po.open("rb") as handle:
                for message in read_po(handle):
                    text = message.string if isinstance(message.string, str) else message.string[0]
                    key = message.id if isinstance(message.id, str) else message.id[0]
                    if key and text:
                        translated[key] = text
        missing = sorted(ids - set(translated))
        assert not missing, (folder, missing)
