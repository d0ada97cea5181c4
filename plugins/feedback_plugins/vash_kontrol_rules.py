"""Russia's «Ваш контроль» practice: any criterion rated below 4 opens a call-back to the respondent."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from feedback import hookimpl
from feedback.i18n import gettext_for
from feedback.models import ActionRequest, StoredResponse
from feedback_plugins import LOCALES

if TYPE_CHECKING:
    from feedback.catalog import Snapshot

SURVEYS = frozenset({"vash_kontrol"})
CALL_BACK_BELOW = 4


def build_title(lang: str, touchpoint: str | None, snapshot: Snapshot) -> str:
    """ "Call back: rated below 4 at Window 1" in `lang`."""
    place = snapshot.touchpoints.get(touchpoint or "")
    return gettext_for(lang)("Call back: rated below 4 at %(place)s") % {
        "place": place.name if place else (touchpoint or "")
    }


@hookimpl
def evaluate_triggers(response: StoredResponse | None, snapshot: Snapshot) -> ActionRequest | None:
    if response is None or response.survey not in SURVEYS:
        return None
    low = sorted(
        key
        for key, value in response.answers.items()
        if isinstance(value, int) and not isinstance(value, bool) and value < CALL_BACK_BELOW
    )
    if not low:
        return None
    unit = snapshot.units[response.unit]
    return ActionRequest(
        kind="callback",
        source_key=f"response:{response.id}",
        unit=response.unit,
        title=build_title(unit.lang, response.touchpoint, snapshot),
        service=response.service,
        touchpoint=response.touchpoint,
        response_id=response.id,
        data={"criteria": low, "case_ref": response.case_ref, "officer": response.officer},
    )


@hookimpl
def action_title(action: dict, lang: str, snapshot: Snapshot) -> str | None:
    """A call-back this rule opened (it keeps the criteria rated below 4), in the reader's language."""
    data = action.get("data") or {}
    if action.get("kind") != "callback" or "criteria" not in data or not action.get("response_id"):
        return None
    return build_title(lang, action.get("touchpoint"), snapshot)


@hookimpl
def register_translations() -> Path:
    return LOCALES
