"""The survey page of a touchpoint retired while a citizen was filling in its form.

A form the server rendered while the code was live is still taken after the retirement (it is counted
for the moment it was opened); a form opened afterwards, or one whose id the server did not sign, gets
the polite 410 page as before. Real server, real SQLite file; the touchpoint is retired through the
/manage admin form.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.conftest import Org, Server, auth_header, rows
from tests.test_retired_touchpoints import retire, stored_ids

RETIRED_TITLE = "This code is no longer in use"
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")  # unit A's time zone in make_org


def open_form(server: Server, token: str = "tp-a") -> str:
    """Open the survey page as a phone would; returns the form id the server put in it."""
    page = httpx.get(f"{server.url}/s/{token}?lang=en", timeout=10)
    assert page.status_code == 200, page.text[:500]
    found = re.search(r'name="form_id" value="([^"]+)"', page.text)
    assert found, "the page carries a form id"
    return found.group(1)


def send(server: Server, form_id: str, **answers: str) -> httpx.Response:
    fields = {"form_id": form_id, "lang": "en", **{f"q.{key}": value for key, value in answers.items()}}
    return httpx.post(f"{server.url}/s/tp-a?lang=en", data=fields, timeout=10)


def rendered_at(form_id: str) -> datetime:
    """The render time a UUID v7 form id carries in its first 48 bits."""
    return datetime.fromtimestamp((uuid.UUID(form_id).int >> 80) / 1000, UTC)


def counted(server: Server, org: Org, day: str) -> int:
    """n of tp-a on one local day, as the satisfaction API reports it."""
    reply = httpx.get(
        f"{server.url}/api/v1/satisfaction",
        params={"unit": "A", "from": day, "to": day, "by": "touchpoint"},
        headers=auth_header(org.tokens["admin"]),
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    return sum(row["n"] for row in reply.json()["rows"] if row["key"] == "tp-a")


def local_day(moment: datetime) -> str:
    return moment.astimezone(ZONE).date().isoformat()


@pytest.fixture
def server(start_server, org: Org) -> Server:
    return start_server(org.db)


def test_form_opened_before_retirement_is_stored_and_counted(server: Server, org: Org) -> None:
    form_id = open_form(server)
    parsed = uuid.UUID(form_id)
    assert parsed.version == 7
    opened = rendered_at(form_id)
    assert abs(datetime.now(UTC) - opened) < timedelta(seconds=30)
    unanswered = open_form(server)  # a second phone, whose answer is first refused as incomplete
    day = local_day(opened)
    n_before = counted(server, org, day)

    retired_at = datetime.fromisoformat(retire(server, org, "tp-a", "A"))
    assert opened < retired_at

    reply = send(server, form_id, overall="5")
    assert reply.status_code == 201, reply.text[:500]
    assert "Your receipt code" in reply.text and RETIRED_TITLE not in reply.text
    receipt = re.search(r'class="receipt"><strong>([^<]+)<', reply.text).group(1)
    row = rows(org, "SELECT * FROM responses WHERE id = ?", (form_id,))
    assert len(row) == 1
    row = row[0]
    assert (row["touchpoint"], row["channel"], row["level"], row["receipt"], row["flags"]) == (
        "tp-a",
        "qr",
        5,
        receipt,
        "[]",
    )
    # Counted for when the form was opened (while live); the arrival after the retirement stays on record.
    assert datetime.fromisoformat(row["occurred_at"]) == opened
    assert datetime.fromisoformat(row["server_time"]) > retired_at
    assert counted(server, org, day) == n_before + 1

    # Sent again (a double tap, the back button): the same response, nothing stored twice.
    again = send(server, form_id, overall="5")
    assert again.status_code == 200 and receipt in again.text and "already recorded" in again.text
    assert rows(org, "SELECT count(*) AS n FROM responses WHERE id = ?", (form_id,))[0]["n"] == 1
    assert counted(server, org, day) == n_before + 1

    # An incomplete answer comes back with the same form id, so the corrected one is still taken.
    incomplete = send(server, unanswered)
    assert incomplete.status_code == 400, incomplete.text[:500]
    assert f'name="form_id" value="{unanswered}"' in incomplete.text
    corrected = send(server, unanswered, overall="2")
    assert corrected.status_code == 201, corrected.text[:500]
    assert stored_ids(org, "tp-a") >= {form_id, unanswered}
    assert counted(server, org, day) == n_before + 2


def test_after_retirement_the_page_and_unsigned_forms_get_the_410_page(server: Server, org: Org) -> None:
    signed = open_form(server)
    retired_at = datetime.fromisoformat(retire(server, org, "tp-a", "A"))
    known = stored_ids(org, "tp-a")

    page = httpx.get(f"{server.url}/s/tp-a?lang=en", timeout=10)
    assert page.status_code == 410 and RETIRED_TITLE in page.text
    assert 'name="form_id"' not in page.text

    before = retired_at - timedelta(minutes=5)
    made_up_v7 = uuid.UUID(int=(int(before.timestamp() * 1000) << 80) | (0x7 << 76) | (0b10 << 62) | 12345)
    assert made_up_v7.version == 7
    tampered = uuid.UUID(int=uuid.UUID(signed).int - (1000 << 80))  # the same id, backdated by a second
    forged = [str(uuid.uuid4()), str(made_up_v7), str(tampered), "not-a-uuid", ""]
    for form_id in forged:
        reply = send(server, form_id, overall="5")
        assert reply.status_code == 410, (form_id, reply.text[:300])
        assert RETIRED_TITLE in reply.text
    assert stored_ids(org, "tp-a") == known

    # The live touchpoints of the same agency are not touched: a form opened now is taken there.
    live = open_form(server, "tp-a1")
    reply = httpx.post(f"{server.url}/s/tp-a1?lang=en", data={"form_id": live, "q.overall": "4"}, timeout=10)
    assert reply.status_code == 201, reply.text[:500]
    assert rows(org, "SELECT touchpoint FROM responses WHERE id = ?", (live,)) == [{"touchpoint": "tp-a1"}]
