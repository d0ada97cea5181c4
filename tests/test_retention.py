"""Retention: how long each unit keeps personal data (PATCH /api/v1/units/{code} `retention`, inherited
down the tree) and the daily job that erases what is due (`feedback tick --job retention.erase --now`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from feedback.erasure import MARKER
from tests.conftest import BOTH_BACKENDS, Org, auth_header, connect, enrollment_code, rows, run_cli

pytestmark = BOTH_BACKENDS

JOB = "retention.erase"
SECRET = {"FEEDBACK_SECRET": "test-secret"}  # the command needs one on PostgreSQL
KINDS = ("comments_days", "contacts_days", "case_refs_days", "officers_days", "responses_days")
DEFAULTS = {
    "comments_days": 365,
    "contacts_days": 90,
    "case_refs_days": 365,
    "officers_days": 730,
    "responses_days": None,
}
# Comments in the four languages, as the demo's; each carries a word of its own to search for.
COMMENTS = (
    "Nhân viên hướng dẫn tận tình, thủ tục nhanh gọn ngày{n}",
    "Очередь двигалась медленно, но сотрудник помог день{n}",
    "窗口工作人员态度很好，办理很快 第{n}天",
    "The officer explained every step clearly day{n}",
)


def patch(server, token: str, code: str, body) -> httpx.Response:
    return httpx.patch(f"{server.url}/api/v1/units/{code}", json=body, headers=auth_header(token), timeout=10)


def units(server, token: str) -> dict[str, dict]:
    listed = httpx.get(f"{server.url}/api/v1/units", headers=auth_header(token), timeout=10).json()
    return {unit["code"]: unit for unit in listed}


@pytest.mark.parametrize(
    ("retention", "field"),
    [
        ({"comments_days": 29}, "retention.comments_days"),
        ({"comments_days": 3651}, "retention.comments_days"),
        ({"contacts_days": 181}, "retention.contacts_days"),
        ({"contacts_days": 6}, "retention.contacts_days"),
        ({"responses_days": 29}, "retention.responses_days"),
        ({"officers_days": "90"}, "retention.officers_days"),
        ({"case_refs_days": True}, "retention.case_refs_days"),
        ({"case_refs_days": 90.5}, "retention.case_refs_days"),
        ({"ratings_days": 90}, "retention.ratings_days"),
        ([90], "retention"),
        ("90", "retention"),
    ],
)
@pytest.mark.postgres_covered_elsewhere
def test_bad_retention_is_400_naming_the_field(shared_org: Org, server, retention, field) -> None:
    before = rows(shared_org, "SELECT retention FROM units WHERE code = 'A1'")
    reply = patch(server, shared_org.tokens["admin"], "A1", {"retention": retention})
    assert reply.status_code == 400, reply.text
    assert reply.json()["field"] == field
    assert reply.json()["detail"].startswith(field)
    assert rows(shared_org, "SELECT retention FROM units WHERE code = 'A1'") == before


def test_retention_is_inherited_down_the_tree_and_shown_with_its_source(shared_org: Org, server) -> None:
    admin, manager = shared_org.tokens["admin"], shared_org.tokens["manager_a1"]
    assert units(server, admin)["A1a"]["retention_in_force"] == {
        kind: {"days": days, "from": "default"} for kind, days in DEFAULTS.items()
    }
    reply = patch(server, admin, "A", {"retention": {"comments_days": 180, "responses_days": 1095}})
    assert reply.status_code == 200, reply.text
    assert reply.json()["retention"] == {"comments_days": 180, "responses_days": 1095}
    # A manager sets its own unit's; kinds left out stay as they were.
    reply = patch(server, manager, "A1", {"retention": {"contacts_days": 14, "comments_days": 60}})
    assert reply.status_code == 200, reply.text
    reply = patch(server, manager, "A1", {"retention": {"comments_days": None}})
    assert reply.json()["retention"] == {"contacts_days": 14}
    assert reply.json()["retention_in_force"]["comments_days"] == {"days": 180, "from": "A"}
    forced = units(server, admin)["A1a"]["retention_in_force"]
    assert forced == {
        "comments_days": {"days": 180, "from": "A"},
        "contacts_days": {"days": 14, "from": "A1"},
        "case_refs_days": {"days": 365, "from": "default"},
        "officers_days": {"days": 730, "from": "default"},
        "responses_days": {"days": 1095, "from": "A"},
    }
    assert units(server, admin)["A1a"]["retention"] is None
    assert units(server, admin)["B"]["retention_in_force"]["comments_days"] == {"days": 365, "from": "default"}
    # Outside the manager's subtree: refused; `"retention": null` follows the unit above again.
    assert patch(server, manager, "A", {"retention": {"comments_days": 90}}).status_code == 403
    assert patch(server, manager, "A1", {"retention": None}).json()["retention"] is None
    assert patch(server, admin, "A", {"retention": None}).status_code == 200


def _post(server, body: dict) -> dict:
    reply = httpx.post(f"{server.url}/api/v1/responses", json=body, timeout=10)
    assert reply.status_code == 201, reply.text
    return reply.json()


def _fortnight(server, now: datetime) -> dict[str, dict]:
    """Five responses a day for 14 days at A1 (comments in four languages, a contact, a case reference and
    an officer code each) and one a day at B (no retention set there): id → what was sent."""
    sent = {}
    for ago in range(14):
        for n in range(5):
            text = COMMENTS[n % 4].format(n=f"{ago:02d}{n}")
            body = {
                "touchpoint": "tp-a1",
                "answers": {"overall": 3 + n % 3, "comment": text, "contact": f"citizen{ago}{n}@example.org"},
                "case_ref": f"HS-{ago:02d}-{n}",
                "officer": f"NV{n:02d}",
                "submitted_at": (now - timedelta(days=ago, minutes=n)).isoformat(),
            }
            sent[_post(server, body)["id"]] = body
        body = {
            "touchpoint": "tp-b",
            "answers": dict.fromkeys(("service_time", "waiting_time", "staff_courtesy", "premises", "information"), 5),
            "case_ref": f"B-{ago}",
            "submitted_at": (now - timedelta(days=ago)).isoformat(),
        }
        sent[_post(server, body)["id"]] = body
    # A bad review 13 days ago opens a complaint whose work is not done: its data stays meanwhile.
    held = {
        "touchpoint": "tp-a1",
        "answers": {"overall": 1, "comment": "Không ai tiếp đón giữ lại", "contact": "held@example.org"},
        "case_ref": "HS-HELD",
        "officer": "NV99",
        "submitted_at": (now - timedelta(days=13)).isoformat(),
    }
    sent[_post(server, held)["id"]] = held
    return sent


def _rollups(org: Org) -> list[dict]:
    measures = "n, satisfied, dissatisfied, l1, l2, l3, l4, l5, suspect"
    return rows(org, f"SELECT unit, day, {measures} FROM rollups_unit_day ORDER BY unit, day")


def _found(org: Org, word: str) -> int:
    """Responses the comment search finds for a word (FTS5 trigram on SQLite, pg_trgm table on PostgreSQL)."""
    if org.backend == "sqlite":
        return rows(org, "SELECT count(*) AS n FROM comment_search WHERE comment_search MATCH ?", (f'"{word}"',))[0][
            "n"
        ]
    return rows(org, "SELECT count(*) AS n FROM comment_search WHERE body ILIKE ?", (f"%{word}%",))[0]["n"]


def _cutoff(now: datetime, days: int) -> str:
    return (now.astimezone(ZoneInfo("Asia/Ho_Chi_Minh")).date() - timedelta(days=days)).isoformat()


def _tick(org: Org, now: datetime, job: str = JOB) -> None:
    done = run_cli("tick", "--db", str(org.db), "--job", job, "--now", now.isoformat(), env=SECRET)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["jobs"] == {job: True}


def _verify(org: Org) -> None:
    done = run_cli("audit", "verify", "--db", str(org.db), env=SECRET)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.postgres_covered_elsewhere
def test_a_retention_run_a_fortnight_later(org: Org, start_server) -> None:
    server = start_server(org.db, feedback_rate_limit="0", feedback_jobs="0")
    now = datetime.now(UTC).replace(microsecond=0)
    sent = _fortnight(server, now)
    reply = patch(
        server,
        org.tokens["admin"],
        "A",
        {
            "retention": {
                "comments_days": 30,
                "contacts_days": 7,
                "case_refs_days": 31,
                "officers_days": 33,
                "responses_days": 34,
            }
        },
    )
    assert reply.status_code == 200, reply.text
    rollups = _rollups(org)
    before = {row["id"]: row for row in rows(org, "SELECT * FROM responses")}
    assert len(before) == len(sent) == 14 * 6 + 1
    words = {
        i: body["answers"]["comment"].rsplit(" ", 1)[1] for i, body in sent.items() if "comment" in body["answers"]
    }
    assert all(_found(org, word) == 1 for word in words.values())

    later = now + timedelta(days=23)  # the data is now 23 to 36 days old
    _tick(org, later, "audit.seal")  # every day of it sealed first: the run must leave the seals verifiable
    _tick(org, later)

    after = {row["id"]: row for row in rows(org, "SELECT * FROM responses")}
    contacts = {row["response_id"] for row in rows(org, "SELECT response_id FROM contacts")}
    [held] = [i for i, body in sent.items() if body.get("case_ref") == "HS-HELD"]
    cut = {kind: _cutoff(later, days) for kind, days in (("comments", 30), ("case_refs", 31), ("officers", 33))}
    gone = _cutoff(later, 34)
    assert gone > min(row["day"] for row in before.values())  # some responses are past their end
    counts = {"comments": 0, "contacts": 0, "case_refs": 0, "officers": 0, "responses": 0}
    for response_id, row in before.items():
        body = sent[response_id]
        if row["unit"] == "B":  # no retention set there: the defaults, far longer than 35 days
            assert after[response_id]["case_ref"] == body["case_ref"]
            continue
        if response_id == held:  # its complaint is open: everything stays until it closes
            assert after[held]["case_ref"] == "HS-HELD" and after[held]["officer"] == "NV99"
            assert json.loads(after[held]["answers"])["comment"] == body["answers"]["comment"]
            assert held in contacts
            continue
        if row["day"] < gone:
            assert response_id not in after and response_id not in contacts
            counts["responses"] += 1
            continue
        kept = after[response_id]
        assert (kept["level"], kept["satisfied"]) == (row["level"], row["satisfied"])
        # Its contact at least was erased: the content hash no longer comes from the submission.
        assert kept["content_hash"].startswith("erased:") and kept["content_hash"] != row["content_hash"]
        assert json.loads(kept["answers"])["overall"] == body["answers"]["overall"]
        comment = json.loads(kept["answers"])["comment"]
        assert comment == (MARKER if row["day"] < cut["comments"] else body["answers"]["comment"])
        assert kept["case_ref"] == (None if row["day"] < cut["case_refs"] else body["case_ref"])
        assert kept["officer"] == (None if row["day"] < cut["officers"] else body["officer"])
        assert response_id not in contacts  # every contact is older than 7 days
        erased = json.loads(kept["erased"])
        assert erased == [
            field
            for field, kind in (
                ("comment", "comments"),
                ("contact", None),
                ("case_ref", "case_refs"),
                ("officer", "officers"),
            )
            if kind is None or row["day"] < cut[kind]
        ]
        counts["contacts"] += 1
        for kind in ("comments", "case_refs", "officers"):
            counts[kind] += row["day"] < cut[kind]
    assert all(counts.values()) and counts["comments"] < 70  # some erased, some kept, of each kind
    # The erased comments are no longer found; the kept ones are.
    for response_id, row in before.items():
        if row["unit"] != "A1" or response_id == held or response_id not in after:
            continue
        assert _found(org, words[response_id]) == (0 if row["day"] < cut["comments"] else 1), words[response_id]
    # Aggregates stay as they were, deleted responses included.
    assert _rollups(org) == rollups
    # What the run did, as counts per unit and kind: never content.
    [entry] = rows(org, "SELECT * FROM audit_log WHERE kind = 'retention'")
    assert (entry["action"], entry["actor_kind"], entry["actor_id"]) == ("erase", "job", JOB)
    change = json.loads(entry["change"])["after"]
    assert change["units"] == {"A1": counts}
    assert change["totals"] == {**counts, "invitations": 0, "paper_copies": 0}
    log = " ".join(row["change"] for row in rows(org, "SELECT change FROM audit_log"))
    for body in sent.values():
        assert body["answers"].get("comment", "∅") not in log and body["answers"].get("contact", "∅") not in log
    # Each changed or deleted response is accounted for in the log, so the daily seals still verify.
    logged = rows(org, "SELECT record_id, action FROM audit_log WHERE kind = 'response'")
    purges = [
        json.loads(e["change"])["after"] for e in rows(org, "SELECT change FROM audit_log WHERE action = 'purge'")
    ]
    # A whole day goes as one purge of the day; the day with the held response, response by response.
    beside_held = sum(
        1 for i, row in before.items() if (row["unit"], row["day"]) == ("A1", before[held]["day"]) and i != held
    )
    assert purges and sum(1 for e in logged if e["action"] == "delete") == beside_held
    assert sum(1 for e in logged if e["action"] == "delete") + sum(p["count"] for p in purges) == counts["responses"]
    assert {e["record_id"] for e in logged if e["action"] == "erase"} == {
        i for i in after if i != held and before[i]["unit"] == "A1"
    }
    _verify(org)
    # A second run finds nothing left to do.
    _tick(org, later)
    assert {row["id"]: row for row in rows(org, "SELECT * FROM responses")} == after
    assert len(rows(org, "SELECT seq FROM audit_log WHERE kind = 'retention'")) == 1  # nothing done, nothing logged


@pytest.mark.postgres_covered_elsewhere
def test_the_job_runs_daily_and_ends_kiosk_invitations_too(org: Org, start_server) -> None:
    from feedback.retention import jobs

    [job] = jobs()
    assert (job.name, job.every) == (JOB, 86400)
    server = start_server(org.db, feedback_jobs="0")
    device = httpx.post(f"{server.url}/api/v1/kiosk/enroll", json={"code": enrollment_code(org)}, timeout=10).json()
    invited = httpx.post(
        f"{server.url}/api/v1/kiosks/{device['kiosk']['id']}/invite",
        json={"case_ref": "HS-2024-77", "officer": "NV5"},
        headers=auth_header(org.tokens["admin"]),
        timeout=10,
    )
    assert invited.status_code in (200, 201), invited.text
    now = datetime.now(UTC)
    _tick(org, now + timedelta(days=364))  # within a year (the default for case references): kept
    assert len(rows(org, "SELECT * FROM kiosk_invitations")) == 1
    _tick(org, now + timedelta(days=366))
    assert rows(org, "SELECT * FROM kiosk_invitations") == []
    [entry] = rows(org, "SELECT change FROM audit_log WHERE kind = 'retention'")  # the first run did nothing
    assert json.loads(entry["change"])["after"]["units"] == {"A1a": {"invitations": 1}}
    assert json.loads(entry["change"])["after"]["totals"] == {
        "comments": 0,
        "contacts": 0,
        "case_refs": 0,
        "officers": 0,
        "responses": 0,
        "invitations": 1,
        "paper_copies": 0,
    }


@pytest.mark.postgres_covered_elsewhere
def test_decided_paper_pages_and_second_entries_go_with_the_comments(org: Org) -> None:
    """A scanned page's image and a second entry's copy of the answers are personal data too: once their
    decision is as old as the unit keeps comments (365 days by default), the image is emptied and the
    entry deleted; what still waits for a person stays."""
    now = datetime.now(UTC).replace(microsecond=0)
    at = now.isoformat()
    conn = connect(org.db)
    try:
        with conn:
            for n, status in enumerate(("stored", "waiting")):
                conn.execute(
                    "INSERT INTO paper_scans (digest, source, uploaded_at, uploaded_by, unit, serial, paper, image,"
                    " proposed, reasons, status, resolved_by, resolved_at) VALUES (?, 'scan.pdf p. 1', ?, 'lan',"
                    " 'A1', NULL, 'A4', ?, '{}', '[]', ?, ?, ?)",
                    (f"page-{n}", at, b"\x89PNG page", status, "lan" if n == 0 else None, at if n == 0 else None),
                )
                conn.execute(
                    "INSERT INTO paper_entry_conflicts (digest, serial, response_id, unit, answers, occurred_on,"
                    " channel, contact, source, entered_by, entered_at, status, resolved_by, resolved_at)"
                    " VALUES (?, 'ABCDE-FGHJK', 'r', 'A1', '{}', '2026-01-01', 'paper', NULL, 'keyed', 'lan', ?, ?,"
                    " ?, ?)",
                    (
                        f"entry-{n}",
                        at,
                        "kept_first" if n == 0 else "waiting",
                        "lan" if n == 0 else None,
                        at if n == 0 else None,
                    ),
                )
    finally:
        conn.close()

    def left() -> tuple[list, list]:
        pages = rows(org, "SELECT digest, length(image) AS size FROM paper_scans ORDER BY digest")
        entries = rows(org, "SELECT digest FROM paper_entry_conflicts ORDER BY digest")
        return [(row["digest"], row["size"] > 0) for row in pages], [row["digest"] for row in entries]

    _tick(org, now + timedelta(days=364))
    assert left() == ([("page-0", True), ("page-1", True)], ["entry-0", "entry-1"])
    _tick(org, now + timedelta(days=366))
    assert left() == ([("page-0", False), ("page-1", True)], ["entry-1"])
    [entry] = rows(org, "SELECT change FROM audit_log WHERE kind = 'retention'")
    assert json.loads(entry["change"])["after"]["units"] == {"A1": {"paper_copies": 2}}
