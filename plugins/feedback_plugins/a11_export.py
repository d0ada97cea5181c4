"""The US OMB Circular A-11 §280 (v2) quarterly CSV: `GET /api/v1/exports/a11.csv`.

Per service and quarter: customers served, offered the survey and respondents (the exposure
triple), and the count of each satisfaction answer 1–5 and each "what went well / could be better"
option of the `a11_v2` survey preset. Its texts on the reports page come from this package's own
catalogues (`feedback_plugins/locales`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from feedback import hookimpl
from feedback.catalog import Snapshot
from feedback.exports import Exporter, ResponseFilter, iter_responses, quarter_bounds, quarter_of
from feedback.store import Connection
from feedback.store import exposure as exposure_store
from feedback_plugins import LOCALES

SLUG = "a11_v2"
SATISFACTION = "satisfaction"
CHOICES = ("went_well", "could_be_better")
OPTIONS = ("effectiveness", "ease", "efficiency", "transparency", "humanity", "employee", "other")
QUARTER_DAYS = 92  # the default period: about a quarter


def a11_header() -> list[str]:
    header = [
        "service",
        "service_name",
        "quarter",
        "period_start",
        "period_end",
        "customers_served",
        "surveys_offered",
        "respondents",
    ]
    header.extend(f"satisfaction_{answer}" for answer in range(1, 6))
    for question in CHOICES:
        header.extend(f"{question}_{option}" for option in OPTIONS)
    return header


def _count_answers(conn: Connection, flt: ResponseFilter, cells: dict[tuple[str, str], dict[str, int]]) -> None:
    for row in iter_responses(conn, flt):
        try:
            answers = msgspec.json.decode(row["answers"])
        except msgspec.DecodeError:
            continue
        counts = cells.setdefault((row["service"] or "", quarter_of(row["day"])), {})
        counts["respondents"] = counts.get("respondents", 0) + 1
        rating = answers.get(SATISFACTION)
        if isinstance(rating, int) and 1 <= rating <= 5:
            counts[f"satisfaction_{rating}"] = counts.get(f"satisfaction_{rating}", 0) + 1
        for question in CHOICES:
            chosen = answers.get(question) or []
            for option in chosen if isinstance(chosen, list) else [chosen]:
                if option in OPTIONS:
                    name = f"{question}_{option}"
                    counts[name] = counts.get(name, 0) + 1


def a11_rows(conn: Connection, snapshot: Snapshot, units: list[str], date_from: str, date_to: str) -> list[list[Any]]:
    """Per service and quarter: customers served, offered the survey, respondents, and the counts of
    each satisfaction answer 1–5 and each "what went well / could be better" option.

    Respondents are the a11_v2 responses counted in rates (suspect ones left out), so they equal the
    sum of the satisfaction counts; served and offered come from the exposure counts of the service.
    """
    cells: dict[tuple[str, str], dict[str, int]] = {}
    _count_answers(conn, ResponseFilter(tuple(units), date_from, date_to, survey=SLUG, flagged=False), cells)
    # Exposure of the services that answer A-11 v2 here (those with responses, or with an a11_v2 touchpoint).
    unit_set = set(units)
    services = {service for service, _ in cells}
    services.update(
        tp.service or "" for tp in snapshot.touchpoints.values() if tp.unit in unit_set and tp.survey == SLUG
    )
    for row in exposure_store.service_days(conn, units, date_from, date_to, sorted(services)):
        counts = cells.setdefault((row["service"] or "", quarter_of(row["day"])), {})
        counts["served"] = counts.get("served", 0) + (row["served"] or 0)
        counts["offered"] = counts.get("offered", 0) + (row["offered"] or 0)
    header = a11_header()
    table = []
    for (service, quarter), counts in sorted(cells.items()):
        start, end = quarter_bounds(quarter, date_from, date_to)
        name = snapshot.services[service]["name"] if service in snapshot.services else ""
        row: list[Any] = [
            service,
            name,
            quarter,
            start,
            end,
            counts.get("served"),
            counts.get("offered"),
            counts.get("respondents", 0),
        ]
        row.extend(counts.get(column, 0) for column in header[8:])
        table.append(row)
    return table


A11_EXPORT = Exporter(
    name="a11",
    title="OMB A-11 §280 v2 quarterly report (CSV)",
    description=(
        "Per service and quarter: customers served, offered the survey and respondents, with the count of"
        " each answer of the A-11 v2 survey."
    ),
    header=a11_header,
    rows=a11_rows,
    summary="OMB A-11 §280 v2 quarterly CSV: exposure triple and answer counts per service",
    file_description="The A-11 v2 CSV",
    file_name="a11_v2",
    default_days=QUARTER_DAYS,
)


@hookimpl
def register_exporters() -> Exporter:
    return A11_EXPORT


@hookimpl
def register_translations() -> Path:
    return LOCALES
