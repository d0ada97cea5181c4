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


@hookimpl
def evaluate_triggers(response: StoredResponse | None, snapshot: Snapshot) -> ActionRequest | None:
    if response is None or response.survey not in SURVEYS or response.level is None or response.level > 2:
        return None
    unit = snapshot.units[response.unit]
    _ = gettext_for(unit.lang)
    touchpoint = snapshot.touchpoints.get(response.touchpoint)
    title = _("Bad review (level %(level)s) at %(place)s") % {
        "level": response.level,
        "place": touchpoint.name if touchpoint else response.touchpoint,
    }
    if response.case_ref:
        title += f" · {response.case_ref}"
    return ActionRequest(
        kind="work_order",
        source_key=f"response:{response.id}",
        unit=response.unit,
        title=title,
        service=response.service,
        touchpoint=response.touchpoint,
        response_id=response.id,
        data={
            "case_ref": response.case_ref,
            "officer": response.officer,
            "counter": response.counter,
            "reasons": response.answers.get("bad_reasons"),
        },
    )


@hookimpl
def register_translations() -> Path:
    return LOCALES
