"""What `feedback serve` logs: JSON lines with FEEDBACK_LOG_FORMAT=json (every line of the process), an
access line per request with its request id and never the client's address, and one traceback per
distinct error per minute."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.conftest import ProcessServer, make_org, run_cli

PUBLIC = "https://feedback.example.gov.vn"
CLIENT = "203.0.113.9"  # what a client claims to be in forwarding headers: never logged

# A site plugin (loaded from FEEDBACK_PLUGINS_DIR, as an operator would) whose route always fails at the
# same line: the same error on every request.
FAILING_PLUGIN = """
from litestar import get

from feedback import hookimpl


@get("/site/broken", include_in_schema=False)
async def broken() -> dict:
    raise RuntimeError("the site's route failed")


@hookimpl
def register_routes(settings):
    return [broken]
"""


def stop_and_read(server: ProcessServer) -> list[str]:
    server.stop()  # the log is complete once the process has ended
    return server.log.read_text(encoding="utf-8").splitlines()


def test_json_lines_with_an_access_line_per_request_and_one_traceback_a_minute(tmp_path: Path, start_process_server):
    org = make_org(tmp_path / "feedback.db")
    plugins = tmp_path / "site-plugins"
    plugins.mkdir()
    (plugins / "site_broken.py").write_text(FAILING_PLUGIN, encoding="utf-8")
    server = start_process_server(
        org.db, feedback_log_format="json", feedback_plugins_dir=str(plugins), feedback_public_url=PUBLIC
    )
    forwarded = {"X-Forwarded-For": CLIENT, "X-Real-IP": CLIENT, "Forwarded": f"for={CLIENT}"}
    stored = httpx.post(
        f"{server.url}/api/v1/responses",
        json={"touchpoint": "tp-a", "answers": {"overall": 5}},
        headers={"X-Request-ID": "counter-7.case_42", **forwarded},
    )
    assert stored.status_code == 201, stored.text
    assert stored.headers["x-request-id"] == "counter-7.case_42"  # a sane id is kept and returned
    survey = httpx.get(
        f"{server.url}/api/v1/touchpoints/tp-a/survey", headers={"X-Request-ID": "no spaces allowed", **forwarded}
    )
    assert survey.status_code == 200, survey.text
    generated = survey.headers["x-request-id"]
    assert generated != "no spaces allowed" and 0 < len(generated) <= 64
    too_long = httpx.get(f"{server.url}/healthz", headers={"X-Request-ID": "x" * 65})
    assert too_long.headers["x-request-id"] != "x" * 65
    # The same server error twice within a minute.
    broken = [httpx.get(f"{server.url}/site/broken", headers=forwarded) for _ in range(2)]
    assert [reply.status_code for reply in broken] == [500, 500]

    lines = stop_and_read(server)
    records = [json.loads(line) for line in lines]  # every line of the process is one JSON object
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys(), record
        assert record["time"].endswith("Z") and "T" in record["time"], record

    access = [record for record in records if record["logger"] == "feedback.access"]
    [ingest] = [record for record in access if record["request_id"] == "counter-7.case_42"]
    assert ingest["level"] == "INFO"
    assert (ingest["method"], ingest["route"], ingest["status"]) == ("POST", "/api/v1/responses", 201)
    assert isinstance(ingest["duration_ms"], float) and ingest["duration_ms"] > 0
    [survey_line] = [record for record in access if record["request_id"] == generated]
    assert (survey_line["route"], survey_line["status"]) == ("/api/v1/touchpoints/{token}/survey", 200)  # no tp-a
    assert [record["status"] for record in access if record["route"] == "/site/broken"] == [500, 500]
    assert {record["request_id"] for record in access} >= {broken[0].headers["x-request-id"]}

    # Never the client's address: neither what it claimed nor the peer (this host's loopback), except
    # where the server names the address it listens on as it starts.
    assert not [line for line in lines if CLIENT in line]
    starting = {"feedback.serve", "_granian", "_granian.serve"}
    assert not [record for record in records if record["logger"] not in starting and "127.0.0.1" in json.dumps(record)]

    # One traceback for the two identical errors; the second is one line saying how many came since.
    errors = [record for record in records if record["logger"] == "feedback.web" and record["level"] == "ERROR"]
    assert len(errors) == 2, errors
    assert "RuntimeError: the site's route failed" in errors[0]["exc_info"]
    assert "exc_info" not in errors[1]
    assert "1 more like this in the last minute" in errors[1]["message"]
    assert "site_broken.py:" in errors[1]["message"] and errors[1]["repeats"] == 1


def test_text_lines_by_default(tmp_path: Path, start_process_server) -> None:
    org = make_org(tmp_path / "feedback.db")
    server = start_process_server(org.db, feedback_public_url=PUBLIC)
    reply = httpx.get(f"{server.url}/healthz", headers={"X-Request-ID": "probe-1"})
    assert reply.headers["x-request-id"] == "probe-1"
    lines = stop_and_read(server)
    [access] = [line for line in lines if "request_id=probe-1" in line]
    assert access.startswith("INFO - ") and " - feedback.access - access - GET /healthz 200 " in access
    assert not [line for line in lines if line.startswith("{")]


def test_an_unknown_log_format_is_refused(tmp_path: Path) -> None:
    org = make_org(tmp_path / "feedback.db")
    result = run_cli("serve", "--db", str(org.db), env={"FEEDBACK_LOG_FORMAT": "xml"})
    assert result.returncode == 2, result.stderr
    assert "FEEDBACK_LOG_FORMAT" in result.stderr and "xml" in result.stderr
