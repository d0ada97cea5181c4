"""The management-review pack (ISO 9001 9.3) of a unit and period, as a PDF (fpdf2).

Sections: cover (unit, period), customer-satisfaction results (total, by child unit, by service,
with n, Wilson interval and the minimum-n flag), objective attainment at the period end, monthly
trend, corrective actions (opened, closed, overdue, effectiveness), response rates, dossiers returned
on time (with the satisfaction of on-time and late dossiers) and the other indicators. Every
figure is real text in Noto Sans with Droid Sans Fallback for CJK, so the PDF is searchable and its
text layer can be checked. `gather` collects the figures (a reader thread), `render` draws them.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from babel.dates import format_datetime
from fpdf import FPDF
from fpdf.fonts import FontFace

import feedback
from feedback import actions, audit, dossiers, federation, indicators, objectives
from feedback.catalog import Snapshot
from feedback.i18n import gettext_for
from feedback.models import LANGUAGES
from feedback.plugins import PluginManager
from feedback.posters import FONTS_DIR, PDF_LANG
from feedback.rates import satisfaction
from feedback.report_text import (
    ACTION_STATUS_TEXT,
    COMPARATOR,
    METRIC_TEXT,
    STATUS_TEXT,
    babel_locale,
    decimals_of,
    fmt_day,
    fmt_metric,
    fmt_number,
    fmt_period,
    fmt_share,
    service_label,
    unit_name,
)
from feedback.store import actions as action_store

INK = (25, 25, 25)
GREY = (95, 95, 95)
ACCENT = (18, 62, 120)
HEAD_FILL = (225, 232, 242)
ROW_FILL = (245, 247, 250)
MAX_ACTIONS_LISTED = 60


def _utc_bounds(date_from: str, date_to: str, tz: str) -> tuple[str, str]:
    zone = ZoneInfo(tz)
    start = datetime.combine(date.fromisoformat(date_from), time.min, zone).astimezone(UTC)
    end = datetime.combine(date.fromisoformat(date_to) + timedelta(days=1), time.min, zone).astimezone(UTC)
    return start.isoformat(), end.isoformat()


def _decode(text: str | None) -> dict[str, Any]:
    try:
        found = msgspec.json.decode(text) if text else {}
    except msgspec.DecodeError:
        return {}
    return found if isinstance(found, dict) else {}


def gather(
    conn: sqlite3.Connection,
    snapshot: Snapshot,
    unit: str,
    date_from: str,
    date_to: str,
    min_n: int,
    now: datetime | None = None,
    plugins: PluginManager | None = None,
) -> dict[str, Any]:
    """Every figure of the pack, as plain data (run on a reader thread); `plugins` define indicators."""
    now = now or datetime.now(UTC)
    units = snapshot.subtree(unit)
    end = date.fromisoformat(date_to)
    objective_rows = []
    for code in sorted(units, key=lambda c: snapshot.units[c].path):
        for version in snapshot.objectives_in_force(code, date_to, with_ancestors=False):
            status = objectives.evaluate(conn, snapshot, version, end)
            objective_rows.append(status)
    tz = snapshot.units[unit].tz
    low, high = _utc_bounds(date_from, date_to, tz)
    verdicts = {"effective": 0, "not_effective": 0, "unknown": 0}
    for data in action_store.effectiveness_data(conn, units, low, high):
        verdict = (_decode(data).get("effectiveness") or {}).get("verdict")
        if verdict in verdicts:
            verdicts[verdict] += 1
    listed = [
        actions.action_json(row, snapshot, now)
        for row in action_store.active_in(conn, units, low, high, MAX_ACTIONS_LISTED + 1)
    ]
    return {
        "unit": unit,
        "from": date_from,
        "to": date_to,
        "min_n": min_n,
        "generated_at": now.isoformat(),
        "total": satisfaction(conn, snapshot, unit, date_from, date_to, "unit", min_n),
        "by_service": satisfaction(conn, snapshot, unit, date_from, date_to, "service", min_n),
        "by_month": satisfaction(conn, snapshot, unit, date_from, date_to, "month", min_n),
        "objectives": objective_rows,
        "kpis": actions.kpis(conn, snapshot, unit, date_from, date_to, min_n, now),
        "effectiveness": verdicts,
        "actions": listed[:MAX_ACTIONS_LISTED],
        "more_actions": len(listed) > MAX_ACTIONS_LISTED,
        # The audit log's newest entry as the pack was made: a printed copy anchors the log.
        "audit_head": audit.head_json(conn),
        "dossiers": dossiers.unit_figures(conn, snapshot, unit, date_from, date_to, min_n, now),
        "indicators": indicator_rows(conn, snapshot, unit, date_from, date_to, min_n, objective_rows, plugins),
        # Child installations within the subtree: as of when they reported, their objectives and actions.
        "reported": federation.report_summaries(conn, snapshot, unit, date_from, date_to),
    }


def indicator_rows(
    conn: sqlite3.Connection,
    snapshot: Snapshot,
    unit: str,
    date_from: str,
    date_to: str,
    min_n: int,
    objective_rows: list[dict[str, Any]],
    plugins: PluginManager | None,
) -> list[dict[str, Any]]:
    """Each indicator with figures in the period (or an objective on it): its sums, names and the status
    of each `indicator_value` objective on it at the period end."""
    known = indicators.definitions(conn, plugins)
    rows = {row["indicator"]: row for row in indicators.summary(conn, snapshot, unit, date_from, date_to, known, min_n)}
    judged = [status for status in objective_rows if status["metric"] == "indicator_value"]
    for status in judged:
        rows.setdefault(
            status["indicator"],
            {"indicator": status["indicator"], "numerator": 0, "n": 0, "value": None, "ci95": None, "first_day": None},
        )
    for key, row in rows.items():
        found = known.get(key)
        row["names"] = found.names if found else {}
        row["objectives"] = [status for status in judged if status["indicator"] == key]
    return [rows[key] for key in sorted(rows)]


class ReviewPack(FPDF):
    def __init__(self, lang: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.lang = lang
        self._ = gettext_for(lang)
        self.set_margins(16, 16, 16)
        self.set_auto_page_break(True, margin=16)
        # The same faces as the posters: Noto Sans for Latin and Cyrillic, Droid Sans Fallback for CJK.
        self.add_font("NotoSans", "", FONTS_DIR / "NotoSans-Regular.ttf")
        self.add_font("NotoSans", "B", FONTS_DIR / "NotoSans-Bold.ttf")
        self.add_font("DroidSansFallback", "", FONTS_DIR / "DroidSansFallbackFull.ttf")
        self.add_font("DejaVuSans", "", FONTS_DIR / "DejaVuSans.ttf")
        # Chinese from Droid; the symbols neither Noto nor Droid has here (≥ ≤) from DejaVu.
        self.set_fallback_fonts(["DroidSansFallback", "DejaVuSans"], exact_match=False)
        self.set_creator(f"feedback {feedback.__version__}")
        self.set_lang(PDF_LANG.get(lang, "en"))
        self.c_margin = 1.2

    def _render_styled_text_line(self, *args: Any, **kwargs: Any) -> Any:
        # fpdf2 (2.8.9) may set the font of a line that starts in a fallback face (Chinese) inside the
        # table cell's own graphics state, then take it as set for the page: the next line of that cell
        # printed its first glyphs in the heading's bold font, so "(" came out as a wrong glyph. Each
        # line therefore states its font again (a few bytes); tests/test_review_pack.py reads it back.
        self.current_font_is_set_on_page = False
        return super()._render_styled_text_line(*args, **kwargs)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("NotoSans", "", 8)
        self.set_text_color(*GREY)
        self.cell(0, 5, str(self.page_no()), align="C")

    def heading(self, text: str) -> None:
        self.ln(4)
        self.set_font("NotoSans", "B", 14)
        self.set_text_color(*ACCENT)
        self.multi_cell(0, 7, text, new_x="LMARGIN", new_y="NEXT")
        self.ln(1)
        self.set_text_color(*INK)

    def paragraph(self, text: str, size: float = 10, color: tuple[int, int, int] = INK) -> None:
        self.set_font("NotoSans", "", size)
        self.set_text_color(*color)
        self.multi_cell(0, size * 0.5, text, align="L", new_x="LMARGIN", new_y="NEXT")  # justified CJK gapes
        self.set_text_color(*INK)

    def grid(self, header: list[str], rows: list[list[str]], widths: tuple[int, ...]) -> None:
        """A table whose header repeats on each page; text cells left, figures right."""
        self.set_font("NotoSans", "", 9)
        self.set_text_color(*INK)
        self.set_draw_color(200, 205, 215)
        self.set_fill_color(255, 255, 255)
        with self.table(
            col_widths=widths,
            line_height=5,
            headings_style=FontFace(emphasis="BOLD", fill_color=HEAD_FILL, color=INK),
            text_align=("LEFT", *("RIGHT",) * (len(header) - 1)),
            cell_fill_color=ROW_FILL,
            cell_fill_mode="ROWS",
            repeat_headings=1,
        ) as table:
            table.row(header)
            for row in rows:
                table.row(row)
        self.ln(2)


def _rate_cells(row: dict[str, Any], lang: str, _: Any) -> list[str]:
    interval = row.get("ci95")
    bounds = f"{fmt_share(interval[0], lang)} – {fmt_share(interval[1], lang)}" if interval else "—"
    return [
        fmt_number(row["n"], lang, 0),
        fmt_share(row["rate"], lang),
        bounds,
        _("yes") if row["sufficient"] else _("no"),
    ]


def render(snapshot: Snapshot, data: dict[str, Any], lang: str) -> bytes:
    """Draw the pack from `gather`'s figures in one language."""
    lang = lang if lang in LANGUAGES else "en"
    pdf = ReviewPack(lang)
    _ = pdf._
    unit = data["unit"]
    name = unit_name(snapshot, unit, lang)
    period = fmt_period(data["from"], data["to"], lang)
    pdf.set_title(f"{_('Management review')} — {name} — {period}")
    pdf.set_subject(_("Customer satisfaction, quality objectives and corrective actions"))

    # Cover.
    pdf.add_page()
    pdf.set_fill_color(*ACCENT)
    pdf.rect(0, 0, pdf.w, 6, style="F")
    pdf.set_y(60)
    pdf.set_font("NotoSans", "B", 26)
    pdf.set_text_color(*ACCENT)
    pdf.multi_cell(0, 12, _("Management review"), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("NotoSans", "", 12)
    pdf.set_text_color(*GREY)
    pdf.multi_cell(
        0, 7, _("Input to the management review (ISO 9001:2015, 9.3)"), align="C", new_x="LMARGIN", new_y="NEXT"
    )
    pdf.ln(14)
    pdf.set_font("NotoSans", "B", 20)
    pdf.set_text_color(*INK)
    pdf.multi_cell(0, 10, name, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("NotoSans", "", 14)
    pdf.multi_cell(0, 8, _("Period: %(period)s") % {"period": period}, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(30)
    generated = format_datetime(
        datetime.fromisoformat(data["generated_at"]).astimezone(ZoneInfo(snapshot.units[unit].tz)),
        "medium",
        locale=babel_locale(lang),
    )
    pdf.paragraph(
        _(
            "Generated on %(when)s. Rates count the responses not flagged as suspect; intervals are "
            "Wilson 95 %%; a rate on fewer than %(min_n)s responses is marked insufficient."
        )
        % {"when": generated, "min_n": data["min_n"]},
        size=9,
        color=GREY,
    )
    head = data.get("audit_head") or {}
    pdf.ln(2)
    pdf.paragraph(
        _(
            "Audit log when this pack was made: entry %(seq)s, SHA-256 %(hash)s. Keep this page: "
            "“feedback audit verify --anchor SEQ:HASH” with these two values shows that the log still leads to it."
        )
        % {"seq": head.get("seq", 0), "hash": head.get("hash", "")},
        size=9,
        color=GREY,
    )

    # 1. Customer satisfaction.
    pdf.add_page()
    pdf.heading(_("1. Customer satisfaction"))
    header = [_("Unit"), _("n"), _("Satisfaction rate"), _("95 % interval"), _("Sufficient")]
    total = data["total"]
    rows = [[name, *_rate_cells(total["total"], lang, _)]]
    by_child = {row["key"]: row for row in total["rows"]}
    children = sorted(
        (code for code, found in snapshot.units.items() if found.parent == unit),
        key=lambda code: snapshot.units[code].path,
    )
    as_of = {item["child"]: item["as_of"] for item in data.get("reported") or []}
    for code in children:
        # A child unit without responses still shows, with n = 0: silence is a finding too.
        row = by_child.get(code) or {"n": 0, "rate": None, "ci95": None, "sufficient": False}
        label = unit_name(snapshot, code, lang)
        child = federation.child_of_code(code)
        if child in as_of:  # a child installation's unit: its figures are as of its latest report
            label += " — " + reported_as_of(as_of[child], lang, _)
        rows.append([label, *_rate_cells(row, lang, _)])
    widths = (58, 15, 35, 42, 28)
    pdf.grid(header, rows, widths)
    suspect = total["total"].get("suspect", 0)
    pdf.paragraph(
        _("Not dissatisfied: %(share)s. Mean score: %(mean)s/100. Suspect responses kept out: %(n)s.")
        % {
            "share": fmt_share(total["total"].get("not_dissatisfied_rate"), lang),
            "mean": fmt_number(total["total"].get("mean_score"), lang),
            "n": suspect,
        },
        size=9,
    )
    service_rows = [
        [service_label(snapshot, row["key"], lang, _), *_rate_cells(row, lang, _)] for row in data["by_service"]["rows"]
    ]
    if service_rows:
        pdf.ln(2)
        pdf.paragraph(_("By service"), size=11)
        pdf.grid([_("Service"), *header[1:]], service_rows, widths)

    # 2. Objectives.
    pdf.heading(_("2. Quality objectives at the end of the period"))
    if data["objectives"]:
        # An objective on another indicator without a title of its own goes by the indicator's name.
        indicator_names = {row["indicator"]: row["names"] for row in data.get("indicators") or []}
        objective_rows = []
        for status in data["objectives"]:
            metric = status["metric"]
            interval = status.get("ci95")
            title = status.get("title") or indicator_names.get(status.get("indicator") or "", {}).get(lang)
            title = title or _(METRIC_TEXT.get(metric, metric))
            comparator = COMPARATOR.get(status["comparator"], status["comparator"])
            digits = decimals_of(status["target"], metric)
            objective_rows.append(
                [
                    f"{title} ({unit_name(snapshot, status['unit'], lang)})",
                    f"{comparator} {fmt_metric(status['target'], metric, lang, digits)}",
                    fmt_metric(status["value"], metric, lang, digits),
                    fmt_number(status["n"], lang, 0),
                    f"{fmt_metric(interval[0], metric, lang, digits)} – {fmt_metric(interval[1], metric, lang, digits)}"
                    if interval
                    else "—",
                    _(STATUS_TEXT.get(status["status"], status["status"])),
                ]
            )
        pdf.grid(
            [_("Objective"), _("Target value"), _("Value"), _("n"), _("95 % interval"), _("Status")],
            objective_rows,
            (54, 22, 20, 14, 40, 28),
        )
    else:
        pdf.paragraph(_("No quality objective was in force."))

    # 3. Trend.
    pdf.heading(_("3. Monthly trend"))
    month_rows = [[row["key"], *_rate_cells(row, lang, _)] for row in data["by_month"]["rows"]]
    if month_rows:
        pdf.grid([_("Month"), *header[1:]], month_rows, widths)
    else:
        pdf.paragraph(_("No responses in the period."))

    # 4. Corrective actions.
    pdf.heading(_("4. Corrective actions"))
    kpi = data["kpis"]["total"]
    eff = data["effectiveness"]
    pdf.grid(
        [
            _("Opened in the period"),
            _("Closed in the period"),
            _("Closed on time"),
            _("Overdue"),
            _("On-time rate"),
            _("Call-backs reached"),
        ],
        [
            [
                fmt_number(kpi["opened"], lang, 0),
                fmt_number(kpi["closed"], lang, 0),
                fmt_number(kpi["closed_on_time"], lang, 0),
                fmt_number(kpi["overdue_open"], lang, 0),
                fmt_share(kpi["on_time_rate"], lang),
                f"{kpi['callbacks_reached']}/{kpi['callbacks']}",
            ]
        ],
        (28, 28, 32, 28, 30, 32),
    )
    pdf.paragraph(
        _(
            "Effectiveness checks in the period: %(effective)s effective, %(not_effective)s not "
            "effective, %(unknown)s could not be judged."
        )
        % eff,
        size=9,
    )
    if data["actions"]:
        pdf.ln(2)
        action_rows = []
        for action in data["actions"]:
            action_rows.append(
                [
                    str(action["id"]),
                    action["title"],
                    _(ACTION_STATUS_TEXT.get(action["status"], action["status"])),
                    fmt_day(action["due"], lang) if action["due"] else "—",
                    _("yes") if action["overdue"] else _("no"),
                ]
            )
        pdf.grid(["#", _("Action"), _("Status"), _("Due"), _("Overdue")], action_rows, (12, 84, 32, 32, 18))
        if data["more_actions"]:
            pdf.paragraph(_("Only the first %(n)s actions are listed.") % {"n": MAX_ACTIONS_LISTED}, size=9, color=GREY)

    # 5. Response rates.
    pdf.heading(_("5. Response rates"))
    exposure_rows = []
    for row in data["by_service"]["rows"]:
        if row.get("served"):
            exposure_rows.append(
                [
                    service_label(snapshot, row["key"], lang, _),
                    fmt_number(row["served"], lang, 0),
                    fmt_number(row["raw_n"], lang, 0),
                    fmt_share(row["response_rate"], lang),
                ]
            )
    total_row = total["total"]
    if total_row.get("served"):
        exposure_rows.append(
            [
                _("Total"),
                fmt_number(total_row["served"], lang, 0),
                fmt_number(total_row["raw_n"], lang, 0),
                fmt_share(total_row["response_rate"], lang),
            ]
        )
    if exposure_rows:
        pdf.grid(
            [_("Service"), _("Customers served"), _("Responses"), _("Response rate")], exposure_rows, (70, 35, 35, 38)
        )
    else:
        pdf.paragraph(_("No exposure counts (customers served) were recorded for the period."))
    render_dossiers(pdf, snapshot, data, name, lang)
    render_indicators(pdf, data, lang)
    if data.get("reported"):
        render_reported(pdf, snapshot, data, lang)
    return bytes(pdf.output())


def reported_as_of(day: str | None, lang: str, _: Any) -> str:
    if day is None:
        return _("reported, nothing yet")
    return _("reported, as of %(day)s") % {"day": fmt_day(day, lang)}


def render_reported(pdf: ReviewPack, snapshot: Snapshot, data: dict[str, Any], lang: str) -> None:
    """8. Child installations that report to this one: as of when, the status of their own objectives in
    their latest report of the period, and their corrective actions over it (aggregates only: no record of
    theirs is held here)."""
    _ = pdf._
    pdf.heading(_("8. Reported by child installations"))
    for child in data["reported"]:
        pdf.paragraph(
            _("%(child)s, under %(unit)s: %(as_of)s; %(days)s days of the period reported.")
            % {
                "child": child["name"],
                "unit": unit_name(snapshot, child["unit"], lang),
                "as_of": reported_as_of(child["as_of"], lang, _),
                "days": child["days"],
            },
            size=11,
        )
        counts = child["actions"]
        pdf.paragraph(
            _(
                "Corrective actions: %(opened)s opened, %(closed)s closed, %(on_time)s of them on time;"
                " call-backs reached: %(reached)s of %(callbacks)s."
            )
            % {
                "opened": counts["opened"],
                "closed": counts["closed"],
                "on_time": counts["closed_on_time"],
                "reached": counts["callbacks_reached"],
                "callbacks": counts["callbacks"],
            },
            size=9,
        )
        lines = []
        for status in child["objectives"]:
            metric = status["metric"]
            digits = decimals_of(status["target"], metric)
            title = (status.get("titles") or {}).get(lang) or status.get("title") or _(METRIC_TEXT.get(metric, metric))
            lines.append(
                [
                    f"{title} ({unit_name(snapshot, status['unit'], lang)})",
                    f"{COMPARATOR.get(status['comparator'], status['comparator'])} "
                    f"{fmt_metric(status['target'], metric, lang, digits)}",
                    fmt_metric(status["value"], metric, lang, digits),
                    fmt_number(status["n"], lang, 0),
                    _(STATUS_TEXT.get(status["status"], status["status"])),
                ]
            )
        if lines:
            pdf.grid([_("Objective"), _("Target value"), _("Value"), _("n"), _("Status")], lines, (70, 26, 26, 18, 38))


def _timeliness_cells(row: dict[str, Any], lang: str) -> list[str]:
    interval = row.get("ci95")
    return [
        fmt_number(row["n"], lang, 0),
        fmt_share(row["rate"], lang),
        f"{fmt_share(interval[0], lang)} – {fmt_share(interval[1], lang)}" if interval else "—",
        fmt_number(row["late"], lang, 0),
        fmt_number(row["open_overdue"], lang, 0),
    ]


def render_dossiers(pdf: ReviewPack, snapshot: Snapshot, data: dict[str, Any], name: str, lang: str) -> None:
    """6. Dossiers returned on time: by unit below and by service, and the satisfaction of on-time and
    late dossiers side by side."""
    _ = pdf._
    pdf.heading(_("6. Dossiers returned on time"))
    figures = data.get("dossiers") or {}
    if not figures.get("any"):
        pdf.paragraph(_("No dossier was due in the period."))
        return
    header = [_("Unit"), _("Dossiers due"), _("On time"), _("95 % interval"), _("Returned late"), _("Open, overdue")]
    widths = (50, 22, 24, 38, 22, 22)
    rows = [[name, *_timeliness_cells(figures["total"], lang)]]
    for row in figures["by_unit"]:
        rows.append([unit_name(snapshot, row["key"], lang), *_timeliness_cells(row, lang)])
    pdf.grid(header, rows, widths)
    service_rows = [
        [service_label(snapshot, row["key"], lang, _), *_timeliness_cells(row, lang)] for row in figures["by_service"]
    ]
    if service_rows:
        pdf.grid([_("Service"), *header[1:]], service_rows, widths)
    pdf.paragraph(
        _(
            "Each dossier counts in the period of its due day: on time when it was returned by that day, late "
            "when it was returned after it or is still open after it (as of the day this pack was made)."
        ),
        size=9,
        color=GREY,
    )
    rated = figures["satisfaction"]
    pdf.ln(2)
    pdf.paragraph(_("Satisfaction of the citizens whose dossier was on time or late"), size=11)
    pdf.grid(
        [_("Dossier"), _("n"), _("Satisfaction rate"), _("95 % interval"), _("Sufficient")],
        [
            [_("Returned on time"), *_rate_cells(rated["on_time"], lang, _)],
            [_("Late"), *_rate_cells(rated["late"], lang, _)],
        ],
        (58, 15, 35, 42, 28),
    )


def render_indicators(pdf: ReviewPack, data: dict[str, Any], lang: str) -> None:
    """7. Other indicators: each one's value over the period, n (its denominator), interval and the
    status of the objectives set on it."""
    _ = pdf._
    pdf.heading(_("7. Other indicators"))
    rows = data.get("indicators") or []
    if not rows:
        pdf.paragraph(_("No indicator figures were recorded for the period."))
        return
    lines = []
    for row in rows:
        targets = [status["target"] for status in row["objectives"]]
        digits = max([2, *(decimals_of(target, "indicator_value") for target in targets)])
        interval = row.get("ci95")
        name = row["names"].get(lang) or row["names"].get("en") or row["indicator"]
        if row.get("first_day"):  # the months its figures span
            first, last = row["first_day"][:7], row["last_day"][:7]
            name += f" ({first} – {last})" if first != last else f" ({first})"
        judged = [
            f"{COMPARATOR.get(status['comparator'], status['comparator'])} "
            f"{fmt_metric(status['target'], 'indicator_value', lang, digits)}: "
            f"{_(STATUS_TEXT.get(status['status'], status['status']))}"
            for status in row["objectives"]
        ]
        lines.append(
            [
                name,
                fmt_metric(row["value"], "indicator_value", lang, digits),
                fmt_number(row["n"], lang, 0),
                f"{fmt_metric(interval[0], 'indicator_value', lang, digits)} – "
                f"{fmt_metric(interval[1], 'indicator_value', lang, digits)}"
                if interval
                else "—",
                "; ".join(judged) or "—",
            ]
        )
    pdf.grid(
        [_("Quality indicator"), _("Value"), _("n"), _("95 % interval"), _("Objective")], lines, (50, 24, 22, 42, 40)
    )
    pdf.paragraph(
        _(
            "A figure counts when its whole period (month, quarter or year) lies in the review period; n is "
            "the sum of the denominators."
        ),
        size=9,
        color=GREY,
    )


def management_review_pdf(
    conn: sqlite3.Connection,
    snapshot: Snapshot,
    unit: str,
    date_from: str,
    date_to: str,
    lang: str,
    min_n: int,
    now: datetime | None = None,
    plugins: PluginManager | None = None,
) -> bytes:
    """The whole pack: gather the figures and draw them (on a reader thread)."""
    return render(snapshot, gather(conn, snapshot, unit, date_from, date_to, min_n, now, plugins), lang)
