"""What an erasure leaves behind: nothing from which the erased values can be recovered. No stored hash or
logged digest can be checked against a guessed contact, case reference or officer code, the webhook
deliveries of the response's event lose their payload (those not yet sent are withdrawn), and a
call-back mail queued after the erasure is never queued at all. Manager erasure, retention's erasing and
retention's deleting; both backends."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import msgspec

from feedback import audit, audit_seals, ingest
from feedback.models import Submission
from feedback.store import events as event_store
from tests.conftest import BOTH_BACKENDS, Org, auth_header, connect, free_port, poll_until, rows, run_cli
from tests.test_webhooks import Receiver

pytestmark = BOTH_BACKENDS

SECRET_ENV = {"FEEDBACK_SECRET": "test-secret"}
CRITERIA = ("service_time", "waiting_time", "staff_courtesy", "premises", "information")  # tp-b's survey
PRIVATE = ("0912 345 678", "HS-0042", "NV07", "QXJW")  # contact, case reference, officer code, a word typed


def submit(url: str, touchpoint: str, tag: str) -> dict:
    contact, case_ref, officer, word = PRIVATE
    ratings = dict.fromkeys(CRITERIA, 5) if touchpoint == "tp-b" else {"overall": 5}  # no action opened: none holds it
    body = {
        "id": str(uuid.uuid4()),
        "touchpoint": touchpoint,
        "answers": {**ratings, "comment": f"{word} {tag} was rude", "contact": f"{contact} {tag}"},
        "case_ref": f"{case_ref}-{tag}",
        "officer": f"{officer}{tag}",
    }
    reply = httpx.post(f"{url}/api/v1/responses", json=body, timeout=10)
    assert reply.status_code == 201, reply.text
    return body


def deliveries(org: Org, response_id: str) -> list[dict]:
    sql = "SELECT * FROM outbox WHERE event_id = ? ORDER BY target"
    return rows(org, sql, (f"response.stored:{response_id}",))


def queued(org: Org, response_id: str, live: str) -> bool:
    """Both deliveries of a response's event tried: the live target's sent, the dead one's waiting."""
    found = {row["target"]: row for row in deliveries(org, response_id)}
    return (
        len(found) == 2 and found[live]["delivered_at"] is not None and all(r["attempts"] >= 1 for r in found.values())
    )


def everything(org: Org, table: str) -> str:
    return json.dumps(rows(org, f"SELECT * FROM {table}"), default=str)


def pruned(org: Org, key: str) -> bool:
    return bool(rows(org, "SELECT 1 FROM outbox_pruned WHERE key = ?", (event_store.key_digest(key),)))


def assert_traces_gone(org: Org, body: dict, live: str) -> None:
    """The response's webhook rows: the one sent keeps no payload, the one waiting is gone for good."""
    [sent] = deliveries(org, body["id"])
    assert sent["target"] == live and sent["delivered_at"] is not None
    assert json.loads(sent["payload"]) == {}
    waiting = [t for t in rows(org, "SELECT id FROM webhooks") if str(t["id"]) != live]
    assert pruned(org, f"response.stored:{body['id']}|webhook:{waiting[0]['id']}")
    outbox = everything(org, "outbox")
    for value in (body["case_ref"], body["officer"], body["answers"]["comment"], body["answers"]["contact"]):
        assert value not in outbox


def test_nothing_left_of_erased_data_can_be_checked_against_a_guess(org: Org, start_server) -> None:
    receiver = Receiver().start()
    try:
        server = start_server(org.db, feedback_webhook_allow_private="1", feedback_jobs="0")
        admin = org.tokens["admin"]
        hooks = []
        for url in (receiver.url, f"http://127.0.0.1:{free_port()}/hook"):  # the second: nobody listens
            reply = httpx.post(
                f"{server.url}/api/v1/webhooks", json={"url": url, "secret": "s"}, headers=auth_header(admin)
            )
            assert reply.status_code == 201, reply.text
            hooks.append(str(reply.json()["id"]))
        live = hooks[0]
        mine = submit(server.url, "tp-a1", "m")  # erased by a manager, later deleted by retention
        kept = submit(server.url, "tp-b", "r")  # erased by retention
        gone = submit(server.url, "tp-a", "d")  # deleted by retention
        for body in (mine, kept, gone):
            poll_until(lambda body=body: queued(org, body["id"], live), what="the webhook deliveries tried")
        later = (datetime.now(UTC) + timedelta(days=2)).isoformat()
        sealed = run_cli("tick", "--db", str(org.db), "--job", "audit.seal", "--now", later, env=SECRET_ENV)
        assert sealed.returncode == 0, sealed.stderr
        before = rows(org, "SELECT * FROM responses WHERE id = ?", (mine["id"],))[0]

        reply = httpx.post(
            f"{server.url}/api/v1/responses/{mine['id']}/erasure",
            json={"reason": "asked", "fields": ["comment", "contact", "case_ref", "officer"]},
            headers=auth_header(org.tokens["manager_a1"]),
            timeout=10,
        )
        assert reply.status_code == 200, reply.text
        after = rows(org, "SELECT * FROM responses WHERE id = ?", (mine["id"],))[0]

        # The stored hash no longer comes from the submission; the unsalted hash of it is nowhere.
        assert after["content_hash"].startswith("erased:") and after["content_hash"] != before["content_hash"]
        guessed_hash = ingest.content_hash(msgspec.convert(mine, Submission))
        log = everything(org, "audit_log")
        assert guessed_hash not in everything(org, "responses") and guessed_hash not in log
        # Someone who reads the database and the log rebuilds the row from the erased values guessed right:
        # neither the erasure's logged digest nor the seal of the day confirms the guess.
        guessed = {
            **after,
            "answers": json.dumps({**json.loads(after["answers"]), "comment": mine["answers"]["comment"]}),
            "case_ref": mine["case_ref"],
            "officer": mine["officer"],
            "erased": before["erased"],
            "content_hash": guessed_hash,
        }
        assert json.loads(guessed["answers"]) == json.loads(before["answers"])
        assert audit.response_digest(before) in log  # what is logged is the digest of the real row…
        assert audit.response_digest(guessed) not in log  # …which the guesses cannot rebuild
        sql = "SELECT change FROM audit_log WHERE kind = 'seal' AND record_id LIKE 'A1/%'"
        seals = [json.loads(r["change"])["after"]["digest"] for r in rows(org, sql)]
        assert audit_seals.rows_digest([before]) in seals and audit_seals.rows_digest([guessed]) not in seals

        # A resend of the erased response is answered as the duplicate it is, not as a conflict.
        resent = httpx.post(f"{server.url}/api/v1/responses", json=mine, timeout=10)
        assert resent.status_code == 200, resent.text

        assert_traces_gone(org, mine, live)
        # A call-back mail the mail plugin queues after the erasure (it read the contact just before) is
        # refused: the key of every call-back withdrawn is kept, whether or not a row was there.
        conn = connect(org.db)
        try:
            at = datetime.now(UTC).isoformat()
            key = f"callback:{mine['id']}"
            assert not event_store.enqueue(
                conn, channel="mail", dedupe_key=key, target="x@example.org", payload="{}", at=at
            )
            conn.commit()
        finally:
            conn.close()
        assert rows(org, "SELECT 1 FROM outbox WHERE dedupe_key = ?", (key,)) == []

        # Retention: unit B erases after 30 days, unit A deletes after 30 days (A1 follows it).
        for unit, retention in (
            ("B", {"comments_days": 30, "case_refs_days": 30, "officers_days": 30}),
            ("A", {"responses_days": 30}),
        ):
            reply = httpx.patch(
                f"{server.url}/api/v1/units/{unit}", json={"retention": retention}, headers=auth_header(admin)
            )
            assert reply.status_code == 200, reply.text
        now = (datetime.now(UTC) + timedelta(days=40)).isoformat()
        done = run_cli("tick", "--db", str(org.db), "--job", "retention.erase", "--now", now, env=SECRET_ENV)
        assert done.returncode == 0, done.stderr
        assert rows(org, "SELECT id FROM responses WHERE id IN (?, ?)", (mine["id"], gone["id"])) == []
        erased = rows(org, "SELECT * FROM responses WHERE id = ?", (kept["id"],))[0]
        assert erased["case_ref"] is None and erased["content_hash"].startswith("erased:")
        guessed_hash = ingest.content_hash(msgspec.convert(kept, Submission))
        assert guessed_hash not in everything(org, "responses") and guessed_hash not in everything(org, "audit_log")
        for body in (kept, gone):
            assert_traces_gone(org, body, live)
        verified = run_cli("audit", "verify", "--db", str(org.db), env=SECRET_ENV)
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        receiver.stop()
