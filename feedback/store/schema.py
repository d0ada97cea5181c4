"""The core's tables as backend-neutral specs (`feedback.store.tables`): what a PostgreSQL database is
created from, and what an SQLite database has once its migrations (`feedback.migrations`, which
existing files have already run) are applied; tests/test_schema.py checks that the two agree. A new
column or index goes here: `tables.migrate` adds it to both backends, so an SQLite migration is only
needed for what the spec cannot say (the FTS5 comment search and the triggers, see the dialects).

Columns that hold JSON are `text` here (the core encodes them itself), flags that are 0/1 are
`integer` (their SQL sums and compares them as numbers on both backends).
"""

from __future__ import annotations

from feedback.store.responses import ROLLUP_MEASURES
from feedback.store.tables import Column, Index, Table


def measure_columns() -> list[Column]:
    """The columns of ROLLUP_MEASURES: counts, and the sum of scores."""
    return [
        Column(m, "real", nullable=False, default=0.0)
        if m == "score_sum"
        else Column(m, "integer", nullable=False, default=0)
        for m in ROLLUP_MEASURES
    ]


CORE_SCHEMA: tuple[Table, ...] = (
    Table(
        "units",
        [
            Column("code", "text", primary_key=True),
            Column("name", "text", nullable=False),
            Column("names", "text"),
            Column("parent", "text", references="units.code"),
            Column("lang", "text", nullable=False),
            Column("tz", "text", nullable=False),
            Column("path", "text", nullable=False),
            Column("created_at", "text"),
            Column("country", "text"),
            Column("owner", "text"),
            Column("action_days", "integer"),
            Column("public_results", "integer", nullable=False, default=0),
            Column("complaint_levels", "text"),
            # How long this unit keeps personal data (a JSON object such as {"comments_days": 180}; the
            # kinds left out, or NULL, follow the unit above: feedback.retention).
            Column("retention", "text"),
        ],
        [
            Index(["path"], name="idx_units_path"),
        ],
        core=True,
    ),
    Table(
        "services",
        [
            Column("code", "text", primary_key=True),
            Column("name", "text", nullable=False),
            Column("names", "text"),
            Column("kind", "text"),
            Column("agency", "text"),
            Column("created_at", "text"),
        ],
        core=True,
    ),
    Table(
        "surveys",
        [
            Column("slug", "text", primary_key=True),
            Column("title", "text", nullable=False),
            Column("created_at", "text"),
        ],
        core=True,
    ),
    Table(
        "survey_versions",
        [
            Column("slug", "text", primary_key=True, references="surveys.slug"),
            Column("version", "integer", primary_key=True),
            Column("definition", "text", nullable=False),
            Column("published_at", "text", nullable=False),
        ],
        core=True,
    ),
    Table(
        "touchpoints",
        [
            Column("token", "text", primary_key=True),
            Column("short_code", "text"),
            Column("name", "text", nullable=False),
            Column("unit", "text", nullable=False, references="units.code"),
            Column("lang", "text", nullable=False),
            Column("survey", "text", nullable=False, references="surveys.slug"),
            Column("kind", "text", nullable=False),
            Column("counter", "text"),
            Column("service", "text"),
            Column("created_at", "text"),
            Column("retired_at", "text"),
        ],
        [
            Index(["short_code"], unique=True, name="idx_touchpoints_short_code"),
            Index(["unit"], name="idx_touchpoints_unit"),
        ],
        core=True,
    ),
    Table(
        "responses",
        [
            Column("id", "text", primary_key=True),
            Column("receipt", "text", nullable=False),
            Column("touchpoint", "text", nullable=False),
            Column("unit", "text", nullable=False),
            Column("service", "text"),
            Column("survey", "text", nullable=False),
            Column("survey_version", "integer", nullable=False),
            Column("channel", "text", nullable=False),
            Column("transaction_point", "text"),
            Column("case_ref", "text"),
            Column("counter", "text"),
            Column("officer", "text"),
            Column("lang", "text", nullable=False),
            Column("answers", "text", nullable=False),
            Column("client_time", "text"),
            Column("server_time", "text", nullable=False),
            Column("occurred_at", "text", nullable=False),
            Column("day", "text", nullable=False),
            Column("level", "integer"),
            Column("satisfied", "integer"),
            Column("dissatisfied", "integer"),
            Column("score", "real"),
            Column("indicators", "text"),
            Column("flags", "text", nullable=False),
            Column("content_hash", "text", nullable=False),
            Column("device", "text"),
            Column("case_verified", "integer", nullable=False, default=0),
            # What was erased of the response (a JSON list such as ["comment", "contact"]), by retention or
            # on request; NULL: nothing. The rating, level and closed answers always stay.
            Column("erased", "text"),
            # Who keyed the response in from a paper form or a call sheet (feedback.paper_entry); NULL
            # for every other channel.
            Column("entered_by", "text"),
        ],
        [
            Index(["unit", "day"], name="idx_responses_unit_day"),
            Index(["receipt"], name="idx_responses_receipt"),
            Index(["touchpoint", "case_ref"], name="idx_responses_touchpoint_case_ref", where="case_ref IS NOT NULL"),
        ],
        core=True,
    ),
    Table(
        # Printed paper forms: each serial is printed once, as text and in the form's QR code, with the
        # survey version it carries; keying or scanning the form later finds that version here.
        "paper_forms",
        [
            Column("serial", "text", primary_key=True),
            Column("touchpoint", "text", nullable=False),
            Column("unit", "text", nullable=False),
            Column("survey", "text", nullable=False),
            Column("survey_version", "integer", nullable=False),
            Column("lang", "text", nullable=False),
            Column("paper", "text", nullable=False),
            Column("printed_at", "text", nullable=False),
            Column("printed_by", "text"),
        ],
        [Index(["touchpoint", "printed_at"], name="idx_paper_forms_touchpoint")],
        core=True,
    ),
    Table(
        # Scanned pages of paper forms that were not read with confidence, waiting for a person
        # (feedback.paper_review): the page as a PNG of about 100 dpi, what was read of it and why it is
        # here. `digest` is the key of a waiting page: the form (`serial:…`), or while the serial is
        # unknown the uploader's unit and the image (`image:<unit>:…`), so a page waits once per unit; a
        # page decided or discarded gives its key up (`decided:<id>`), and a later scan of that form is a
        # new page. `unit` is the form's, or the uploader's while the serial is unknown (NULL: an
        # installation-wide user's).
        "paper_scans",
        [
            Column("id", "integer", primary_key=True, autoincrement=True),
            Column("digest", "text", nullable=False, unique=True),
            Column("source", "text", nullable=False),
            Column("uploaded_at", "text", nullable=False),
            Column("uploaded_by", "text", nullable=False),
            Column("unit", "text"),
            Column("serial", "text"),
            Column("paper", "text"),
            Column("image", "bytes", nullable=False),
            Column("proposed", "text", nullable=False),
            Column("reasons", "text", nullable=False),
            Column("status", "text", nullable=False, default="waiting"),
            Column("resolved_by", "text"),
            Column("resolved_at", "text"),
            Column("note", "text"),
            Column("response_id", "text"),
        ],
        [Index(["status", "unit"], name="paper_scans_status")],
        core=True,
    ),
    Table(
        # A second entry of a paper form with other answers than the stored ones (feedback.paper_entry):
        # kept, changing nothing stored, until a person keeps the first or takes this one. `digest` is the
        # entry's content (serial, answers, date, channel), so the same second entry is kept once.
        "paper_entry_conflicts",
        [
            Column("id", "integer", primary_key=True, autoincrement=True),
            Column("digest", "text", nullable=False, unique=True),
            Column("serial", "text", nullable=False),
            Column("response_id", "text", nullable=False),
            Column("unit", "text", nullable=False),
            Column("answers", "text", nullable=False),
            Column("occurred_on", "text", nullable=False),
            Column("channel", "text", nullable=False),
            Column("contact", "text"),
            Column("source", "text", nullable=False),
            Column("entered_by", "text"),
            Column("entered_at", "text", nullable=False),
            Column("status", "text", nullable=False, default="waiting"),
            Column("resolved_by", "text"),
            Column("resolved_at", "text"),
        ],
        [
            Index(["status", "unit"], name="paper_entry_conflicts_status"),
            Index(["serial"], name="paper_entry_conflicts_serial"),
        ],
        core=True,
    ),
    Table(
        "contacts",
        [
            Column("response_id", "text", primary_key=True),
            Column("contact", "text", nullable=False),
            Column("created_at", "text", nullable=False),
            Column("purge_after", "text"),
        ],
        core=True,
    ),
    Table(
        "rollups",
        [
            Column("unit", "text", primary_key=True),
            Column("day", "text", primary_key=True),
            Column("service", "text", primary_key=True),
            Column("touchpoint", "text", primary_key=True),
            *measure_columns(),
        ],
        core=True,
    ),
    Table(
        "rollup_indicators",
        [
            Column("unit", "text", primary_key=True),
            Column("day", "text", primary_key=True),
            Column("service", "text", primary_key=True),
            Column("touchpoint", "text", primary_key=True),
            Column("indicator", "text", primary_key=True),
            Column("n", "integer", nullable=False, default=0),
            Column("sum", "real", nullable=False, default=0.0),
        ],
        core=True,
    ),
    Table(
        "exposure",
        [
            Column("unit", "text", primary_key=True),
            Column("service", "text", primary_key=True),
            Column("day", "text", primary_key=True),
            Column("served", "integer"),
            Column("offered", "integer"),
            Column("source", "text"),
            Column("updated_at", "text"),
        ],
        core=True,
    ),
    # Dossiers (cases) from a one-stop or customs system, by their reference (feedback.dossiers): the days
    # they were received, are due and were returned, as the unit's local days; `status` is open, returned
    # or withdrawn (withdrawn ones count nowhere).
    Table(
        "cases",
        [
            Column("ref", "text", primary_key=True),
            Column("unit", "text", nullable=False),
            Column("service", "text"),
            Column("received", "text", nullable=False),
            Column("due", "text", nullable=False),
            Column("returned", "text"),
            Column("status", "text", nullable=False),
            Column("channel", "text"),
            Column("source", "text", nullable=False),
            Column("created_at", "text", nullable=False),
            Column("updated_at", "text", nullable=False),
        ],
        [Index(["unit", "due"], name="cases_unit_due")],
        core=True,
    ),
    # Indicators an administrator defined (feedback.indicators; plugins define theirs with
    # register_indicators): names and unit of measure are JSON objects by language code.
    Table(
        "indicators",
        [
            Column("key", "text", primary_key=True),
            Column("names", "text", nullable=False),
            Column("direction", "text", nullable=False),
            Column("unit_of_measure", "text"),
            Column("created_at", "text", nullable=False),
            Column("created_by", "text"),
        ],
        core=True,
    ),
    # An indicator's figure for a unit (its own, not its subtree's) and a period: a month (2026-03), a
    # quarter (2026-Q1) or a year (2026), whose first and last days are kept for range queries.
    Table(
        "indicator_values",
        [
            Column("indicator", "text", primary_key=True),
            Column("unit", "text", primary_key=True),
            Column("period", "text", primary_key=True),
            Column("first_day", "text", nullable=False),
            Column("last_day", "text", nullable=False),
            Column("numerator", "integer", nullable=False),
            Column("denominator", "integer", nullable=False),
            Column("source", "text", nullable=False),
            Column("updated_at", "text", nullable=False),
        ],
        [Index(["unit", "first_day"], name="indicator_values_unit_day")],
        core=True,
    ),
    Table(
        "users",
        [
            Column("name", "text", primary_key=True),
            Column("role", "text", nullable=False),
            Column("unit", "text"),
            Column("email", "text"),
            Column("password_hash", "text"),
            Column("created_at", "text", nullable=False),
            Column("disabled", "integer", default=0),
            Column("lang", "text"),
            # Two-factor sign-in: the TOTP secret encrypted with the installation's secret (NULL: off),
            # since when it is on, the argon2id hashes of the unused recovery codes (a JSON list) and
            # the time step of the last code accepted (a code is never taken twice).
            Column("totp_secret", "text"),
            Column("totp_enabled_at", "text"),
            Column("recovery_codes", "text"),
            Column("last_totp_step", "integer"),
            # The OpenID provider's person this account is bound to ("<iss> <sub>", set at the first
            # sign-in through the provider): matched first, and no other person signs in as it.
            Column("oidc_subject", "text"),
        ],
        [Index(["oidc_subject"], unique=True, name="users_oidc_subject")],
        core=True,
    ),
    Table(
        "api_tokens",
        [
            Column("token_hash", "text", primary_key=True),
            Column("user", "text", nullable=False, references="users.name"),
            Column("role", "text", nullable=False),
            Column("unit", "text"),
            Column("created_at", "text", nullable=False),
            Column("revoked_at", "text"),
            Column("hint", "text"),
            Column("id", "text"),
        ],
        [
            Index(["id"], unique=True, name="api_tokens_id"),
            Index(["user"], name="api_tokens_user"),
        ],
        core=True,
    ),
    Table(
        "kiosks",
        [
            Column("id", "text", primary_key=True),
            Column("touchpoint", "text", nullable=False, references="touchpoints.token"),
            Column("name", "text"),
            Column("token_hash", "text", nullable=False),
            Column("enrolled_at", "text", nullable=False),
            Column("enrolled_by", "text"),
            Column("revoked_at", "text"),
            Column("last_seen", "text"),
            Column("backlog", "integer"),
            Column("dead_letters", "integer"),
            Column("app_version", "text"),
            Column("last_sync", "text"),
            Column("battery", "real"),
            Column("recent_presses", "text"),
            Column("silent_since", "text"),
        ],
        [
            Index(["token_hash"], unique=True, name="idx_kiosks_token_hash"),
        ],
        core=True,
    ),
    Table(
        "kiosk_enrollments",
        [
            Column("code_hash", "text", primary_key=True),
            Column("touchpoint", "text", nullable=False),
            Column("created_at", "text", nullable=False),
            Column("created_by", "text"),
            Column("expires_at", "text", nullable=False),
            Column("used_at", "text"),
            Column("kiosk", "text"),
        ],
        core=True,
    ),
    Table(
        "kiosk_invitations",
        [
            Column("id", "text", primary_key=True),
            Column("kiosk", "text", nullable=False),
            Column("case_ref", "text", nullable=False),
            Column("service", "text"),
            Column("officer", "text"),
            Column("created_at", "text", nullable=False),
            Column("created_by", "text"),
            Column("expires_at", "text", nullable=False),
            Column("delivered_at", "text"),
        ],
        [
            Index(["kiosk", "delivered_at"], name="idx_kiosk_invitations_kiosk_delivered_at"),
            Index(["kiosk", "case_ref"], name="kiosk_invitations_case"),
        ],
        core=True,
    ),
    Table(
        "rollups_unit_day",
        [
            Column("unit", "text", primary_key=True),
            Column("day", "text", primary_key=True),
            *measure_columns(),
        ],
        core=True,
    ),
    Table(
        "objectives",
        [
            Column("id", "integer", primary_key=True, autoincrement=True),
            Column("unit", "text", nullable=False, references="units.code"),
            Column("created_at", "text", nullable=False),
            Column("created_by", "text"),
            Column("retired_from", "text"),
            Column("retired_at", "text"),
            Column("retired_by", "text"),
        ],
        [
            Index(["unit"], name="objectives_unit"),
        ],
        core=True,
    ),
    Table(
        "objective_versions",
        [
            Column("objective", "integer", primary_key=True, references="objectives.id"),
            Column("version", "integer", primary_key=True),
            Column("valid_from", "text", nullable=False),
            Column("title", "text"),
            Column("metric", "text", nullable=False),
            Column("indicator", "text"),
            Column("service", "text"),
            Column("comparator", "text", nullable=False),
            Column("target", "real", nullable=False),
            Column("period", "text", nullable=False),
            Column("min_n", "integer", nullable=False),
            Column("owner", "text"),
            Column("method", "text", nullable=False, default="wilson"),
            Column("created_at", "text", nullable=False),
            Column("created_by", "text"),
            Column("titles", "text"),
        ],
        core=True,
    ),
    Table(
        "objective_states",
        [
            Column("objective", "integer", primary_key=True),
            Column("period", "text", primary_key=True),
            Column("status", "text", nullable=False),
            Column("value", "real"),
            Column("n", "integer"),
            Column("low", "real"),
            Column("high", "real"),
            Column("signals", "text"),
            Column("evaluated_at", "text", nullable=False),
        ],
        core=True,
    ),
    Table(
        "actions",
        [
            Column("id", "integer", primary_key=True, autoincrement=True),
            Column("kind", "text", nullable=False),
            Column("source_key", "text", nullable=False, unique=True),
            Column("source_type", "text", nullable=False),
            Column("response_id", "text"),
            Column("objective_id", "integer"),
            Column("period", "text"),
            Column("unit", "text", nullable=False),
            Column("service", "text"),
            Column("touchpoint", "text"),
            Column("indicator", "text"),
            Column("title", "text", nullable=False),
            Column("status", "text", nullable=False),
            Column("owner", "text"),
            Column("due", "text"),
            Column("opened_at", "text", nullable=False),
            Column("updated_at", "text", nullable=False),
            Column("closed_at", "text"),
            Column("escalated_to", "text"),
            Column("escalated_at", "text"),
            Column("due_soon_at", "text"),
            Column("overdue_at", "text"),
            Column("watch_from", "text"),
            Column("watch_until", "text"),
            Column("watch_extensions", "integer", nullable=False, default=0),
            Column("target", "real"),
            Column("baseline", "real"),
            Column("reopen_count", "integer", nullable=False, default=0),
            Column("created_by", "text"),
            Column("data", "text", nullable=False, default="{}"),
        ],
        [
            Index(["unit", "status"], name="actions_unit_status"),
            Index(["status", "due"], name="actions_status_due"),
            Index(["response_id"], name="actions_response"),
        ],
        core=True,
    ),
    Table(
        "action_events",
        [
            Column("seq", "integer", primary_key=True, autoincrement=True),
            Column("action", "integer", nullable=False, references="actions.id"),
            Column("type", "text", nullable=False),
            Column("from_status", "text"),
            Column("to_status", "text"),
            Column("actor", "text", nullable=False),
            Column("at", "text", nullable=False),
            Column("note", "text"),
            Column("correction", "text"),
            Column("root_cause", "text"),
            Column("similar_cases", "text"),
            Column("action_taken", "text"),
            Column("result", "text"),
            Column("explanation", "text"),
            Column("due", "text"),
            Column("data", "text", nullable=False, default="{}"),
        ],
        [
            Index(["action", "seq"], name="action_events_action"),
        ],
        core=True,
    ),
    # The call-back an action owes the respondent (feedback.callbacks): one row per action that needs one,
    # written when the action opens. `state` is pending, reached, declined or not_reached (after
    # FEEDBACK_CALLBACK_TRIES attempts that did not reach); `tries` counts those; `due` is the action's
    # due day when it opened; `settled_at` when the state became final.
    Table(
        "callbacks",
        [
            Column("action", "integer", primary_key=True, references="actions.id"),
            Column("unit", "text", nullable=False),
            Column("due", "text"),
            Column("state", "text", nullable=False, default="pending"),
            Column("tries", "integer", nullable=False, default=0),
            Column("registered_at", "text", nullable=False),
            Column("settled_at", "text"),
            Column("updated_at", "text", nullable=False),
        ],
        [Index(["unit", "registered_at"], name="callbacks_unit")],
        core=True,
    ),
    # Each attempt to reach the respondent (append-only): by phone, mail or SMS, and what came of it.
    Table(
        "callback_attempts",
        [
            Column("id", "integer", primary_key=True, autoincrement=True),
            Column("action", "integer", nullable=False, references="actions.id"),
            Column("via", "text", nullable=False),
            Column("outcome", "text", nullable=False),
            Column("actor", "text", nullable=False),
            Column("at", "text", nullable=False),
            Column("note", "text"),
        ],
        [Index(["action", "id"], name="callback_attempts_action")],
        core=True,
    ),
    Table(
        "outbox",
        [
            Column("id", "integer", primary_key=True, autoincrement=True),
            Column("channel", "text", nullable=False),
            Column("dedupe_key", "text", nullable=False, unique=True),
            Column("event_id", "text"),
            Column("event_type", "text"),
            Column("target", "text", nullable=False),
            Column("payload", "text", nullable=False),
            Column("attempts", "integer", nullable=False, default=0),
            Column("next_attempt_at", "text", nullable=False),
            Column("claimed_until", "text"),
            Column("delivered_at", "text"),
            Column("failed_at", "text"),
            Column("last_error", "text"),
            Column("created_at", "text", nullable=False),
        ],
        [
            Index(["channel", "delivered_at", "next_attempt_at"], name="outbox_pending"),
            Index(["event_id"], name="outbox_event"),  # an erasure takes back its response's deliveries
        ],
        core=True,
    ),
    Table(
        "job_runs",
        [
            Column("name", "text", primary_key=True),
            Column("last_started_at", "text"),
            Column("last_finished_at", "text"),
            Column("last_error", "text"),
            Column("runs", "integer", nullable=False, default=0),
            # When the job last succeeded and last failed (`last_error` tells only the latest run's
            # outcome), so /metrics shows both and a job that has not succeeded for a while stands out.
            Column("last_success_at", "text"),
            Column("last_failure_at", "text"),
        ],
        core=True,
    ),
    Table(
        "heatmap_rollups",
        [
            Column("unit", "text", primary_key=True),
            Column("day", "text", primary_key=True),
            Column("hour", "integer", primary_key=True),
            *measure_columns(),
        ],
        core=True,
    ),
    Table(
        "sessions",
        [
            Column("id", "text", primary_key=True),
            Column("user", "text", nullable=False, references="users.name"),
            Column("created_at", "text", nullable=False),
            Column("expires_at", "text", nullable=False),
            Column("lang", "text"),
            # What the session list shows and revokes by: a public id (never the cookie or its
            # digest), when it was last used, the browser in a few words; `stage` is NULL once signed
            # in, else the step still owed ("2fa": the code, "enrol": setting up two-factor sign-in),
            # and `totp_pending` the encrypted secret of a set-up not yet confirmed.
            Column("sid", "text"),
            Column("last_seen_at", "text"),
            Column("user_agent", "text"),
            Column("stage", "text"),
            Column("totp_pending", "text"),
        ],
        [
            Index(["sid"], unique=True, name="sessions_sid"),
            Index(["user"], name="sessions_user"),
            Index(["expires_at"], name="sessions_expires"),
        ],
        core=True,
    ),
    Table(
        "login_attempts",
        [
            Column("id", "integer", primary_key=True, autoincrement=True),
            Column("username", "text", nullable=False),
            Column("at", "text", nullable=False),
        ],
        [
            Index(["username", "at"], name="login_attempts_user"),
        ],
        core=True,
    ),
    Table(
        "survey_drafts",
        [
            Column("id", "integer", primary_key=True, autoincrement=True),
            Column("slug", "text", nullable=False),
            Column("base_version", "integer"),
            Column("definition", "text", nullable=False),
            Column("created_by", "text"),
            Column("created_at", "text", nullable=False),
            Column("updated_at", "text", nullable=False),
        ],
        [
            Index(["slug"], name="survey_drafts_slug"),
        ],
        core=True,
    ),
    Table(
        "outbox_pruned",
        [
            Column("key", "bytes", primary_key=True),
        ],
        core=True,
    ),
    Table(
        "kiosk_enroll_attempts",
        [
            Column("id", "integer", primary_key=True, autoincrement=True),
            Column("client", "text", nullable=False),
            Column("at", "text", nullable=False),
        ],
        [
            Index(["client", "at"], name="kiosk_enroll_attempts_client"),
        ],
        core=True,
    ),
    Table(
        "event_log",
        [
            Column("seq", "integer", primary_key=True, autoincrement=True),
            Column("id", "text", nullable=False, unique=True),
            Column("type", "text", nullable=False),
            Column("aggregate", "text", nullable=False),
            Column("created_at", "text", nullable=False),
            Column("data", "text"),
            Column("claimed_by", "text", nullable=False, default=""),
            Column("claimed_until", "text", nullable=False, default=""),
            Column("dispatched_at", "text"),
        ],
        [
            Index(["aggregate", "seq"], name="event_log_pending", where="dispatched_at IS NULL"),
        ],
        core=True,
    ),
    # How far the daily retention job has gone per unit and kind of data (feedback.retention): every
    # response of the unit with a local day before `through_day` had that kind erased when it ran, so the
    # next run reads only the days after (less the 30 days a late answer may be dated back).
    Table(
        "retention_marks",
        [
            Column("unit", "text", primary_key=True),
            Column("kind", "text", primary_key=True),
            Column("through_day", "text", nullable=False),
        ],
        core=True,
    ),
    # The audit log (feedback.audit): append-only, each entry's `hash` the SHA-256 of its other columns
    # (`prev_hash`, the previous entry's hash, among them). `change` is JSON {"before", "after"}; `unit` is
    # the unit the record belongs to, for subtree filtering. `seq` is given by the appender (it is hashed).
    Table(
        "audit_log",
        [
            Column("seq", "integer", primary_key=True, autoincrement=True),
            Column("at", "text", nullable=False),
            Column("actor_kind", "text", nullable=False),
            Column("actor_id", "text", nullable=False),
            Column("actor_unit", "text"),
            Column("kind", "text", nullable=False),
            Column("record_id", "text", nullable=False),
            Column("unit", "text"),
            Column("action", "text", nullable=False),
            Column("change", "text", nullable=False),
            Column("prev_hash", "text", nullable=False),
            Column("hash", "text", nullable=False),
        ],
        [
            Index(["kind", "record_id"], name="audit_log_record"),
            Index(["unit", "kind", "seq"], name="audit_log_unit_kind"),
        ],
        core=True,
    ),
    # SMS invitations (feedback.invitations): the number only while the invitation is open (`phone`, erased
    # once it is answered or expires, or at STOP), its keyed hash for longer (`phone_key`): one invitation per
    # number and local day, refused by the unique index under any number of writers. `response_id` is the id
    # the link's survey and a reply by SMS both store under, so an invitation gets one response.
    Table(
        "sms_invitations",
        [
            Column("id", "text", primary_key=True),
            Column("touchpoint", "text", nullable=False),
            Column("unit", "text", nullable=False),
            Column("lang", "text", nullable=False),
            Column("case_ref", "text"),
            Column("phone", "text"),
            Column("phone_key", "text", nullable=False),
            Column("day", "text", nullable=False),
            Column("response_id", "text", nullable=False),
            Column("created_at", "text", nullable=False),
            Column("expires_at", "text", nullable=False),
            Column("answered_at", "text"),
        ],
        [
            Index(["phone_key", "day"], unique=True, name="sms_invitations_phone_day"),
            Index(["expires_at"], name="sms_invitations_expires"),
        ],
        core=True,
    ),
    # Numbers that sent STOP, by keyed hash (feedback.phones.phone_key): no SMS goes to them again.
    Table(
        "sms_optouts",
        [
            Column("phone_key", "text", primary_key=True),
            Column("created_at", "text", nullable=False),
        ],
        core=True,
    ),
    # The gateway's inbound messages by their id, with the answer given (JSON): a message delivered again
    # gets the same answer and changes nothing.
    Table(
        "sms_inbound",
        [
            Column("id", "text", primary_key=True),
            Column("received_at", "text", nullable=False),
            Column("answer", "text", nullable=False),
        ],
        [Index(["received_at"], name="sms_inbound_received")],
        core=True,
    ),
    # Reporting upward between installations (feedback.federation on the parent, feedback.federation_child on
    # the child). On the parent: one-time pairing codes (their SHA-256; a code is spent once, by one UPDATE),
    # the wrong codes tried per client, the paired children (public key, the unit their tree hangs under and
    # the root units they declared) and what each reported: one row per child and closed day, and the day's
    # rollups by unit × service (units named "<child>:<code>", read beside the parent's own rollups).
    Table(
        "federation_invites",
        [
            Column("code_hash", "text", primary_key=True),
            Column("unit", "text", nullable=False),
            Column("created_at", "text", nullable=False),
            Column("created_by", "text"),
            Column("expires_at", "text", nullable=False),
            Column("used_at", "text"),
            Column("child", "text"),
            # 1: the children under `unit` when the code is used are removed (`invite --replace`).
            Column("replace_children", "integer"),
        ],
        core=True,
    ),
    Table(
        "federation_join_attempts",
        [
            Column("id", "integer", primary_key=True, autoincrement=True),
            Column("client", "text", nullable=False),
            Column("at", "text", nullable=False),
        ],
        [Index(["client", "at"], name="federation_join_attempts_client")],
        core=True,
    ),
    Table(
        "federation_children",
        [
            Column("id", "text", primary_key=True),
            Column("name", "text", nullable=False),
            Column("public_key", "text", nullable=False),
            Column("unit", "text", nullable=False),
            Column("roots", "text", nullable=False),
            Column("joined_at", "text", nullable=False),
            Column("as_of", "text"),
            Column("last_report_at", "text"),
            # When the child was removed (`feedback federation remove`, or replaced by a new pairing): its
            # rollups are gone and it is no longer shown or heard; its reports stay for `verify`.
            Column("removed_at", "text"),
        ],
        core=True,
    ),
    Table(
        "federation_reports",
        [
            Column("child", "text", primary_key=True),
            Column("day", "text", primary_key=True),
            Column("content_hash", "text", nullable=False),
            Column("sent_at", "text", nullable=False),
            Column("received_at", "text", nullable=False),
            # What the day's report said besides its rollups (JSON: objective statuses, action counts).
            Column("summary", "text", nullable=False),
            # The exact body received and its X-Feedback-Signature, so `feedback federation verify` can
            # re-check the report later (null for reports stored before they were kept).
            Column("body", "text"),
            Column("signature", "text"),
        ],
        core=True,
    ),
    Table(
        "federation_rollups",
        [
            Column("unit", "text", primary_key=True),
            Column("day", "text", primary_key=True),
            Column("service", "text", primary_key=True),
            Column("child", "text", nullable=False),
            *measure_columns(),
        ],
        [
            Index(["child", "day"], name="federation_rollups_child_day"),
            Index(["day"], name="federation_rollups_day"),
        ],
        core=True,
    ),
    # On the child: the link to its parent (one row: the parent's address, the id it was given, its key
    # pair with the private key encrypted under the installation's secret, the root units it reports) and
    # each day the parent acknowledged, with the content hash it acknowledged (a day whose figures change
    # later is sent again).
    Table(
        "federation_link",
        [
            Column("id", "integer", primary_key=True),
            Column("parent_url", "text", nullable=False),
            Column("child_id", "text", nullable=False),
            Column("name", "text", nullable=False),
            Column("public_key", "text", nullable=False),
            Column("private_key", "text", nullable=False),
            Column("units", "text", nullable=False),
            Column("joined_at", "text", nullable=False),
            Column("last_attempt_at", "text"),
            Column("last_success_at", "text"),
            Column("last_error", "text"),
        ],
        core=True,
    ),
    Table(
        "federation_sent",
        [
            Column("day", "text", primary_key=True),
            Column("content_hash", "text", nullable=False),
            Column("acked_at", "text", nullable=False),
        ],
        core=True,
    ),
)


#: Records the database itself refuses to change (ISO 9001 7.5): (trigger, table, verb, message). The
#: SQLite migrations created these triggers; a PostgreSQL database gets them from this list.
REFUSED_CHANGES: tuple[tuple[str, str, str, str], ...] = (
    ("survey_versions_immutable", "survey_versions", "UPDATE", "published survey versions are immutable"),
    *(
        (f"{table}_no_{verb.lower()}", table, verb, f"{table} is append-only")
        for table in ("action_events", "objective_versions", "audit_log", "callback_attempts")
        for verb in ("UPDATE", "DELETE")
    ),
)
