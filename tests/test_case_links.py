"""Signed case links and verified case references, and whose services a touchpoint may be rated for,
through a real server, a real SQLite file and Debian's Chromium."""

from __future__ import annotations

import csv
import io
import json
import re
import threading
import uuid
from urllib.parse import urlsplit

import httpx
import openpyxl
import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import Browser

from feedback import auth, organisation
from tests.conftest import Org, Server, auth_header, connect, rows
from tests.manage_helpers import add_user, sign_in
from tests.test_kiosk_api import enroll, item, sync
from tests.test_maintenance import VASH_KEYS, dump_rollups, rebuild
from tests.test_plugins import write_plugin
from tests.test_quality_hooks import RECORDER, read_events

# SQLite only: what these tests add on PostgreSQL is the store's SQL, which the two-backend modules cover.


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, shared_org: Org):
    """make_org plus a service of agency B (SB), one of no agency (S0), a viewer of A1, a retired
    touchpoint, and a server whose plugin records every event."""
    folder = tmp_path_factory.mktemp("case-links")
    org = shared_org
    conn = connect(org.db)
    conn.execute("BEGIN")
    organisation.add_service(conn, "SB", "Таможенное оформление", agency="B")
    organisation.add_service(conn, "S0", "Any agency's help desk")
    org.tokens["viewer_a1"] = auth.create_token(conn, "vy", "viewer", "A1")
    organisation.add_touchpoint(conn, "A1", "Old counter", "csat", token="tp-old")
    conn.execute("UPDATE touchpoints SET retired_at = '2024-01-01T00:00:00+00:00' WHERE token = 'tp-old'")
    conn.execute("COMMIT")
    conn.close()
    log = folder / "events.jsonl"
    plugins = write_plugin(folder / "plugins", "recorder", RECORDER.format(log=str(log)))
    server = Server(org.db, env={"FEEDBACK_PLUGINS_DIR": str(plugins), "FEEDBACK_KIOSK_MIN_INTERVAL": "0"}).start()
    yield org, server, log
    server.stop()


def respond(
    srv: Server, touchpoint: str, level: int, case: str | None = None, token: str | None = None, **extra
) -> httpx.Response:
    body = {"touchpoint": touchpoint, "answers": {"overall": level}, **extra}
    if case is not None:
        body["case_ref"] = case
    return httpx.post(f"{srv.url}/api/v1/responses", json=body, headers=auth_header(token) if token else {}, timeout=30)


def stored(org: Org, response_id: str) -> dict:
    [row] = rows(org, "SELECT * FROM responses WHERE id = ?", (response_id,))
    return row


def case_link(srv: Server, token: str | None, touchpoint: str, body) -> httpx.Response:
    return httpx.post(
        f"{srv.url}/api/v1/touchpoints/{touchpoint}/case-links",
        json=body,
        headers=auth_header(token) if token else {},
        timeout=30,
    )


def signed(srv: Server, org: Org, touchpoint: str, case: str) -> dict:
    reply = case_link(srv, org.tokens["admin"], touchpoint, {"case_ref": case})
    assert reply.status_code == 200, reply.text
    return reply.json()


def hidden_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


def post_page(srv: Server, url: str, level: int, **override: str) -> httpx.Response:
    """Open a survey link as a phone without JavaScript would, and send its form with one rating."""
    page = httpx.get(url, timeout=30)
    assert page.status_code == 200
    fields = {**hidden_fields(page.text), "q.overall": str(level), **override}
    path = urlsplit(url).path
    return httpx.post(f"{srv.url}{path}", data=fields, timeout=30)


def by_receipt(org: Org, html: str) -> dict:
    receipt = re.search(r'class="receipt"><strong>([^<]+)</strong>', html).group(1)
    [row] = rows(org, "SELECT * FROM responses WHERE receipt = ?", (receipt,))
    return row


# -- the attack, and the rule ---------------------------------------------------------------------------------------
def test_a_forged_first_rating_no_longer_pre_empts_the_citizen(browser: Browser, start_server, org: Org) -> None:
    """Someone who knows the case number rates it first; the citizen's bad review through the signed link
    on their receipt still counts and opens its work order, and the rollups rebuild to what ingest kept."""
    srv = start_server(org.db)
    case = "450000-2026-0117"
    forged = respond(srv, "tp-a1a", 5, case)
    assert forged.status_code == 201
    link = case_link(srv, org.tokens["manager_a1"], "tp-a1a", {"case_ref": case})
    assert link.status_code == 200, link.text

    context = browser.new_context(viewport={"width": 360, "height": 640})
    page = context.new_page()
    page.goto(link.json()["url"])
    assert page.locator(".case strong").inner_text() == case
    page.locator('input[name="q.overall"][value="1"]').check()
    page.locator("button.send").click()
    page.wait_for_selector(".receipt")
    receipt = page.locator(".receipt").inner_text().strip()
    context.close()

    [citizen] = rows(org, "SELECT * FROM responses WHERE receipt = ?", (receipt,))
    first = stored(org, forged.json()["id"])
    assert (citizen["case_ref"], citizen["level"], citizen["case_verified"]) == (case, 1, 1)
    assert json.loads(citizen["flags"]) == []  # counted, not a duplicate
    assert (first["case_verified"], json.loads(first["flags"])) == (0, [])  # kept, and counted like any rating
    actions = rows(org, "SELECT kind, unit, response_id FROM actions")
    assert actions == [{"kind": "work_order", "unit": "A1a", "response_id": citizen["id"]}]
    rates = httpx.get(
        f"{srv.url}/api/v1/satisfaction", params={"unit": "A1a"}, headers=auth_header(org.tokens["admin"])
    ).json()
    assert rates["total"]["n"] == 2

    # After the real rating the case is claimed: a later unsigned one is a duplicate, out of the rates.
    late = respond(srv, "tp-a1a", 5, case)
    assert json.loads(stored(org, late.json()["id"])["flags"]) == ["duplicate_case"]
    assert len(rows(org, "SELECT id FROM actions")) == 1
    ingested = dump_rollups(org.db)
    rebuild(org.db)
    assert dump_rollups(org.db) == ingested


def test_only_a_verified_reference_claims_a_case(env) -> None:
    org, srv, _ = env
    admin = org.tokens["admin"]

    def flags(reply: httpx.Response) -> list[str]:
        assert reply.status_code == 201, reply.text
        return json.loads(stored(org, reply.json()["id"])["flags"])

    # Two unverified ratings of a case: neither can push the other out.
    assert [flags(respond(srv, "tp-a1", 4, "U-U")), flags(respond(srv, "tp-a1", 2, "U-U"))] == [[], []]
    # Unverified, then verified: the verified one counts.
    assert [flags(respond(srv, "tp-a1", 5, "U-V")), flags(respond(srv, "tp-a1", 1, "U-V", admin))] == [[], []]
    # Two verified: the second is a duplicate, as ever.
    assert [flags(respond(srv, "tp-a1", 4, "V-V", admin)), flags(respond(srv, "tp-a1", 3, "V-V", admin))] == [
        [],
        ["duplicate_case"],
    ]
    # Verified, then unverified: a second rating or a forgery after the real one; out of the rates.
    assert [flags(respond(srv, "tp-a1", 2, "V-U", admin)), flags(respond(srv, "tp-a1", 5, "V-U"))] == [
        [],
        ["duplicate_case"],
    ]
    # A case is claimed per touchpoint.
    assert flags(respond(srv, "tp-a", 5, "V-U", admin)) == []


# -- signed links -------------------------------------------------------------------------------------------------
def test_a_signed_link_verifies_and_a_wrong_or_missing_sig_keeps_the_case_unverified(env) -> None:
    org, srv, _ = env
    link = signed(srv, org, "tp-a1", "H33-240115-0007")
    assert link["url"] == f"{srv.url}/s/tp-a1?case=H33-240115-0007&sig={link['sig']}"
    assert re.fullmatch(r"[A-Za-z0-9_-]{12}", link["sig"])
    page = httpx.get(link["url"]).text
    assert hidden_fields(page)["case_sig"] == link["sig"]
    assert f"&amp;sig={link['sig']}" in page  # the language switcher keeps the signature

    good = post_page(srv, link["url"], 4)
    assert good.status_code == 201
    assert by_receipt(org, good.text)["case_verified"] == 1

    tampered = link["sig"][:-1] + ("A" if link["sig"][-1] != "A" else "B")
    other_case = signed(srv, org, "tp-a1", "H33-240115-0008")["sig"]
    other_touchpoint = signed(srv, org, "tp-a", "H33-240115-0009")["sig"]
    for case, sig in (
        ("H33-240115-0009", tampered),
        ("H33-240115-0009", other_case),
        ("H33-240115-0009", other_touchpoint),
        ("H33-240115-0009", ""),
    ):
        reply = post_page(srv, f"{srv.url}/s/tp-a1?case={case}&sig={sig}", 4)
        assert reply.status_code == 201  # kept, not refused
        row = by_receipt(org, reply.text)
        assert (row["case_ref"], row["case_verified"]) == (case, 0)

    # Without a form's hidden fields (an old page), the signature in the address still counts.
    fresh = signed(srv, org, "tp-a1", "H33-240115-0010")
    bare = httpx.post(fresh["url"], data={"form_id": str(uuid.uuid4()), "q.overall": "5"})
    assert bare.status_code == 201 and by_receipt(org, bare.text)["case_verified"] == 1
    # A signature is for the case it was made for: a typed-in case beside it is not verified.
    swapped = httpx.post(fresh["url"], data={"form_id": str(uuid.uuid4()), "q.overall": "5", "case_ref": "OTHER"})
    assert by_receipt(org, swapped.text)["case_verified"] == 0


def test_case_links_endpoint_is_for_managers_of_the_unit(env) -> None:
    org, srv, _ = env
    body = {"case_ref": "HC-2026-1"}
    expected = {
        (None, "tp-a1a"): 401,
        ("viewer_b", "tp-b"): 403,  # a viewer hands out no cases
        ("viewer_a1", "tp-a1"): 403,
        ("manager_a1", "tp-a1a"): 200,  # below A1
        ("manager_a1", "tp-a1"): 200,
        ("manager_a1", "tp-a"): 403,  # above A1
        ("manager_a1", "tp-b"): 403,  # another agency
        ("admin", "tp-b"): 200,
        ("admin", "tp-nope"): 404,
        ("manager_a1", "tp-old"): 410,  # retired: its link would only say so
    }
    found = {(who, tp): case_link(srv, org.tokens.get(who), tp, body).status_code for who, tp in expected}
    assert found == expected
    unknown = httpx.post(
        f"{srv.url}/api/v1/touchpoints/tp-a1/case-links", json=body, headers=auth_header("fbk_not-a-token")
    )
    assert unknown.status_code == 401
    [short_code] = [r["short_code"] for r in rows(org, "SELECT short_code FROM touchpoints WHERE token = 'tp-a1'")]
    by_code = case_link(srv, org.tokens["manager_a1"], short_code, body).json()
    assert by_code["url"].startswith(f"{srv.url}/s/tp-a1?")  # the canonical token, which the signature covers

    for bad in ({}, {"case_ref": ""}, {"case_ref": "x" * 129}, {"case_ref": "A\nB"}, {"case_ref": 7}):
        reply = case_link(srv, org.tokens["admin"], "tp-a1", bad)
        assert reply.status_code == 400, (bad, reply.text)
        assert reply.json()["field"] == "case_ref" and reply.json()["detail"].startswith("case_ref")
    assert case_link(srv, org.tokens["admin"], "tp-a1", {"case_ref": "x", "extra": 1}).json()["field"] == "extra"

    document = httpx.get(f"{srv.url}/schema/openapi.json").json()
    operation = document["paths"]["/api/v1/touchpoints/{token}/case-links"]["post"]
    schemas = document["components"]["schemas"]

    def resolve(schema: dict) -> dict:
        return schemas[schema["$ref"].rsplit("/", 1)[-1]] if "$ref" in schema else schema

    request = resolve(operation["requestBody"]["content"]["application/json"]["schema"])
    answer = resolve(operation["responses"]["200"]["content"]["application/json"]["schema"])
    assert request["required"] == ["case_ref"] and request["properties"]["case_ref"]["maxLength"] == 128
    assert set(answer["properties"]) == {"url", "sig"} and set(answer["required"]) == {"url", "sig"}


def test_case_qr_codes_carry_a_signature_only_when_one_is_earned(env) -> None:
    org, srv, _ = env
    case = "000.00.17.H33-240115-0001"
    link = signed(srv, org, "tp-a1", case)

    def qr(token: str | None = None, **params) -> httpx.Response:
        return httpx.get(
            f"{srv.url}/api/v1/touchpoints/tp-a1/qr.png",
            params={"case": case, **params},
            headers=auth_header(org.tokens[token]) if token else {},
            timeout=30,
        )

    def decoded(reply: httpx.Response) -> str:
        assert reply.status_code == 200, reply.text
        [text] = [code.text for code in zxingcpp.read_barcodes(Image.open(io.BytesIO(reply.content)))]
        return text

    # The manager's counter asks with its token: the code is signed, and no shared cache keeps it.
    by_token = qr("manager_a1")
    assert decoded(by_token) == link["url"] and "no-store" in by_token.headers["cache-control"]
    # Anyone may draw the code of a signature they were given; a wrong one is refused.
    by_sig = qr(sig=link["sig"])
    assert decoded(by_sig) == link["url"] and "max-age=86400" in by_sig.headers["cache-control"]
    wrong = qr(sig=link["sig"][::-1])
    assert wrong.status_code == 400 and wrong.json()["field"] == "sig"
    # Without either, the public route signs nothing: the case travels unsigned, as before.
    assert decoded(qr()) == f"{srv.url}/s/tp-a1?case={case}"
    assert qr("viewer_a1").status_code == 403
    assert qr("manager_a1").status_code == 200 and qr("viewer_b").status_code == 403
    svg = httpx.get(f"{srv.url}/api/v1/touchpoints/tp-a1/qr.svg", params={"case": case, "sig": link["sig"]})
    assert f"sig={link['sig']}" in svg.text


# -- kiosk invitations and integrations --------------------------------------------------------------------------
def test_a_kiosk_invitation_verifies_its_case(env) -> None:
    org, srv, _ = env
    device, kiosk_id = enroll(srv.url, org)
    received: dict = {}
    waiter = threading.Thread(
        target=lambda: received.update(
            httpx.get(
                f"{srv.url}/api/v1/kiosk/invitation", params={"wait": 10}, headers=auth_header(device), timeout=15
            ).json()
        )
    )
    waiter.start()
    reply = httpx.post(
        f"{srv.url}/api/v1/kiosks/{kiosk_id}/invite",
        headers=auth_header(org.tokens["manager_a1"]),
        json={"case_ref": "KIOSK-CASE-1", "service": "S1"},
    )
    assert reply.status_code == 201, reply.text
    waiter.join(15)
    assert received["invitation"]["case_ref"] == "KIOSK-CASE-1"
    invited, typed = item(0, 2, case_ref="KIOSK-CASE-1", service="S1"), item(10, 5, case_ref="KIOSK-CASE-2")
    assert [r["status"] for r in sync(srv.url, device, [invited, typed])] == ["stored", "stored"]
    assert stored(org, invited["id"])["case_verified"] == 1
    assert stored(org, typed["id"])["case_verified"] == 0  # never sent to this kiosk
    # The invited rating claimed its case: an unsigned one after it is a duplicate.
    late = respond(srv, "tp-a1a", 5, "KIOSK-CASE-1")
    assert json.loads(stored(org, late.json()["id"])["flags"]) == ["duplicate_case"]
    # Another kiosk never received that invitation.
    other, _ = enroll(srv.url, org)
    foreign = item(20, 4, case_ref="KIOSK-CASE-1")
    sync(srv.url, other, [foreign])
    assert stored(org, foreign["id"])["case_verified"] == 0


def test_an_authenticated_integration_vouches_within_its_subtree(env) -> None:
    org, srv, log = env
    cases = {
        ("admin", "tp-b"): 1,
        ("manager_a1", "tp-a1a"): 1,
        ("manager_a1", "tp-a1"): 1,
        ("manager_a1", "tp-a"): 0,  # above its unit
        ("manager_a1", "tp-b"): 0,
        ("viewer_a1", "tp-a1"): 0,  # a viewer vouches for nothing
        ("viewer_b", "tp-b"): 0,
        ("unknown", "tp-a1"): 0,  # the endpoint stays public: stored, unverified
        (None, "tp-a1"): 0,
    }
    ids = {}
    for (who, touchpoint), _verified in cases.items():
        token = "fbk_unknown" if who == "unknown" else org.tokens.get(who)
        answers = {key: 5 for key in VASH_KEYS} if touchpoint == "tp-b" else {"overall": 4}
        reply = httpx.post(
            f"{srv.url}/api/v1/responses",
            headers=auth_header(token) if token else {},
            json={"touchpoint": touchpoint, "answers": answers, "case_ref": f"INT-{who}-{touchpoint}"},
        )
        assert reply.status_code == 201, reply.text
        ids[(who, touchpoint)] = reply.json()["id"]
    assert {key: stored(org, rid)["case_verified"] for key, rid in ids.items()} == cases
    no_case = respond(srv, "tp-a1", 4, token=org.tokens["admin"])
    assert stored(org, no_case.json()["id"])["case_verified"] == 0  # nothing to vouch for
    events = {e["data"]["id"]: e["data"] for e in read_events(log) if e["type"] == "response.stored"}
    assert events[ids[("admin", "tp-b")]]["case_verified"] is True
    assert events[ids[(None, "tp-a1")]]["case_verified"] is False


# -- shown as unverified ------------------------------------------------------------------------------------------
def test_the_list_and_the_exports_show_whether_a_case_was_verified(env) -> None:
    org, srv, _ = env
    verified = respond(srv, "tp-a1", 4, "SHOW-V", org.tokens["admin"]).json()["id"]
    unverified = respond(srv, "tp-a1", 4, "SHOW-U").json()["id"]
    plain = respond(srv, "tp-a1", 4).json()["id"]

    export = httpx.get(
        f"{srv.url}/api/v1/exports/responses.csv",
        params={"unit": "A1"},
        headers=auth_header(org.tokens["admin"]),
        timeout=30,
    )
    table = {row["id"]: row for row in csv.DictReader(io.StringIO(export.text.lstrip("\ufeff")))}
    assert [table[i]["case_verified"] for i in (verified, unverified, plain)] == ["1", "0", ""]
    xlsx = httpx.get(
        f"{srv.url}/api/v1/exports/responses.xlsx",
        params={"unit": "A1"},
        headers=auth_header(org.tokens["admin"]),
        timeout=30,
    )
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content), read_only=True).active
    header, *values = [list(row) for row in sheet.iter_rows(values_only=True)]
    cells = {row[header.index("id")]: row[header.index("case_verified")] for row in values}
    assert [str(cells[i] if cells[i] is not None else "") for i in (verified, unverified, plain)] == ["1", "0", ""]

    for lang, label in (
        ("en", "(unverified)"),
        ("vi", "(chưa xác thực)"),
        ("ru", "(не подтверждён)"),
        ("zh", "(未验证)"),
    ):
        add_user(org.db, f"quality-{lang}", "correct horse 1", "manager", "A1", lang=lang)
        with httpx.Client() as client:
            sign_in(client, srv, f"quality-{lang}", "correct horse 1")
            page = client.get(f"{srv.url}/manage/units/A1/responses", params={"lang": lang}).text
        cells_of = {
            case: re.search(rf'<td class="dash-case">{case}(.*?)</td>', page).group(1) for case in ("SHOW-V", "SHOW-U")
        }
        assert label not in cells_of["SHOW-V"] and label in cells_of["SHOW-U"], lang
        assert 'id="unverified-note"' in page


# -- services of another agency -----------------------------------------------------------------------------------
def test_ingest_refuses_a_service_of_another_agency(env) -> None:
    org, srv, _ = env
    refused = respond(srv, "tp-a1", 4, service="SB")  # an A1 counter rated for agency B's service
    assert refused.status_code == 400
    assert refused.json()["field"] == "service" and refused.json()["detail"].startswith("service")
    assert respond(srv, "tp-a", 4, service="SB").status_code == 400
    vash = {key: 5 for key in VASH_KEYS}
    b_for_a = httpx.post(f"{srv.url}/api/v1/responses", json={"touchpoint": "tp-b", "answers": vash, "service": "S1"})
    assert b_for_a.status_code == 400 and b_for_a.json()["field"] == "service"
    # Its own agency's tree, above or below the agency, and services of no agency are fine.
    assert (
        httpx.post(
            f"{srv.url}/api/v1/responses", json={"touchpoint": "tp-b", "answers": vash, "service": "SB"}
        ).status_code
        == 201
    )
    assert respond(srv, "tp-a1a", 4, service="S1").status_code == 201
    assert respond(srv, "tp-a", 4, service="S2").status_code == 201
    assert respond(srv, "tp-a1", 4, service="S0").status_code == 201
    assert not rows(org, "SELECT id FROM responses WHERE service = 'SB' AND unit != 'B'")


def test_kiosk_sync_and_invitations_refuse_a_service_of_another_agency(env) -> None:
    org, srv, _ = env
    device, kiosk_id = enroll(srv.url, org)
    foreign, own = item(0, 4, service="SB"), item(10, 4, service="S2")
    results = sync(srv.url, device, [foreign, own])
    assert [r["status"] for r in results] == ["rejected", "stored"]
    assert results[0]["field"] == "service" and results[0]["reason"].startswith("service")
    assert not rows(org, "SELECT id FROM responses WHERE id = ?", (foreign["id"],))
    invite = httpx.post(
        f"{srv.url}/api/v1/kiosks/{kiosk_id}/invite",
        headers=auth_header(org.tokens["admin"]),
        json={"case_ref": "X-1", "service": "SB"},
    )
    assert invite.status_code == 400 and invite.json()["field"] == "service"
