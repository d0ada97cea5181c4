"""Admin pages for quality objectives (ISO 9001 6.2): list with status, create, new version, retire."""

import math
from typing import Any

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from feedback import indicators, objectives
from feedback.catalog import Snapshot
from feedback.errors import FeedbackError, InvalidInput, NotFound
from feedback.models import INDICATORS, LANGUAGES, OBJECTIVE_METRICS, OBJECTIVE_PERIODS
from feedback.plugins import PluginManager
from feedback.report_text import METRIC_TEXT
from feedback.store import objectives as objective_store
from feedback.web.access import requires_unit
from feedback.web.api import fresh_snapshot, local_today
from feedback.web.manage import labels
from feedback.web.manage.admin_common import (
    PREFIX,
    WRITERS,
    AdminController,
    Saved,
    optional,
    page,
    page_lang,
    require_unit,
    required,
    submit_form,
    unit_name,
    units_in_view,
    whole_number,
)
from feedback.web.manage.dashboard import INDICATOR_LABELS, service_label
from feedback.web.security import Principal


def N_(message: str) -> str:
    """Marks a message id for extraction; the template translates it."""
    return message


# An objective's period as people say it (the option values stay the codes).
PERIOD_LABELS = {"month": N_("Calendar month"), "quarter": N_("Calendar quarter"), "rolling_30": N_("Last 30 days")}


def spec_from_form(values: dict[str, str], *, partial: bool) -> dict[str, Any]:
    """Form fields → an objective spec. Targets are typed as people say them: 95 for 95 %, or a 0-100 mean."""
    spec: dict[str, Any] = {}
    metric = optional(values, "metric")
    if metric is not None or not partial:
        spec["metric"] = required(values, "metric")
    raw = optional(values, "target")
    if raw is not None or not partial:
        raw = required(values, "target").replace(",", ".").rstrip("% ")
        try:
            number = float(raw)
        except ValueError:
            raise InvalidInput("target: must be a number", "target") from None
        if not math.isfinite(number) or not 0 <= number <= 100:
            raise InvalidInput("target: must be from 0 to 100", "target")
        share = (spec.get("metric") or values.get("current_metric")) in objectives.SHARE_METRICS
        spec["target"] = number / 100 if share else number
    for name in ("comparator", "period", "title", "indicator", "service", "owner", "valid_from"):
        value = optional(values, name)
        if value is not None:
            spec[name] = value
    titles = {lang: text for lang in LANGUAGES if (text := optional(values, f"title_{lang}")) is not None}
    if titles:
        spec["titles"] = titles
    min_n = whole_number(values, "min_n", 1, 10**7)
    if min_n is not None:
        spec["min_n"] = min_n
    return spec


def choices(snapshot: Snapshot, lang: str, plugins: PluginManager | None = None) -> dict[str, Any]:
    """What the objective forms offer. Metrics and indicators are shown by name (message ids the templates
    translate, as on the action page; the plugins' indicators for `indicator_value` by their own names),
    services by their name in `lang`; option values stay the codes."""
    defined = indicators.registered(plugins)
    services = sorted(
        ((code, service_label(snapshot, code, lang)) for code in snapshot.services),
        key=lambda item: (item[1].casefold(), item[0]),
    )
    return {
        "metrics": OBJECTIVE_METRICS,
        "periods": OBJECTIVE_PERIODS,
        "period_labels": PERIOD_LABELS,
        # "≥ 99.47 %": the comparator as a sign, the target with the precision it was set with.
        "target_text": lambda comparator, target, metric: labels.target_text(comparator, target, metric, lang),
        "title_languages": LANGUAGES,
        "indicators": (*INDICATORS, *defined),
        "services": services,
        "share_metrics": objectives.SHARE_METRICS,
        "metric_labels": METRIC_TEXT,
        "indicator_labels": {
            **INDICATOR_LABELS,
            **{key: indicators.name_of(indicator, key, lang) for key, indicator in defined.items()},
        },
    }


class ObjectiveAdmin(AdminController):
    path = f"{PREFIX}/objectives"

    async def _list(
        self,
        request: Request,
        principal: Principal,
        state: State,
        unit: str | None,
        *,
        error: FeedbackError | None = None,
        values: dict[str, str] | None = None,
    ) -> Response:
        snapshot = await fresh_snapshot(state)
        lang = page_lang(request)
        codes = units_in_view(principal, snapshot, unit)

        def read(conn) -> list[dict[str, Any]]:
            found = []
            for code in codes:
                today = local_today(snapshot, code)
                for doc in objectives.list_objectives(conn, [code], today):
                    status = (
                        objectives.status_at(conn, snapshot, doc["id"], today)
                        if doc["valid_from"] <= today.isoformat()
                        else None
                    )
                    found.append({**doc, "status": status, "unit_name": unit_name(snapshot, code, lang)})
            return found

        items = await state.store.read(read)
        return await page(
            request,
            principal,
            "admin_objectives.html",
            {
                "objectives": items,
                "unit": unit,
                "units": [(c, unit_name(snapshot, c, lang)) for c in codes],
                **choices(snapshot, lang, state.plugins),
                "values": values or {"unit": unit or ""},
            },
            error=error,
        )

    @get("/", guards=[requires_unit()])
    async def list_page(
        self, request: Request, principal: NamedDependency[Principal], state: State, unit: FromQuery[str | None] = None
    ) -> Response:
        return await self._list(request, principal, state, unit or None)

    @post("/", guards=[WRITERS])
    async def create(self, request: Request, principal: NamedDependency[Principal], state: State) -> Response:
        async def change(values: dict[str, str]) -> Saved:
            snapshot = await fresh_snapshot(state)
            unit = required(values, "unit")
            require_unit(principal, snapshot, unit)
            spec = spec_from_form(values, partial=False)
            today = local_today(snapshot, unit)
            objective_id = await state.store.write(
                lambda conn: objectives.create_objective(
                    conn,
                    unit,
                    spec,
                    actor=principal.user,
                    today=today,
                    default_min_n=state.settings.min_n,
                    plugins=state.plugins,
                )
            )
            return Saved(f"{PREFIX}/objectives/{objective_id}", "Objective %(id)s created.", {"id": str(objective_id)})

        return await submit_form(
            request,
            principal,
            state,
            change,
            lambda error, values: self._list(
                request, principal, state, values.get("unit") or None, error=error, values=values
            ),
        )

    async def _unit_of(self, state: State, objective_id: int) -> str:
        unit = await state.store.read(lambda conn: objective_store.unit_of(conn, objective_id))
        if unit is None:
            raise NotFound(f"id: no objective {objective_id}", "id")
        return unit

    async def _detail(
        self,
        request: Request,
        principal: Principal,
        state: State,
        objective_id: int,
        *,
        error: FeedbackError | None = None,
        values: dict[str, str] | None = None,
    ) -> Response:
        snapshot = await fresh_snapshot(state)
        unit = await self._unit_of(state, objective_id)
        require_unit(principal, snapshot, unit)
        today = local_today(snapshot, unit)

        def read(conn) -> tuple[dict[str, Any], dict[str, Any] | None]:
            doc = objectives.objective_document(conn, objective_id, today)
            status = (
                objectives.status_at(conn, snapshot, objective_id, today)
                if doc["versions"][0]["valid_from"] <= today.isoformat()
                else None
            )
            return doc, status

        doc, status = await state.store.read(read)
        lang = page_lang(request)
        return await page(
            request,
            principal,
            "admin_objective.html",
            {
                "objective": doc,
                "status": status,
                "objective_unit": unit_name(snapshot, unit, lang),
                **choices(snapshot, lang, state.plugins),
                "today": today.isoformat(),
                "values": values or {},
            },
            error=error,
        )

    @get("/{objective_id:int}")
    async def detail(
        self, request: Request, principal: NamedDependency[Principal], state: State, objective_id: FromPath[int]
    ) -> Response:
        return await self._detail(request, principal, state, objective_id)

    @post("/{objective_id:int}/versions", guards=[WRITERS])
    async def change(
        self,
        request: Request,
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        state: State,
        objective_id: FromPath[int],
    ) -> Response:
        unit = await self._unit_of(state, objective_id)
        require_unit(principal, snapshot, unit)

        async def new_version(values: dict[str, str]) -> Saved:
            spec = spec_from_form(values, partial=True)
            values.pop("current_metric", None)
            today = local_today(snapshot, unit)
            version = await state.store.write(
                lambda conn: objectives.new_version(
                    conn, objective_id, spec, actor=principal.user, today=today, plugins=state.plugins
                )
            )
            return Saved(
                f"{PREFIX}/objectives/{objective_id}",
                "Objective %(id)s: version %(version)s saved.",
                {"id": str(objective_id), "version": str(version)},
            )

        return await submit_form(
            request,
            principal,
            state,
            new_version,
            lambda error, values: self._detail(request, principal, state, objective_id, error=error, values=values),
        )

    @post("/{objective_id:int}/retire", guards=[WRITERS])
    async def retire(
        self,
        request: Request,
        principal: NamedDependency[Principal],
        snapshot: NamedDependency[Snapshot],
        state: State,
        objective_id: FromPath[int],
    ) -> Response:
        unit = await self._unit_of(state, objective_id)
        require_unit(principal, snapshot, unit)

        async def retire_from(values: dict[str, str]) -> Saved:
            day = values.get("from") or local_today(snapshot, unit).isoformat()
            await state.store.write(
                lambda conn: objectives.retire_objective(conn, objective_id, actor=principal.user, from_day=day)
            )
            return Saved(
                f"{PREFIX}/objectives/{objective_id}",
                "Objective %(id)s retired from %(day)s.",
                {"id": str(objective_id), "day": day},
            )

        return await submit_form(
            request,
            principal,
            state,
            retire_from,
            lambda error, values: self._detail(request, principal, state, objective_id, error=error, values=values),
        )


ROUTES: list = [ObjectiveAdmin]
