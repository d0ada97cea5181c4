"""What `prepare` derives on its hot path: the unit's local day from a response's moment (kept per zone
for a minute at a time), the id's one stored form (a canonical id taken as sent) and the receipt."""

from __future__ import annotations

import base64
import random
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from feedback import ingest
from feedback.ingest import local_day_text
from tests.conftest import Org, Server, rows


def direct(moment: datetime, tz: str) -> str:
    return moment.astimezone(ZoneInfo(tz)).date().isoformat()


# Around local midnights, daylight-saving changes (New York's hour, Lord Howe's half hour), a zone a
# quarter hour off the hour (Kathmandu), a zone that skipped a whole day (Apia, end of 2011), a local
# mean time offset in seconds (Ho Chi Minh City before 1906), and moments before 1970.
AROUND = [
    ("America/New_York", datetime(2026, 3, 8, 6, 50, tzinfo=UTC)),
    ("America/New_York", datetime(2026, 11, 1, 5, 50, tzinfo=UTC)),
    ("America/New_York", datetime(2026, 12, 4, 4, 50, tzinfo=UTC)),
    ("Australia/Lord_Howe", datetime(2026, 4, 4, 14, 50, tzinfo=UTC)),
    ("Australia/Lord_Howe", datetime(2026, 10, 3, 15, 20, tzinfo=UTC)),
    ("Asia/Kathmandu", datetime(2026, 12, 4, 18, 5, tzinfo=UTC)),
    ("Pacific/Apia", datetime(2011, 12, 30, 9, 50, tzinfo=UTC)),
    ("Asia/Ho_Chi_Minh", datetime(1900, 1, 1, 16, 45, tzinfo=UTC)),
    ("Asia/Ho_Chi_Minh", datetime(1960, 5, 1, 16, 50, tzinfo=UTC)),
    ("Europe/Moscow", datetime(1969, 12, 31, 20, 50, tzinfo=UTC)),
    ("UTC", datetime(1970, 1, 1, 0, 0, tzinfo=UTC) - timedelta(minutes=10)),
]


@pytest.mark.parametrize(("tz", "start"), AROUND, ids=[f"{tz}-{start:%Y%m%d%H%M}" for tz, start in AROUND])
def test_the_local_day_kept_for_a_minute_is_the_day_the_zone_gives(tz: str, start: datetime) -> None:
    ingest._days_by_minute.clear()
    # Each minute of 20, at several seconds in it, in order (as responses come): the first call of a
    # minute computes and may keep the day, the later ones are answered from what was kept.
    for minute in range(20):
        for second in (0.0, 0.5, 19.999, 20.0, 30.0, 59.999999):
            moment = start + timedelta(minutes=minute, seconds=second)
            assert local_day_text(moment, tz) == direct(moment, tz), moment


def test_a_minute_whose_offset_is_in_seconds_is_never_kept() -> None:
    """Ho Chi Minh City's local mean time was 7:06:40 (or 7:06:30) ahead of UTC: its midnight falls inside a
    UTC minute, which therefore holds two local days."""
    ingest._days_by_minute.clear()
    zone = ZoneInfo("Asia/Ho_Chi_Minh")
    offset = datetime(1900, 1, 1, tzinfo=UTC).astimezone(zone).utcoffset()
    assert offset is not None and offset.total_seconds() % 60 != 0
    midnight = datetime(1900, 1, 2, tzinfo=zone).astimezone(UTC)
    minute_start = midnight.replace(second=0)
    before, after = minute_start, minute_start + timedelta(seconds=59)
    assert direct(before, "Asia/Ho_Chi_Minh") != direct(after, "Asia/Ho_Chi_Minh")
    assert local_day_text(before, "Asia/Ho_Chi_Minh") == "1900-01-01"
    assert local_day_text(after, "Asia/Ho_Chi_Minh") == "1900-01-02"
    assert "Asia/Ho_Chi_Minh" not in ingest._days_by_minute


def test_each_zone_keeps_its_own_day() -> None:
    ingest._days_by_minute.clear()
    moment = datetime(2026, 12, 4, 20, 30, 15, tzinfo=UTC)
    assert local_day_text(moment, "Asia/Ho_Chi_Minh") == "2026-12-05"
    assert local_day_text(moment, "America/New_York") == "2026-12-04"
    assert local_day_text(moment, "Asia/Ho_Chi_Minh") == "2026-12-05"
    assert set(ingest._days_by_minute) == {"Asia/Ho_Chi_Minh", "America/New_York"}


@pytest.mark.parametrize(
    "written",
    [
        lambda u: str(u).upper(),
        lambda u: "{" + str(u) + "}",
        lambda u: u.hex,
        lambda u: f"urn:uuid:{u}",
    ],
    ids=["upper case", "braces", "no hyphens", "urn"],
)
def test_an_id_written_another_way_is_stored_in_its_one_form_and_a_resend_in_that_form_is_the_same(
    server: Server, shared_org: Org, written
) -> None:
    response_id = uuid.uuid4()
    body = {"id": written(response_id), "touchpoint": "tp-a", "answers": {"overall": 4}}
    first = httpx.post(f"{server.url}/api/v1/responses", json=body, timeout=10)
    assert first.status_code == 201, first.text
    assert first.json()["id"] == str(response_id)
    assert rows(shared_org, "SELECT count(*) AS n FROM responses WHERE id = ?", (str(response_id),))[0]["n"] == 1
    again = httpx.post(f"{server.url}/api/v1/responses", json={**body, "id": str(response_id)}, timeout=10)
    assert again.status_code == 200, again.text  # a replay: answered from the stored row
    assert again.json()["receipt"] == first.json()["receipt"]


@pytest.mark.parametrize(
    "bad", ["not-a-uuid", "0000abcd-0001-4000-8000-00000000012", "0000abcd-0001-4000-8000-0000000001234", "g" * 32]
)
def test_an_id_that_is_no_uuid_is_a_400_naming_the_id(server: Server, shared_org: Org, bad: str) -> None:
    before = rows(shared_org, "SELECT count(*) AS n FROM responses")[0]["n"]
    reply = httpx.post(
        f"{server.url}/api/v1/responses", json={"id": bad, "touchpoint": "tp-a", "answers": {"overall": 4}}, timeout=10
    )
    assert reply.status_code == 400, reply.text
    assert reply.json()["field"] == "id"
    assert rows(shared_org, "SELECT count(*) AS n FROM responses")[0]["n"] == before


def test_a_receipt_is_base32_of_its_forty_bits_in_the_receipt_alphabet() -> None:
    """The symbols a receipt has always had (Base32, most significant bits first), drawn by pairs."""
    rng = random.Random(4)
    to_alphabet = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", ingest.RECEIPT_ALPHABET.encode())
    for five in [b"\x00" * 5, b"\xff" * 5, *(rng.randbytes(5) for _ in range(2_000))]:
        code = base64.b32encode(five).translate(to_alphabet).decode()
        assert ingest.receipt_from(int.from_bytes(five)) == f"{code[:4]}-{code[4:]}"
    drawn = {ingest.new_receipt() for _ in range(1_000)}
    assert len(drawn) == 1_000 and all(ingest.normalise_receipt(r) == r for r in drawn)
