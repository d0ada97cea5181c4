"""China's 好差评 rule: every bad review (level 2 or 1) opens a work order for the unit that handled
the case, to verify and rectify by the local deadline (the unit's `action_days` setting)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from feedback import hookimpl
from feedback.i18n import gettext_for
from feedback.models import ActionRequest, StoredResponse
from feedback_plugins import LOCALES

if TYPE_CHECKING:
    from feedback.catalog import Snapshot

SURVEYS = frozenset({"haochaping"})


RULE = "haochaping_bad_review"


def build_title(lang: str, level: int, touchpoint: str | None, case_ref: str | None, snapshot: Snapshot) -> str:
    """ "Bad review (level 1) at Counter 3 · CASE-7" in `lang`."""
    place = snapshot.touchpoints.get(touchpoint or "")
    title = gettext_for(lang)("Bad review (level %(level)s) at %(place)s") % {
        "level": level,
        "place": place.name if place else (touchpoint or ""),
    }
    return f"{title} · {case_ref}" if case_ref else title


@hookimpl
def evaluate_triggers(response: StoredResponse | None, snapshot: Snapshot) -> ActionRequest | None:
    if response is None or response.survey not in SURVEYS or response.level is None or response.level > 2:
        return None
    unit = snapshot.units[response.unit]
    title = build_title(unit.lang, response.level, response.touchpoint, response.case_ref, snapshot)
    return ActionRequest(
        kind="work_order",
        source_key=f"response:{response.id}",
        unit=response.unit,
        title=title,
        service=response.service,
        touchpoint=response.touchpoint,
        response_id=response.id,
        data={
            "rule": RULE,  # the title is built from these in each reader's language
            "level": response.level,
            "case_ref": response.case_ref,
            "officer": response.officer,
            "counter": response.counter,
            "reasons": response.answers.get("bad_reasons"),
        },
    )


@hookimpl
def action_title(action: dict, lang: str, snapshot: Snapshot) -> str | None:
    """A work order this rule opened, in the reader's language (older ones, without the level, keep
    their stored title)."""
    data = action.get("data") or {}
    if data.get("rule") != RULE or not isinstance(data.get("level"), int):
        return None
    return build_title(lang, data["level"], action.get("touchpoint"), data.get("case_ref"), snapshot)


@hookimpl
def register_translations() -> Path:
    return LOCALES
