"""A kiosk whose clock once ran ahead stays in the rates: the misuse filter is never steered by a
device time already flagged `clock_skew`."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from feedback.kiosks import misuse_flags
from tests.conftest import Org, auth_header
from tests.test_kiosk_api import db_rows, enroll, sync


def tap(moment: datetime, level: int = 4) -> dict:
    return {"id": str(uuid.uuid4()), "answers": {"overall": level}, "submitted_at": moment.isoformat()}


def flags_in_order(org: Org) -> list[list[str]]:
    return [json.loads(r[0]) for r in db_rows(org, "SELECT flags FROM responses ORDER BY server_time, client_time")]


def test_a_tap_stamped_days_ahead_does_not_flag_the_genuine_taps_after_it(start_server, org: Org) -> None:
    srv = start_server(org.db, feedback_kiosk_min_interval="2")
    device, _ = enroll(srv.url, org)
    start = datetime.now(UTC)
    sync(srv.url, device, [tap(start + timedelta(days=2))])  # the clock jumped ahead for one tap
    # The clock is right again: genuine taps minutes apart, each synced as it happens.
    for minutes in (1, 2, 4):
        sync(srv.url, device, [tap(start + timedelta(minutes=minutes))])
    # Two taps a second apart are still a fast repeat: the filter works on, on the device's clock.
    sync(srv.url, device, [tap(start + timedelta(minutes=4, seconds=1))])
    assert flags_in_order(org) == [["clock_skew"], [], [], [], ["fast_repeat"]]
    total = httpx.get(
        f"{srv.url}/api/v1/satisfaction",
        params={"unit": "A1a", "from": "2000-01-01"},
        headers=auth_header(org.tokens["admin"]),
    ).json()["total"]
    assert (total["n"], total["suspect"]) == (4, 1)


def test_a_clock_wrong_all_along_is_judged_on_its_own_spacing(start_server, org: Org) -> None:
    """A tablet whose clock reset to 1970 syncs an offline batch: every tap is skewed, each arrives in the
    same batch, and only the press that followed another within a second is a fast repeat."""
    srv = start_server(org.db, feedback_kiosk_min_interval="2")
    device, _ = enroll(srv.url, org)
    epoch = datetime(1970, 1, 1, 8, tzinfo=UTC)
    sync(srv.url, device, [tap(epoch + timedelta(seconds=s)) for s in (0, 90, 91, 400)])
    flags = [json.loads(r[0]) for r in db_rows(org, "SELECT flags FROM responses ORDER BY client_time")]
    assert flags == [["clock_skew"], ["clock_skew"], ["clock_skew", "fast_repeat"], ["clock_skew"]]


def test_only_earlier_presses_judge_a_press() -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    ahead = [base + timedelta(days=2)]  # recorded from a clock that ran ahead
    later = [base + timedelta(minutes=m) for m in (1, 2, 2.01)]
    assert misuse_flags(later, ahead, 2, 3, 60) == [[], [], ["fast_repeat"]]
    assert ahead == sorted([base + timedelta(days=2), *later])
