"""The manager app's sessions as their users and administrators see them: listed and revoked.

A session is shown by its public id (`sid`), when it began, when it was last used and the browser in a
few words, never by its cookie or the cookie's digest. A user revokes its own sessions at
/manage/account; an admin revokes the sessions of the users it administers (the rule of
`feedback.user_admin`: anyone else answers 404). Every revocation is an audit entry (kind "session",
action "revoke"). Sessions are read from the database on every request, so a revoked one stops
working at once on every node.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from functools import cache
from typing import Any

from feedback import audit, user_admin
from feedback.catalog import Snapshot
from feedback.errors import NotFound
from feedback.store import Connection
from feedback.store import users as user_store

MAX_AGENT = 120


def new_sid() -> str:
    """A session's public id: names it in lists and revocations, opens nothing."""
    return "s" + secrets.token_hex(8)


@cache
def _parser() -> Any:
    # ua-parser compiles its many patterns on first use (a tenth of a second): only once, only here.
    from ua_parser import parse

    return parse


def agent_summary(user_agent: str | None) -> str | None:
    """The browser and system of a User-Agent header in a few words ("Chrome 124 on Windows")."""
    if not user_agent:
        return None
    found = _parser()(user_agent[:1000])
    browser = found.user_agent
    system = found.os
    words = ""
    if browser is not None and browser.family != "Other":
        words = f"{browser.family} {browser.major}" if browser.major else browser.family
    if system is not None and system.family != "Other":
        words = f"{words} on {system.family}" if words else system.family
    return (words or user_agent)[:MAX_AGENT]


def _now() -> str:
    return datetime.now(UTC).isoformat()


def list_of(conn: Connection, user: str) -> list[dict[str, Any]]:
    """A user's live sessions, newest first: sid, user, created_at, last_seen_at, expires_at,
    user_agent, stage (the sign-in step still owed, or None)."""
    return user_store.sessions_of(conn, user, _now())


def revoke(conn: Connection, user: str, sid: str, unit: str | None) -> dict[str, Any] | None:
    """End one of `user`'s sessions, logged; None when it has no such session."""
    found = user_store.end_session_by_sid(conn, user, sid)
    if found is not None:
        before = {k: found[k] for k in ("user", "created_at", "last_seen_at", "user_agent")}
        audit.record(conn, "session", found["sid"], "revoke", before=before, unit=unit)
    return found


def revoke_own(conn: Connection, user: str, sid: str) -> dict[str, Any]:
    """A user ends one of its own sessions (NotFound naming `session_id` for a session it does not have)."""
    found = user_store.find(conn, user)
    revoked = revoke(conn, user, sid, found["unit"] if found else None)
    if revoked is None:
        raise NotFound(f"session_id: no session {sid!r}", "session_id")
    return revoked


def list_for_admin(conn: Connection, actor: user_admin.Actor, snapshot: Snapshot, user: str) -> list[dict[str, Any]]:
    """The sessions of a user `actor` administers (NotFound naming `user` otherwise)."""
    user_admin.visible_user(conn, actor, user, snapshot)
    return list_of(conn, user)


def revoke_for_admin(
    conn: Connection, actor: user_admin.Actor, snapshot: Snapshot, user: str, sid: str
) -> dict[str, Any]:
    """An admin ends a session of a user it administers (NotFound naming `user`, or `session_id` for a session
    that user does not have)."""
    target = user_admin.visible_user(conn, actor, user, snapshot)
    revoked = revoke(conn, user, sid, target["unit"])
    if revoked is None:
        raise NotFound(f"session_id: no session {sid!r}", "session_id")
    return revoked
