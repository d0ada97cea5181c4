"""Other indicators (error rate, plan completion, case closure): their definitions from plugins and
administrators, figures per unit and period through the API and from a file, objectives judged on them
with Wilson intervals in the direction that is better, and the management-review pack that shows them."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pypdfium2 as pdfium
import pytest

from feedback.settings import Settings
from feedback.web.app import create_app
from tests.conftest import BOTH_BACKENDS, Org, Server, auth_header, rows, run_cli

pytestmark = BOTH_BACKENDS

BUILT_IN = ["case_closure", "error_rate", "plan_completion"]


def post_value(server: Server, token: str, key: str, body: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/api/v1/indicators/{key}/values", json=body, headers=auth_header(token), timeout=30)


def figure(unit: str, period: str, numerator: int, denominator: int) -> dict[str, Any]:
    return {"unit": unit, "period": period, "numerator": numerator, "denominator": denominator}


def count_values(org: Org) -> int:
    return rows(org, "SELECT count(*) AS n FROM indicator_values")[0]["n"]


@pytest.fixture
def fresh(org: Org, start_server) -> tuple[Org, Server]:
    return org, start_server(org.db, feedback_jobs="0")


# -- definitions ----------------------------------------------------------------------------------------

PLUGIN = """
    from feedback import hookimpl
    from feedback.models import Indicator


    @hookimpl
    def register_indicators():
        return Indicator(
            key="complaints_resolved",
            names={"vi": "Khiếu nại được giải quyết", "ru": "Рассмотренные жалобы", "zh": "投诉办结率",
                   "en": "Complaints resolved"},
            direction="higher",
        )
"""


@pytest.mark.postgres_covered_elsewhere
def test_hook_register_indicators(tmp_path: Path, org: Org, start_server) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "complaints.py").write_text(textwrap.dedent(PLUGIN), encoding="utf-8")
    server = start_server(org.db, feedback_plugins_dir=str(folder), feedback_jobs="0")
    listed = httpx.get(f"{server.url}/api/v1/indicators", headers=auth_header(org.tokens["viewer_b"])).json()
    by_key = {item["key"]: item for item in listed}
    assert sorted(by_key) == sorted([*BUILT_IN, "complaints_resolved"])
    assert by_key["complaints_resolved"]["names"]["zh"] == "投诉办结率"
    assert by_key["error_rate"]["direction"] == "lower" and by_key["plan_completion"]["direction"] == "higher"
    assert set(by_key["error_rate"]["names"]) == {"vi", "ru", "zh", "en"}
    stored = post_value(server, org.tokens["admin"], "complaints_resolved", figure("B", "2025-01", 40, 42))
    assert stored.status_code == 200 and stored.json()["result"] == "added"
    # An administrator may not take the plugin's key.
    taken = httpx.post(
        f"{server.url}/api/v1/indicators",
        json={"key": "complaints_resolved", "names": by_key["error_rate"]["names"], "direction": "higher"},
        headers=auth_header(org.tokens["admin"]),
    )
    assert taken.status_code == 409 and taken.json()["field"] == "key"
    # A plugin whose definition lacks a language stops the start, naming what is wrong.
    (folder / "complaints.py").write_text(textwrap.dedent(PLUGIN).replace('"en": "Complaints resolved"', ""))
    with pytest.raises(ValueError, match="register_indicators: names: lacks en"):
        create_app(Settings(db=str(tmp_path / "other.db"), plugins_dir=str(folder)))


def test_an_administrator_defines_an_indicator_once(fresh) -> None:
    org, server = fresh
    names = {"vi": "Tỷ lệ trả lời đúng hạn", "ru": "Ответы в срок", "zh": "按时答复率", "en": "Replies on time"}
    body = {"key": "replies_on_time", "names": names, "direction": "higher", "unit_of_measure": {"en": "letters"}}
    admin = auth_header(org.tokens["admin"])
    refused = httpx.post(f"{server.url}/api/v1/indicators", json=body, headers=auth_header(org.tokens["manager_a1"]))
    assert refused.status_code == 403
    for bad, field in (
        ({**body, "names": {"en": "Replies on time"}}, "names"),
        ({**body, "direction": "up"}, "direction"),
        ({**body, "key": "Replies"}, "key"),
        ({**body, "colour": "red"}, "colour"),
    ):
        reply = httpx.post(f"{server.url}/api/v1/indicators", json=bad, headers=admin)
        assert reply.status_code == 400 and reply.json()["field"] == field, reply.text
    created = httpx.post(f"{server.url}/api/v1/indicators", json=body, headers=admin)
    assert created.status_code == 201 and created.json()["names"] == names
    again = httpx.post(f"{server.url}/api/v1/indicators", json=body, headers=admin)
    assert again.status_code == 409 and again.json()["field"] == "key"
    assert post_value(server, org.tokens["manager_a1"], "replies_on_time", figure("A1", "2025", 3, 4)).json()[
        "value"
    ] == pytest.approx(0.75)
    [entry] = rows(org, "SELECT * FROM audit_log WHERE kind = 'indicator'")
    assert entry["record_id"] == "replies_on_time" and entry["action"] == "create"


# -- figures ----------------------------------------------------------------------------------------------


def test_a_figure_is_added_replaced_and_logged(fresh) -> None:
    org, server = fresh
    token = org.tokens["manager_a1"]
    added = post_value(server, token, "error_rate", figure("A1", "2025-Q1", 3, 10000))
    assert added.status_code == 200, added.text
    body = added.json()
    assert body["result"] == "added" and (body["from"], body["to"]) == ("2025-01-01", "2025-03-31")
    assert body["value"] == pytest.approx(0.0003)
    assert body["ci95"] == pytest.approx([0.000102032, 0.000881736], rel=1e-5)  # Wilson, 3 of 10,000
    assert post_value(server, token, "error_rate", figure("A1", "2025-Q1", 3, 10000)).json()["result"] == "unchanged"
    assert post_value(server, token, "error_rate", figure("A1", "2025-Q1", 4, 10000)).json()["result"] == "updated"
    assert post_value(server, token, "error_rate", figure("A1", "2024", 9, 40000)).json()["to"] == "2024-12-31"
    stored = rows(org, "SELECT period, numerator, denominator FROM indicator_values ORDER BY period")
    assert stored == [
        {"period": "2024", "numerator": 9, "denominator": 40000},
        {"period": "2025-Q1", "numerator": 4, "denominator": 10000},
    ]
    entries = rows(org, "SELECT * FROM audit_log WHERE kind = 'indicator_value' ORDER BY seq")
    assert [entry["record_id"] for entry in entries] == ["error_rate/A1/2025-Q1"] * 2 + ["error_rate/A1/2024"]
    change = json.loads(entries[1]["change"])
    assert change["before"] == {"numerator": 3, "denominator": 10000} and change["after"]["numerator"] == 4
    listed = httpx.get(
        f"{server.url}/api/v1/indicators/error_rate/values",
        params={"unit": "A", "from": "2024-01-01", "to": "2025-12-31"},
        headers=auth_header(org.tokens["admin"]),
    ).json()
    assert [(row["unit"], row["period"], row["numerator"]) for row in listed["rows"]] == [
        ("A1", "2024", 9),
        ("A1", "2025-Q1", 4),
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (figure("A1", "2025-01", 11, 10), "numerator"),
        (figure("A1", "2025-01", 0, 0), "denominator"),
        (figure("A1", "2025-01", -1, 10), "numerator"),
        (figure("A1", "2025-01", 1.5, 10), "numerator"),
        (figure("A1", "2025-01", True, 10), "numerator"),
        (figure("A1", "2025-13", 1, 10), "period"),
        (figure("A1", "2025-Q5", 1, 10), "period"),
        (figure("A1", "25-01", 1, 10), "period"),
        (figure("A1", "2999-01", 1, 10), "period"),  # has not begun
        (figure("ZZ", "2025-01", 1, 10), "unit"),
        ({"unit": "A1", "period": "2025-01", "numerator": 1}, "denominator"),
        ({**figure("A1", "2025-01", 1, 10), "source": "x"}, "source"),
        ([figure("A1", "2025-01", 1, 10)], "body"),
    ],
)
@pytest.mark.postgres_covered_elsewhere
def test_a_bad_figure_names_its_field_and_stores_nothing(server: Server, shared_org: Org, body, field: str) -> None:
    before = count_values(shared_org)
    reply = post_value(server, shared_org.tokens["admin"], "error_rate", body)
    assert reply.status_code == 400, reply.text
    assert reply.json()["field"] == field
    assert count_values(shared_org) == before


@pytest.mark.postgres_covered_elsewhere
def test_figures_need_a_known_indicator_and_a_manager_of_the_unit(server: Server, shared_org: Org) -> None:
    tokens = shared_org.tokens
    unknown = post_value(server, tokens["admin"], "happiness", figure("A1", "2025-01", 1, 2))
    assert unknown.status_code == 404 and unknown.json()["field"] == "key"
    outside = post_value(server, tokens["manager_a1"], "error_rate", figure("B", "2025-01", 1, 2))
    assert outside.status_code == 403 and outside.json()["field"] == "unit"
    assert post_value(server, tokens["viewer_b"], "error_rate", figure("B", "2025-01", 1, 2)).status_code == 403
    assert httpx.post(f"{server.url}/api/v1/indicators/error_rate/values", json={}).status_code == 401
    assert not rows(shared_org, "SELECT * FROM indicator_values WHERE unit = 'B'")


@pytest.mark.postgres_covered_elsewhere
def test_a_file_import_is_all_or_nothing_with_errors_by_line_and_column(tmp_path: Path, org: Org) -> None:
    good = tmp_path / "figures.csv"
    good.write_text(
        "indicator,unit,period,numerator,denominator\n"
        "error_rate,A1,2025-01,3,10000\n"
        "plan_completion,A,2025-Q1,991,1000\n"
        "case_closure,B,2025,9571,10000\n",
        encoding="utf-8",
    )
    done = run_cli("indicators", "import", "--db", str(org.db), str(good))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"added": 3, "updated": 0, "unchanged": 0}
    good.write_text(
        "indicator,unit,period,numerator,denominator\nerror_rate,A1,2025-01,5,10000\ncase_closure,B,2025,9571,10000\n",
        encoding="utf-8",
    )
    assert json.loads(run_cli("indicators", "import", "--db", str(org.db), str(good)).stdout) == {
        "added": 0,
        "updated": 1,
        "unchanged": 1,
    }
    [entry, _] = rows(org, "SELECT * FROM audit_log WHERE kind = 'indicator_values' ORDER BY seq DESC")
    assert json.loads(entry["change"])["after"]["figures"] == [["error_rate", "A1", "2025-01", [3, 10000], [5, 10000]]]
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "indicator,unit,period,numerator,denominator\n"
        "error_rate,A1,2025-02,3,10000\n"
        "mood,A1,2025-02,3,10000\n"
        "error_rate,A1,2025-02,30,20\n"
        "plan_completion,A,2025-Q7,1,2\n",
        encoding="utf-8",
    )
    refused = run_cli("indicators", "import", "--db", str(org.db), str(bad))
    assert refused.returncode == 2
    assert "line 3, column indicator: no indicator 'mood'" in refused.stderr
    assert "line 4, column numerator: 30 is more than the denominator (20)" in refused.stderr
    assert "line 5, column period:" in refused.stderr
    assert count_values(org) == 3
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["indicator", "unit", "period", "numerator", "denominator"])
    sheet.append(["error_rate", "A1", "2025-03", "=2+1", 10000])
    buffer = io.BytesIO()
    book.save(buffer)
    workbook = tmp_path / "figures.xlsx"
    workbook.write_bytes(buffer.getvalue())
    refused = run_cli("indicators", "import", "--db", str(org.db), str(workbook))
    assert refused.returncode == 2 and "line 2, column numerator: a formula, not a value" in refused.stderr
    assert count_values(org) == 3


# -- objectives -------------------------------------------------------------------------------------------


def create_objective(server: Server, token: str, spec: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}/api/v1/objectives", json=spec, headers=auth_header(token), timeout=30)


def status(server: Server, token: str, objective: int, at: str) -> dict[str, Any]:
    reply = httpx.get(
        f"{server.url}/api/v1/objectives/{objective}/status", params={"at": at}, headers=auth_header(token)
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


def store_q1(server: Server, token: str) -> None:
    """A1 gave its error rate for the quarter (30 in 100,000) and, differently, for each month of it; A1a
    gave February's. A quarter counts A1's quarter figure, which stands for its months; a month counts
    the months."""
    for body in (
        figure("A1", "2025-Q1", 30, 100000),
        figure("A1", "2025-01", 100, 10000),
        figure("A1", "2025-02", 100, 10000),
        figure("A1", "2025-03", 100, 10000),
        figure("A1a", "2025-02", 6, 20000),
    ):
        assert post_value(server, token, "error_rate", body).status_code == 200
    assert post_value(server, token, "plan_completion", figure("A", "2025-Q1", 991, 1000)).status_code == 200
    assert post_value(server, token, "case_closure", figure("B", "2025-Q1", 9571, 10000)).status_code == 200


def test_objectives_judge_an_indicator_in_the_direction_that_is_better(fresh) -> None:
    org, server = fresh
    admin = org.tokens["admin"]
    store_q1(server, admin)
    common = {"metric": "indicator_value", "min_n": 100, "valid_from": "2025-01-01"}
    errors = create_objective(
        server, admin, {**common, "unit": "A1", "indicator": "error_rate", "target": 0.0005, "period": "quarter"}
    ).json()
    assert errors["comparator"] == "<="  # lower is better
    quarter = status(server, admin, errors["id"], "2025-02-15")
    # 36 of 120,000 (A1's quarter figure and A1a's February): 0.03 %, Wilson 0.0217 %–0.0415 %, ≤ 0.05 %.
    assert (quarter["n"], quarter["successes"], quarter["status"]) == (120000, 36, "met")
    assert quarter["value"] == pytest.approx(0.0003)
    assert quarter["ci95"] == pytest.approx([0.000216717, 0.000415275], rel=1e-5)
    monthly = create_objective(
        server, admin, {**common, "unit": "A1", "indicator": "error_rate", "target": 0.0005, "period": "month"}
    ).json()
    february = status(server, admin, monthly["id"], "2025-02-28")
    # February alone: A1's month (100 in 10,000) and A1a's (6 in 20,000): 0.35 %, far above 0.05 %.
    assert (february["n"], february["successes"], february["status"]) == (30000, 106, "breached")
    plan = create_objective(
        server, admin, {**common, "unit": "A", "indicator": "plan_completion", "target": 0.95, "period": "quarter"}
    ).json()
    assert plan["comparator"] == ">=" and status(server, admin, plan["id"], "2025-03-31")["status"] == "met"
    closure = create_objective(
        server, admin, {**common, "unit": "B", "indicator": "case_closure", "target": 0.98, "period": "quarter"}
    ).json()
    judged = status(server, admin, closure["id"], "2025-03-31")
    assert judged["status"] == "breached" and judged["value"] == pytest.approx(0.9571)  # 95.71 %, Wilson high 96.1 %
    assert status(server, admin, closure["id"], "2025-04-30")["status"] == "insufficient_data"  # no Q2 figure
    for spec, field in (
        ({"indicator": "error_rate", "comparator": ">="}, "comparator"),
        ({"indicator": "error_rate", "period": "rolling_30"}, "period"),
        ({"indicator": "mood"}, "indicator"),
        ({}, "indicator"),
        ({"indicator": "error_rate", "service": "S1"}, "service"),  # figures are per unit, never per service
    ):
        body = {**common, "unit": "A1", "target": 0.01, "period": "quarter", **spec}
        reply = create_objective(server, admin, body)
        assert reply.status_code == 400 and reply.json()["field"] == field, reply.text


# -- the management-review pack ----------------------------------------------------------------------------


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
        return "".join(ch for ch in "\n".join(parts) if not ch.isspace() and ch not in "\u00a0\u202f\ufffe\u0002")
    finally:
        document.close()


@pytest.mark.postgres_covered_elsewhere
def test_the_review_pack_shows_indicators_and_dossiers(fresh) -> None:
    org, server = fresh
    admin = org.tokens["admin"]
    store_q1(server, admin)
    spec = {"metric": "indicator_value", "indicator": "error_rate", "target": 0.0005, "period": "quarter"}
    assert create_objective(server, admin, {**spec, "unit": "A1", "valid_from": "2025-01-01"}).status_code == 201
    dossiers = [
        {"ref": f"RP-{i}", "unit": "A1", "received": "2025-02-03", "due": "2025-02-14", "returned": "2025-02-13"}
        for i in range(39)
    ] + [{"ref": "RP-late", "unit": "A1a", "received": "2025-02-03", "due": "2025-02-14", "returned": "2025-02-20"}]
    reply = httpx.post(f"{server.url}/api/v1/cases", json={"items": dossiers}, headers=auth_header(admin))
    assert reply.json()["added"] == 40
    texts = {}
    for lang in ("en", "vi"):
        reply = httpx.get(
            f"{server.url}/api/v1/reports/management-review.pdf",
            params={"unit": "A1", "from": "2025-01-01", "to": "2025-03-31", "lang": lang},
            headers=auth_header(admin),
            timeout=60,
        )
        assert reply.status_code == 200, reply.text
        texts[lang] = pdf_text(reply.content)
    text = texts["en"]
    assert "7.Otherindicators" in text and "Errorrate(2025-01–2025-03)" in text
    assert "0.03%" in text and "120,000" in text and "0.02%–0.04%" in text
    assert "≤0.05%:met" in text
    assert "plan" not in text.lower().split("7.otherindicators")[1]  # A's figure is not A1's subtree's
    assert "6.Dossiersreturnedontime" in text and "97.5%" in text  # 39 of 40 on time
    assert "Tỷlệsaisót" in texts["vi"] and "7.Cácchỉsốkhác" in texts["vi"]
