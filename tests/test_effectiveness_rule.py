"""The effectiveness rule: an action under review closes as effective only when the whole Wilson interval
clears its target, reopens when the whole interval misses it, and in between is watched up to
FEEDBACK_EFFECTIVENESS_WEEKS weeks longer before its owner must decide, with the figures on the page.

Ratings go through a real server; actions are opened and moved on the SQLite file; the job runs as
`feedback tick`; the action page is read signed in, in the four languages.
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from babel import Locale
from babel.numbers import format_percent

from feedback import actions
from feedback.catalog import load_snapshot
from feedback.i18n import gettext_for
from feedback.models import ActionRequest
from feedback.rates import wilson
from tests.conftest import Org, auth_header, default_plugins, make_org, rows, run_cli
from tests.manage_helpers import add_user, sign_in

TARGET = 0.9
NOW = datetime.now(UTC)


def on_file(db: Path, fn) -> Any:
    conn = sqlite3.connect(db, isolation_level=None, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("BEGIN IMMEDIATE")
        result = fn(conn, load_snapshot(conn, default_plugins()))
        conn.execute("COMMIT")
        return result
    finally:
        conn.close()


def under_review(db: Path, key: str, unit: str, service: str, review: datetime) -> int:
    """An action with a 90 % target, walked to effectiveness review on `review` (a one-week watch)."""

    def run(conn: sqlite3.Connection, snapshot: Any) -> int:
        request = ActionRequest(
            kind="nonconformity", source_key=key, unit=unit, title=key, service=service, target=TARGET
        )
        aid = actions.open_action(conn, request, snapshot=snapshot, now=review - timedelta(days=1))["id"]
        for state in ("verifying", "corrected", "implemented", "effectiveness_review"):
            actions.transition(
                conn, aid, state, actor="lan", role="manager", fields={}, snapshot=snapshot, now=review, weeks=1
            )
        return aid

    return on_file(db, run)


def rate(server, touchpoint: str, service: str, good: int, bad: int, days_ago: int) -> None:
    when = (NOW - timedelta(days=days_ago)).isoformat()
    for level in [5] * good + [1] * bad:
        body = {"touchpoint": touchpoint, "answers": {"overall": level}, "service": service, "submitted_at": when}
        reply = httpx.post(f"{server.url}/api/v1/responses", json=body, timeout=15)
        assert reply.status_code == 201, reply.text


def tick(db: Path, now: datetime) -> None:
    result = run_cli(
        "tick",
        "--db",
        str(db),
        "--now",
        now.isoformat(),
        "--job",
        "actions.effectiveness",
        env={"FEEDBACK_EFFECTIVENESS_WEEKS": "2", "FEEDBACK_MIN_N": "30", "FEEDBACK_JOBS": "0"},
    )
    assert result.returncode == 0, result.stderr[-3000:]


def last_event(org: Org, aid: int) -> dict[str, Any]:
    found = rows(org, "SELECT * FROM action_events WHERE action = ? ORDER BY seq DESC LIMIT 1", (aid,))[0]
    return {**found, "figures": json.loads(found["data"]).get("effectiveness", {})}


def percent(value: float, lang: str) -> str:
    """A share in the language's own percent pattern with one decimal, straight from Babel."""
    locale = Locale.parse({"vi": "vi", "ru": "ru", "zh": "zh_Hans_CN", "en": "en"}[lang])
    pattern = locale.percent_formats[None].pattern.replace("#,##0", "#,##0.0", 1)
    return format_percent(value, pattern, locale=locale).replace("\u00a0", " ")


@pytest.fixture
def judged(tmp_path: Path, start_server):
    """Three actions, each watched for one week of its own, with 40/40, 24/30 and 10/30 satisfied."""
    org = make_org(tmp_path / "feedback.db")
    add_user(org.db, "boss", "correct horse 1", "manager", "A")
    server = start_server(org.db, FEEDBACK_JOBS="0")
    ids = {
        # A1 / S1 (tp-a1): days 27..20 ago and 11..4 ago; A / S2 (tp-a): days 19..12 ago.
        "effective": under_review(org.db, "effective", "A1", "S1", NOW - timedelta(days=27)),
        "undecided": under_review(org.db, "undecided", "A", "S2", NOW - timedelta(days=19)),
        "not_effective": under_review(org.db, "not-effective", "A1", "S1", NOW - timedelta(days=11)),
    }
    rate(server, "tp-a1", "S1", 40, 0, 24)
    rate(server, "tp-a", "S2", 24, 6, 16)  # 80 %: Wilson 62.7 % to 90.5 %, which reaches 90 % but does not clear it
    rate(server, "tp-a1", "S1", 10, 20, 8)
    tick(org.db, NOW)
    return org, server, ids


def test_three_outcomes_by_the_interval(judged) -> None:
    org, _server, ids = judged
    status = {r["id"]: r for r in rows(org, "SELECT * FROM actions")}

    # 40 of 40: the whole interval clears 90 % → closed by the software.
    assert status[ids["effective"]]["status"] == "closed"
    event = last_event(org, ids["effective"])
    assert (event["type"], event["actor"]) == ("closed", "system")
    assert event["figures"]["verdict"] == "effective" and event["figures"]["ci95"][0] >= TARGET

    # 10 of 30: the whole interval misses 90 % → reopened.
    assert status[ids["not_effective"]]["status"] == "reopened"
    event = last_event(org, ids["not_effective"])
    assert event["figures"]["verdict"] == "not_effective" and event["figures"]["ci95"][1] < TARGET

    # 24 of 30 = 80 % against 90 %: the upper bound reaches the target, the lower does not → NOT closed.
    undecided = status[ids["undecided"]]
    assert undecided["status"] == "effectiveness_review" and undecided["closed_at"] is None
    event = last_event(org, ids["undecided"])
    low, high = wilson(24, 30)
    assert low < TARGET <= high  # the case the old rule closed as effective
    assert event["type"] == "effectiveness_undecided"
    assert event["figures"]["verdict"] == "undecided" and event["figures"]["n"] == 30
    assert event["figures"]["rate"] == pytest.approx(0.8)
    # Watched one week more, up to FEEDBACK_EFFECTIVENESS_WEEKS (2) after the first watch ended.
    first_end = datetime.fromisoformat(event["figures"]["watch_until"]).date()
    assert undecided["watch_until"] == (first_end + timedelta(weeks=1)).isoformat()
    assert event["figures"]["decide_by"] == (first_end + timedelta(weeks=2)).isoformat()
    assert "80.0 %" in event["note"] and "90.0 %" in event["note"]  # the figures on record


def test_undecided_watch_ends_in_the_owners_decision(judged) -> None:
    org, server, ids = judged
    aid = ids["undecided"]
    boss = org.tokens["admin"]

    def detail() -> dict[str, Any]:
        reply = httpx.get(f"{server.url}/api/v1/actions/{aid}", headers=auth_header(boss), timeout=15)
        assert reply.status_code == 200, reply.text
        return reply.json()

    assert detail()["decision_needed"] is False
    # While the software watches, only it reopens.
    reply = httpx.post(
        f"{server.url}/api/v1/actions/{aid}/events", json={"type": "reopened"}, headers=auth_header(boss), timeout=15
    )
    assert reply.status_code == 409 and reply.json()["field"] == "type"

    decide_by = datetime.fromisoformat(last_event(org, aid)["figures"]["decide_by"])
    tick(org.db, NOW)  # the extended watch ended too: still undecided, watched to the limit
    assert (
        rows(org, "SELECT watch_until FROM actions WHERE id = ?", (aid,))[0]["watch_until"]
        == decide_by.date().isoformat()
    )
    tick(org.db, decide_by.replace(tzinfo=UTC) + timedelta(days=1))
    row = rows(org, "SELECT * FROM actions WHERE id = ?", (aid,))[0]
    assert row["status"] == "effectiveness_review" and row["watch_until"] is None
    event = last_event(org, aid)
    assert (event["type"], event["actor"]) == ("effectiveness_decision_needed", "system")
    assert event["figures"]["verdict"] == "undecided" and event["figures"]["n"] == 30
    changed = rows(org, "SELECT data FROM event_log WHERE type = 'action.changed'")
    assert any(json.loads(r["data"])["id"] == aid and json.loads(r["data"])["decision_needed"] for r in changed)
    shown = detail()
    assert shown["decision_needed"] is True and shown["status"] == "effectiveness_review"

    # The page puts the figures in front of the owner, in each language.
    client = httpx.Client(base_url=server.url, timeout=15)
    sign_in(client, server, "boss", "correct horse 1")
    low, high = wilson(24, 30)
    for lang in ("vi", "ru", "zh", "en"):
        _ = gettext_for(lang)
        page = client.get(f"/manage/actions/{aid}", params={"lang": lang})
        assert page.status_code == 200
        text = re.sub(r"<[^>]+>", " ", page.text)
        text = re.sub(r"\s+", " ", text.replace("\u00a0", " ").replace("\u202f", " "))

        for expected in (
            _("Decision needed"),
            _("Effectiveness check"),
            _("effect_verdict.undecided"),
            _("action_event.effectiveness_decision_needed"),
            percent(0.8, lang),
            f"{percent(low, lang)} – {percent(high, lang)}",
            f"≥ {percent(TARGET, lang)}",
        ):
            assert expected in text, (lang, expected)
        assert 'id="step-reopened"' in page.text and 'id="step-closed"' in page.text
    # The queue and the board flag it beside its status, so the owner finds it.
    for path in ("/manage/actions", "/manage/actions/board"):
        page = client.get(path, params={"lang": "ru"})
        assert page.status_code == 200
        row = re.search(rf'id="action-{aid}".*?</(tr|li)>', page.text, re.S)
        assert row and gettext_for("ru")("Decision needed") in row.group(0), path

    # The owner decides: reopening is open to people now.
    reply = httpx.post(
        f"{server.url}/api/v1/actions/{aid}/events",
        json={"type": "reopened", "note": "80 % is not good enough"},
        headers=auth_header(boss),
        timeout=15,
    )
    assert reply.status_code == 201, reply.text
    assert reply.json()["action"]["status"] == "reopened" and reply.json()["action"]["decision_needed"] is False


def test_page_texts_of_the_rule_are_translated() -> None:
    ids = [
        "Decision needed",
        "Effectiveness check",
        "Ratings watched",
        "Responses (n)",
        "Rate",
        "Verdict",
        "action_event.effectiveness_undecided",
        "action_event.effectiveness_decision_needed",
        *(f"effect_verdict.{v}" for v in ("effective", "not_effective", "undecided", "unknown", "extended")),
        actions.NOTE_UNDECIDED,
        actions.NOTE_DECISION,
        actions.NOTE_UNCONFIRMED,
    ]
    english = gettext_for("en")
    for lang in ("vi", "ru", "zh"):
        _ = gettext_for(lang)
        for message in ids:
            assert _(message) != english(message), (lang, message)
            assert set(re.findall(r"%\((\w+)\)s", _(message))) == set(re.findall(r"%\((\w+)\)s", message))
    assert not any(english(message).startswith(("action_event.", "effect_verdict.")) for message in ids)
