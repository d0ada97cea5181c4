"""QR images and printable posters, through a real server and the CLI, decoded as a phone would."""

from __future__ import annotations

import io
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pypdfium2 as pdfium
import pytest
import zxingcpp
from PIL import Image

from feedback import organisation
from feedback.i18n import gettext_for
from feedback.posters import CALL_TO_ACTION_KIOSK
from tests.conftest import Org, Server, auth_header, make_org, run_cli

PUBLIC = "https://feedback.example.gov"
CASE = "000.00.17.H33-240115-0001"
A4, A5 = (595.28, 841.89), (419.53, 595.28)  # points


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Org:
    """make_org, plus a unit with no touchpoint and a retired touchpoint in A1 (never printed)."""
    org = make_org(tmp_path_factory.mktemp("qr") / "feedback.db")
    conn = sqlite3.connect(org.db, isolation_level=None)
    conn.execute("BEGIN")
    organisation.add_unit(conn, "C", "Empty unit", lang="en")
    organisation.add_touchpoint(conn, "A1", "Old counter", "csat", counter="9", token="tp-old")
    conn.execute("UPDATE touchpoints SET retired_at = '2024-01-01T00:00:00+00:00' WHERE token = 'tp-old'")
    conn.execute("COMMIT")
    conn.close()
    return org


@pytest.fixture(scope="module")
def srv(org: Org):
    """A server whose public URL is set, as in production behind a proxy."""
    server = Server(org.db, env={"FEEDBACK_PUBLIC_URL": PUBLIC}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def short_codes(srv: Server, org: Org) -> dict[str, str]:
    reply = httpx.get(f"{srv.url}/api/v1/touchpoints", headers=auth_header(org.tokens["admin"]), timeout=10)
    return {tp["token"]: tp["short_code"] for tp in reply.json()}


def get(srv: Server, path: str, token: str | None = None, **params) -> httpx.Response:
    return httpx.get(f"{srv.url}{path}", params=params, headers=auth_header(token) if token else {}, timeout=30)


def decode(image: Image.Image) -> list[str]:
    return [barcode.text for barcode in zxingcpp.read_barcodes(image)]


def pdf_pages(content: bytes) -> list[tuple[tuple[float, float], str, list[str]]]:
    """Each page's size in points, its text layer and the QR codes found on it rendered at 144 dpi."""
    document = pdfium.PdfDocument(content)
    pages = []
    for index in range(len(document)):
        page = document[index]
        text = page.get_textpage().get_text_range()
        pages.append((page.get_size(), text, decode(page.render(scale=2).to_pil())))
    return pages


def test_qr_png_encodes_the_public_survey_url(srv: Server) -> None:
    reply = get(srv, "/api/v1/touchpoints/tp-a1/qr.png")
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "image/png"
    assert "max-age=86400" in reply.headers["cache-control"] and "public" in reply.headers["cache-control"]
    image = Image.open(io.BytesIO(reply.content))
    assert image.size == (512, 512)
    assert decode(image) == [f"{PUBLIC}/s/tp-a1"]

    small = get(srv, "/api/v1/touchpoints/tp-a1/qr.png", size=128, ecc="H")
    assert Image.open(io.BytesIO(small.content)).size == (128, 128)
    assert decode(Image.open(io.BytesIO(small.content))) == [f"{PUBLIC}/s/tp-a1"]

    case = get(srv, "/api/v1/touchpoints/tp-a1/qr.png", case=CASE)
    assert decode(Image.open(io.BytesIO(case.content))) == [f"{PUBLIC}/s/tp-a1?case={CASE}"]
    odd = get(srv, "/api/v1/touchpoints/tp-a1/qr.png", case="HS 2024/7 & co")
    assert decode(Image.open(io.BytesIO(odd.content))) == [f"{PUBLIC}/s/tp-a1?case=HS%202024%2F7%20%26%20co"]


def test_qr_svg_is_svg_and_short_codes_encode_the_canonical_token(srv: Server, short_codes: dict[str, str]) -> None:
    reply = get(srv, "/api/v1/touchpoints/tp-a1/qr.svg", ecc="q", size=300)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("image/svg+xml")
    assert "max-age=86400" in reply.headers["cache-control"]
    root = ET.fromstring(reply.content)
    assert root.tag == "{http://www.w3.org/2000/svg}svg" and root.get("width") == "300"
    assert root.find("{http://www.w3.org/2000/svg}path").get("d")

    code = short_codes["tp-a1"]
    for spelling in (code, code.lower()):
        by_code = get(srv, f"/api/v1/touchpoints/{spelling}/qr.png")
        assert by_code.status_code == 200
        assert decode(Image.open(io.BytesIO(by_code.content))) == [f"{PUBLIC}/s/tp-a1"]
    same = get(srv, f"/api/v1/touchpoints/{code}/qr.svg").content
    assert same == get(srv, "/api/v1/touchpoints/tp-a1/qr.svg").content


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"size": "10"}, "size"),
        ({"size": "4096"}, "size"),
        ({"size": "big"}, "size"),
        ({"ecc": "X"}, "ecc"),
        ({"case": "x" * 129}, "case"),
    ],
)
def test_bad_qr_parameters_are_400_naming_the_field(srv: Server, params: dict, field: str) -> None:
    for fmt in ("png", "svg"):
        reply = get(srv, f"/api/v1/touchpoints/tp-a1/qr.{fmt}", **params)
        assert reply.status_code == 400 and reply.json()["field"] == field


def test_unknown_touchpoint_is_404_naming_the_token(srv: Server, org: Org) -> None:
    for path in ("qr.png", "qr.svg"):
        reply = get(srv, f"/api/v1/touchpoints/nope/{path}")
        assert reply.status_code == 404 and reply.json()["field"] == "token"
    reply = get(srv, "/api/v1/touchpoints/nope/poster.pdf", org.tokens["admin"])
    assert reply.status_code == 404 and reply.json()["field"] == "token"


def test_without_a_public_url_the_code_uses_the_servers_own_address(org: Org, start_server) -> None:
    local = start_server(org.db, feedback_public_url="")
    reply = get(local, "/api/v1/touchpoints/tp-b/qr.png")
    assert decode(Image.open(io.BytesIO(reply.content))) == [f"{local.url}/s/tp-b"]


@pytest.mark.parametrize(("paper", "size"), [("A4", A4), ("a5", A5)])
def test_touchpoint_poster_prints_the_place_the_code_and_the_short_code(
    srv: Server, org: Org, short_codes: dict[str, str], paper: str, size: tuple[float, float]
) -> None:
    reply = get(srv, "/api/v1/touchpoints/tp-a1/poster.pdf", org.tokens["manager_a1"], paper=paper)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/pdf"
    assert f'filename="poster-tp-a1-{paper.upper()}.pdf"' in reply.headers["content-disposition"]
    [(page_size, text, codes)] = pdf_pages(reply.content)
    assert page_size == pytest.approx(size, abs=0.5)
    assert codes == [f"{PUBLIC}/s/tp-a1"]
    code = short_codes["tp-a1"]
    for expected in ("Đơn vị A1", "Đăng ký", "Quầy 1", code, f"feedback.example.gov/s/{code}"):
        assert expected in text


def test_posters_speak_the_touchpoints_language_in_its_script(
    srv: Server, org: Org, short_codes: dict[str, str]
) -> None:
    reply = get(srv, "/api/v1/touchpoints/tp-b/poster.pdf", org.tokens["viewer_b"])
    [(_, text, codes)] = pdf_pages(reply.content)
    assert "Пост Б" in text and "Оцените" in text and codes == [f"{PUBLIC}/s/tp-b"]

    # The kiosk poster offers the phone instead of the tablet, in Chinese first; reachable by short code.
    reply = get(srv, f"/api/v1/touchpoints/{short_codes['tp-a1a']}/poster.pdf", org.tokens["admin"])
    [(_, text, codes)] = pdf_pages(reply.content)
    chinese = gettext_for("zh")(CALL_TO_ACTION_KIOSK)
    assert chinese == "想用手机？扫码评价"
    assert chinese in text and "Prefer your phone?" in text and short_codes["tp-a1a"] in text
    assert codes == [f"{PUBLIC}/s/tp-a1a"]


def test_unit_posters_cover_the_live_subtree_one_page_each(srv: Server, org: Org) -> None:
    reply = get(srv, "/api/v1/units/A/posters.pdf", org.tokens["admin"])
    assert reply.status_code == 200, reply.text
    assert 'filename="posters-A-A4.pdf"' in reply.headers["content-disposition"]
    pages = pdf_pages(reply.content)
    assert len(pages) == 3  # tp-a, tp-a1, tp-a1a; the retired tp-old is left out
    assert sorted(code for _, _, codes in pages for code in codes) == [
        f"{PUBLIC}/s/tp-a",
        f"{PUBLIC}/s/tp-a1",
        f"{PUBLIC}/s/tp-a1a",
    ]
    assert all(size == pytest.approx(A4, abs=0.5) for size, _, _ in pages)


def test_posters_need_a_token_in_scope_and_valid_parameters(srv: Server, org: Org) -> None:
    assert get(srv, "/api/v1/units/A/posters.pdf").status_code == 401
    assert get(srv, "/api/v1/touchpoints/tp-a1/poster.pdf").status_code == 401
    assert get(srv, "/api/v1/units/A/posters.pdf", org.tokens["manager_a1"]).status_code == 403
    assert get(srv, "/api/v1/touchpoints/tp-a1/poster.pdf", org.tokens["viewer_b"]).status_code == 403
    bad_paper = get(srv, "/api/v1/units/A1/posters.pdf", org.tokens["admin"], paper="A3")
    assert bad_paper.status_code == 400 and bad_paper.json()["field"] == "paper"
    for unit in ("Z9", "C"):  # unknown, and a unit with no touchpoint
        reply = get(srv, f"/api/v1/units/{unit}/posters.pdf", org.tokens["admin"])
        assert reply.status_code == 404 and reply.json()["field"] == "code"


def test_cli_writes_the_posters_of_a_unit_offline(org: Org, tmp_path: Path) -> None:
    out = tmp_path / "a1.pdf"
    result = run_cli(
        "qr",
        "--db",
        str(org.db),
        "--unit",
        "A1",
        "--out",
        str(out),
        "--paper",
        "A5",
        "--public-url",
        "https://print.example.org/",
    )
    assert result.returncode == 0, result.stderr
    pages = pdf_pages(out.read_bytes())
    assert len(pages) == 2  # tp-a1 and the kiosk tp-a1a below it; not the retired tp-old
    assert pages[0][2] == ["https://print.example.org/s/tp-a1"]
    assert pages[0][0] == pytest.approx(A5, abs=0.5)

    unknown = run_cli("qr", "--db", str(org.db), "--unit", "Z9", "--out", str(tmp_path / "z.pdf"))
    assert unknown.returncode != 0 and "Z9" in unknown.stderr
    assert not (tmp_path / "z.pdf").exists()
