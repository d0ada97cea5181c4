"""The corrective-action queue pages a page at a time, filters, sorts and keeps the board usable:
120 actions in a real SQLite file, read through a real server."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.conftest import Org, Server, auth_header, make_org
from tests.manage_helpers import add_user, sign_in

PASSWORD = "correct horse 1"
COUNT = 120
UNITS = ("A", "A1", "A1a", "B")
TZ = {"A": "Asia/Ho_Chi_Minh", "A1": "Asia/Ho_Chi_Minh", "A1a": "Asia/Ho_Chi_Minh", "B": "Asia/Sakhalin"}
PATH_ORDER = {"A": 0, "A1": 1, "A1a": 2, "B": 3}  # the units' tree order (/A/, /A/A1/, /A/A1/A1a/, /B/)
KINDS = ("work_order", "callback", "nonconformity", "manual")
STATES = ("new", "verifying", "action_planned", "implemented", "effectiveness_review", "closed", "corrected")
OWNERS = ("lan", "mai", "ivan", None)
CLOSED = ("closed", "appeal_upheld")
BOARD = {
    "new": ("new",),
    "verifying": ("verifying",),
    "planned": ("corrected", "action_planned", "explained"),
    "implemented": ("implemented",),
    "effectiveness_review": ("effectiveness_review",),
    "appeals": ("appealed", "appeal_rejected", "reopened"),
    "closed": ("closed", "appeal_upheld"),
}
NOW = datetime.now(UTC).replace(hour=5, minute=0, second=0, microsecond=0)


def seeded() -> list[dict[str, Any]]:
    """120 actions spread over units, kinds, states, owners, opening days and deadlines (past and future)."""
    found = []
    for i in range(COUNT):
        unit = UNITS[i % 4]
        status = STATES[(i // 2) % len(STATES)]
        opened = NOW - timedelta(days=COUNT - i, hours=i % 7)
        updated = opened + timedelta(days=(i * 7) % 13, minutes=i)
        due = (NOW + timedelta(days=(i % 5 - 2) * 10 + 1)).date()
        found.append(
            {
                "id": i + 1,
                "kind": KINDS[(i // 4) % 4],
                "source_key": f"seed:{i}",
                "source_type": "manual",
                "unit": unit,
                "title": f"Seeded action {i + 1:03d}",
                "status": status,
                "owner": OWNERS[(i // 3) % 4],
                "due": due.isoformat(),
                "opened_at": opened.isoformat(),
                "updated_at": updated.isoformat(),
                "closed_at": updated.isoformat() if status in CLOSED else None,
                "data": "{}",
            }
        )
    return found


def overdue(action: dict[str, Any]) -> bool:
    today = datetime.now(UTC).astimezone(ZoneInfo(TZ[action["unit"]])).date()
    return action["status"] not in CLOSED and date.fromisoformat(action["due"]) < today


def queue_order(action: dict[str, Any]) -> tuple:
    return (not overdue(action), action["due"], action["id"])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    org = make_org(tmp_path_factory.mktemp("queue") / "feedback.db")
    add_user(org.db, "boss", PASSWORD, "admin", None)
    add_user(org.db, "mai", PASSWORD, "manager", "A1")
    actions = seeded()
    conn = sqlite3.connect(org.db)
    with conn:
        columns = list(actions[0])
        conn.executemany(
            f"INSERT INTO actions ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
            [[a[c] for c in columns] for a in actions],
        )
    conn.close()
    srv = Server(org.db, env={"FEEDBACK_JOBS": "0"}).start()
    yield org, srv, actions
    srv.stop()


def client(srv: Server, user: str) -> httpx.Client:
    session = httpx.Client(base_url=srv.url, timeout=30)
    session.cookies.set("fb_lang", "en")
    sign_in(session, srv, user, PASSWORD)
    return session


def page_ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr id="action-(\d+)"', html)]


def link(html: str, rel: str) -> str | None:
    found = re.search(rf'<a href="([^"]+)" rel="{rel}"', html)
    return found.group(1).replace("&amp;", "&") if found else None


def every_page(session: httpx.Client, url: str) -> tuple[list[int], list[str]]:
    """Follow the "next" links from `url`: the ids of every page in order, and the URLs visited."""
    ids, visited = [], []
    while url:
        visited.append(url)
        reply = session.get(url)
        assert reply.status_code == 200, reply.text[:500]
        ids.extend(page_ids(reply.text))
        url = link(reply.text, "next")
        assert len(visited) < 20
    return ids, visited


def test_the_list_shows_fifty_a_page_overdue_first(site) -> None:
    _, srv, actions = site
    boss = client(srv, "boss")
    first = boss.get("/manage/actions").text
    assert len(page_ids(first)) == 50
    expected_overdue = sum(1 for a in actions if overdue(a))
    assert f"120 actions, {expected_overdue} overdue · page 1 of 3" in " ".join(first.split())
    assert link(first, "prev") is None and link(first, "next") == "/manage/actions?page=2"
    ids, visited = every_page(boss, "/manage/actions")
    assert visited == ["/manage/actions", "/manage/actions?page=2", "/manage/actions?page=3"]
    assert ids == [a["id"] for a in sorted(actions, key=queue_order)]  # every action once, in queue order
    last = boss.get("/manage/actions?page=3").text
    assert len(page_ids(last)) == 20 and link(last, "next") is None and link(last, "prev") == "/manage/actions?page=2"
    beyond = boss.get("/manage/actions?page=4")
    assert beyond.status_code == 200 and page_ids(beyond.text) == []
    assert "This page is past the end of the list." in beyond.text


def expected_ids(actions: list[dict[str, Any]], **rules: Any) -> set[int]:
    def keep(a: dict[str, Any]) -> bool:
        if "units" in rules and a["unit"] not in rules["units"]:
            return False
        if "kind" in rules and a["kind"] != rules["kind"]:
            return False
        if "states" in rules and a["status"] not in rules["states"]:
            return False
        if rules.get("open") and a["status"] in CLOSED:
            return False
        if "owner" in rules and a["owner"] != rules["owner"]:
            return False
        if "overdue" in rules and overdue(a) != rules["overdue"]:
            return False
        local = datetime.fromisoformat(a["opened_at"]).astimezone(ZoneInfo(TZ["A"])).date()
        if "first" in rules and local < rules["first"]:
            return False
        return not ("last" in rules and local > rules["last"])

    return {a["id"] for a in actions if keep(a)}


FIRST = (NOW - timedelta(days=90)).astimezone(ZoneInfo(TZ["A"])).date()
LAST = (NOW - timedelta(days=40)).astimezone(ZoneInfo(TZ["A"])).date()
FILTERS = [
    ({"unit": "A1"}, {"units": ("A1", "A1a")}),
    ({"kind": "callback"}, {"kind": "callback"}),
    ({"status": "new"}, {"states": ("new",)}),
    ({"status": "open"}, {"open": True}),
    ({"status": "corrected,action_planned,explained"}, {"states": ("corrected", "action_planned", "explained")}),
    ({"owner": "mai"}, {"owner": "mai"}),
    ({"overdue": "1"}, {"overdue": True}),
    ({"overdue": "0"}, {"overdue": False}),
    (
        {"unit": "A", "from": FIRST.isoformat(), "to": LAST.isoformat()},
        {"units": ("A", "A1", "A1a"), "first": FIRST, "last": LAST},
    ),
    (
        {"unit": "A", "kind": "manual", "overdue": "yes"},
        {"units": ("A", "A1", "A1a"), "kind": "manual", "overdue": True},
    ),
]


@pytest.mark.parametrize(("params", "rules"), FILTERS, ids=[str(p) for p, _ in FILTERS])
def test_each_filter_keeps_to_its_actions_on_every_page(site, params: dict[str, str], rules: dict) -> None:
    _, srv, actions = site
    boss = client(srv, "boss")
    want = expected_ids(actions, **rules)
    assert want  # the seed gives every filter something to find
    start = "/manage/actions?" + urlencode(params)
    first = boss.get(start)
    ids, visited = every_page(boss, start)
    assert set(ids) == want and len(ids) == len(want)
    assert f"{len(want)} actions" in first.text
    # The filters stay in every page link and in the form.
    for url in visited[1:]:
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        assert {k: v for k, v in query.items() if k != "page"} == params
    for name, value in params.items():
        if name in ("from", "to"):
            assert re.search(rf'name="{name}" value="{value}"', first.text)
        else:
            shown = {"yes": "1"}.get(value, value) if name == "overdue" else value
            assert re.search(rf'<option value="{re.escape(shown)}" selected>', first.text), name
    # The list/board switch keeps them too.
    board_link = re.search(r'<a href="(/manage/actions/board[^"]*)"', first.text).group(1).replace("&amp;", "&")
    board_query = {k: v[0] for k, v in parse_qs(urlsplit(board_link).query).items()}
    assert board_query == params


@pytest.mark.parametrize(
    ("sort", "key"),
    [
        ("opened", lambda a: (a["opened_at"], a["id"])),
        ("updated", lambda a: (a["updated_at"], a["id"])),
    ],
)
def test_newest_and_last_changed_orders(site, sort: str, key) -> None:
    _, srv, actions = site
    ids, visited = every_page(client(srv, "boss"), f"/manage/actions?sort={sort}")
    assert ids == [a["id"] for a in sorted(actions, key=key, reverse=True)]
    assert all(f"sort={sort}" in url for url in visited)


def test_the_unit_order_groups_the_tree(site) -> None:
    _, srv, actions = site
    ids, _ = every_page(client(srv, "boss"), "/manage/actions?sort=unit")
    by_id = {a["id"]: a for a in actions}
    assert ids == [a["id"] for a in sorted(actions, key=lambda a: (PATH_ORDER[a["unit"]], *queue_order(a)))]
    assert [by_id[i]["unit"] for i in ids[:30]] == ["A"] * 30


def column_counts(html: str) -> dict[str, int]:
    return {key: int(n) for key, n in re.findall(r'<h2 id="col-(\w+)">[^<]*<span class="act-n">\((\d+)\)</span>', html)}


def column_cards(html: str, key: str) -> list[int]:
    section = re.search(rf'aria-labelledby="col-{key}">(.*?)</section>', html, re.S).group(1)
    return [int(n) for n in re.findall(r'id="action-(\d+)"', section)]


def test_the_board_counts_each_column_shows_the_first_cards_and_links_to_the_rest(site) -> None:
    _, srv, actions = site
    boss = client(srv, "boss")
    html = boss.get("/manage/actions/board?unit=A").text
    mine = [a for a in actions if a["unit"] in ("A", "A1", "A1a")]
    expected = {key: sum(1 for a in mine if a["status"] in states) for key, states in BOARD.items()}
    assert column_counts(html) == expected
    for key, states in BOARD.items():
        cards = column_cards(html, key)
        assert len(cards) == min(20, expected[key])
        assert {a["id"] for a in mine if a["id"] in cards} == set(cards)
        section = re.search(rf'aria-labelledby="col-{key}">(.*?)</section>', html, re.S).group(1)
        more = re.search(r'class="act-more"><a href="([^"]+)"', section)
        assert bool(more) == (expected[key] > 20), key
        if more:
            url = more.group(1).replace("&amp;", "&")
            query = parse_qs(urlsplit(url).query)
            assert query == {"unit": ["A"], "status": [",".join(states)]}
            ids, _ = every_page(boss, url)
            assert len(ids) == expected[key] and set(cards) <= set(ids)
    # The closed column shows the latest closed first.
    closed = sorted((a for a in mine if a["status"] in CLOSED), key=lambda a: (a["closed_at"], a["id"]), reverse=True)
    assert column_cards(html, "closed") == [a["id"] for a in closed][:20]
    # Filters apply to the counts as to the list.
    callbacks = column_counts(boss.get("/manage/actions/board?kind=callback&owner=lan").text)
    assert sum(callbacks.values()) == len(expected_ids(actions, kind="callback", owner="lan"))


def test_a_manager_sees_only_her_subtree_on_every_page_and_the_board(site) -> None:
    _, srv, actions = site
    mai = client(srv, "mai")
    ids, _ = every_page(mai, "/manage/actions")
    assert set(ids) == {a["id"] for a in actions if a["unit"] in ("A1", "A1a")}
    assert mai.get("/manage/actions?unit=B").status_code == 403
    assert mai.get("/manage/actions/board?unit=A").status_code == 403
    board = column_counts(mai.get("/manage/actions/board").text)
    assert sum(board.values()) == len(ids)
    owners = re.search(r'<select id="f-owner" name="owner">(.*?)</select>', mai.get("/manage/actions").text, re.S)
    seen = set(re.findall(r'<option value="([^"]+)"', owners.group(1)))
    assert seen == {a["owner"] for a in actions if a["unit"] in ("A1", "A1a") and a["owner"]}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=bogus", "Choose a status from the list."),
        ("status=new,bogus", "Choose a status from the list."),
        ("overdue=maybe", "Choose a deadline filter from the list."),
        ("from=2026-13-01", "Give the opening dates as dates, the first not after the last."),
        ("from=2026-05-02&to=2026-05-01", "Give the opening dates as dates, the first not after the last."),
        ("sort=price", "Choose an order from the list."),
        ("page=0", "There is no such page of the list."),
        ("page=x", "There is no such page of the list."),
        (f"owner={'x' * 201}", "Choose an owner from the list."),
    ],
)
def test_bad_filters_are_refused_with_a_message(site, query: str, message: str) -> None:
    _, srv, _ = site
    reply = client(srv, "boss").get(f"/manage/actions?{query}")
    assert reply.status_code == 400
    assert message in reply.text and 'role="alert"' in reply.text


def test_the_api_keeps_its_contract(site) -> None:
    org: Org
    org, srv, actions = site
    reply = httpx.get(f"{srv.url}/api/v1/actions", headers=auth_header(org.tokens["admin"]), timeout=30)
    assert reply.status_code == 200
    listed = reply.json()
    assert len(listed) == COUNT and [a["id"] for a in listed] == [a["id"] for a in sorted(actions, key=queue_order)]
    overdue_only = httpx.get(
        f"{srv.url}/api/v1/actions", params={"overdue": "true"}, headers=auth_header(org.tokens["admin"]), timeout=30
    ).json()
    assert {a["id"] for a in overdue_only} == expected_ids(actions, overdue=True)
