"""The complaint rule for every survey: one response whose primary rating is at one of the unit's
`complaint_levels` (inherited down the tree; the two worst levels unless a unit says otherwise, []
for none) opens a complaint action for the unit that was rated.

A jurisdiction's own rule comes first: when another plugin already opens an action for the response
(a 好差评 work order, a «Ваш контроль» call-back), this rule adds nothing, so a response never opens
two actions. Hence a wrapper: it sees what the other rules asked for before it adds its own.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feedback import hookimpl
from feedback.i18n import gettext_for
from feedback.models import ActionRequest, StoredResponse
from feedback_plugins import LOCALES

if TYPE_CHECKING:
    from feedback.catalog import Snapshot

KIND = "complaint"
RULE = "complaint_level"


@hookimpl(wrapper=True)
def evaluate_triggers(response: StoredResponse | None, snapshot: Snapshot) -> Generator[None, Any, Any]:
    asked = yield
    if response is None or response.level is None or response.unit not in snapshot.units:
        return asked
    requests = each(asked)
    if any(opens_for(request, response) for request in requests):
        return asked  # a jurisdiction's rule answers for this response
    if response.level not in snapshot.complaint_levels(response.unit)[0]:
        return asked
    return [*requests, complaint(response, response.level, snapshot)]


def each(results: list[Any] | None) -> list[Any]:
    """The other rules' answers one by one (each may have answered one request or a list)."""
    found: list[Any] = []
    for result in results or []:
        found.extend(result if isinstance(result, list | tuple) else [result])
    return found


def opens_for(request: Any, response: StoredResponse) -> bool:
    """Whether another rule's request is an action for this very response."""
    return isinstance(request, ActionRequest) and (
        request.response_id == response.id or request.source_key == f"response:{response.id}"
    )


def complaint(response: StoredResponse, level: int, snapshot: Snapshot) -> ActionRequest:
    title = build_title(snapshot.units[response.unit].lang, level, response.touchpoint, snapshot)
    return ActionRequest(
        kind=KIND,
        source_key=f"response:{response.id}",  # the key every response's action has: one per response
        unit=response.unit,
        title=title,
        service=response.service,
        touchpoint=response.touchpoint,
        response_id=response.id,
        data={
            "rule": RULE,  # the title is built from these in each reader's language
            "level": level,
            "case_ref": response.case_ref,
            "officer": response.officer,
            "counter": response.counter,
        },
    )


def build_title(lang: str, level: int, touchpoint: str | None, snapshot: Snapshot) -> str:
    """ "Complaint (level 1) at Counter 3" in `lang`."""
    place = snapshot.touchpoints.get(touchpoint or "")
    return gettext_for(lang)("Complaint (level %(level)s) at %(place)s") % {
        "level": level,
        "place": place.name if place else (touchpoint or ""),
    }


@hookimpl
def action_title(action: dict, lang: str, snapshot: Snapshot) -> str | None:
    """A complaint this rule opened, in the reader's language."""
    data = action.get("data") or {}
    if data.get("rule") != RULE or not isinstance(data.get("level"), int):
        return None
    return build_title(lang, data["level"], action.get("touchpoint"), snapshot)


@hookimpl
def register_translations() -> Path:
    return LOCALES
