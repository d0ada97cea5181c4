"""The plugin contract: every hook, one docstring each.

Hooks are synchronous; an implementation may take any subset of the keyword arguments. `startup`
and `track_event` may return a value, a callable or an awaitable (the core resolves each with
`await_me_maybe`). `register_*` hooks are collected once at start-up and never called per request.
A new hook goes here (one function, one docstring), in `docs/plugins.md` with its exact signature,
and gets a `test_hook_<name>` test; the core calls it as `pm.hook.<name>(...)` with every argument.
"""

from __future__ import annotations

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("feedback")
hookimpl = HookimplMarker("feedback")


@hookspec
def register_tables():
    """Return a `feedback.store.tables.Table` (or a list of them): the tables this plugin owns.

    On migrate the core creates a missing table and adds the columns and indexes a table lacks; it
    never drops or alters one. The rows are read and written with `feedback.store.plugin_data`."""


@hookspec
def register_migrations():
    """Return a `sqlite_utils.Migrations` set (or a list of them) owned by this plugin.

    SQLite only, and superseded by `register_tables`; kept for plugins written before it."""


@hookspec
def register_question_types():
    """Return a list of question Struct classes (msgspec tagged, `tag_field="kind"`)."""


@hookspec
def register_survey_templates():
    """Return a list of `SurveyDefinition` templates (a survey preset each)."""


@hookspec
def register_routes(settings):
    """Return a list of Litestar route handlers or routers to mount in the app, each given itself or
    named as "module:attribute" (imported when an app is built, so a command that loads the plugin
    never imports its routes)."""


@hookspec
def register_commands(cli):
    """Add click commands to the `feedback` command group `cli`."""


@hookspec
def startup(store, settings):
    """Run once when the server starts, after migrations; may return an awaitable."""


@hookspec(firstresult=True)
def score_response(survey, answers, submission):
    """Return a `Score` for the answers to a survey version, or None to let another scorer decide."""


@hookspec
def track_event(event, store):
    """React to an `Event` after the write that caused it has committed (mail, webhooks, SSE…).

    Called by the event log's dispatcher, at least once per event and in order per aggregate: key
    whatever is queued or sent on `event.id`, so that a second call does nothing new."""


@hookspec
def tracked_events(store):
    """The event types this plugin's `track_event` wants now: a collection of type names, "*" among
    them for every type. Asked once per round of events the dispatcher hands over; an event no plugin
    wants is recorded as dispatched without being built or handed to `track_event`. A plugin that
    implements `track_event` without this hook gets every event."""


@hookspec
def map_response(response, objectives, snapshot):
    """Return the ids of the `objectives` (ObjectiveVersion list in force for the response's unit
    and its ancestors) that a just-scored `response` (StoredResponse) counts towards."""


@hookspec
def evaluate_triggers(response, objective, status, hits, snapshot):
    """Return `ActionRequest`s (or a list) for corrective actions to open, or None.

    Called for a new response (`response` set, `hits` the objective ids it maps to, `objective` and
    `status` None) and for each objective evaluation (`objective` an ObjectiveVersion, `status` its
    status dict with signals; `response` None). Opening is idempotent on `source_key`.
    """


@hookspec(firstresult=True)
def corrective_action_assignee(action, unit, snapshot):
    """Return the user name who owns a new corrective action (`action` an ActionRequest, `unit` a Unit)."""


@hookspec(firstresult=True)
def action_title(action, lang, snapshot):
    """Return the title of a corrective action this plugin opened, in the reader's language `lang`,
    built from what it stored with the action (`action["data"]`, `kind`, `period`, `objective_id`…);
    None for any other action, which then shows its stored `title`."""


@hookspec
def register_jobs(settings):
    """Return `Job`s (or a list) to run periodically in the server and once per `feedback tick`."""


@hookspec
def register_exporters():
    """Return `feedback.exports.Exporter`s (or a list): each is served as
    `GET /api/v1/exports/<name>.csv` and offered on the manager app's reports page."""


@hookspec
def register_indicators():
    """Return `feedback.models.Indicator`s (or a list): quality indicators kept outside the ratings (an
    error rate, plan completion), each with its names in the four languages and which way is better;
    their figures are posted per unit and period, and objectives judge them (`indicator_value`)."""


@hookspec
def register_translations():
    """Return a locales folder (or a list of them) laid out as `<locale>/LC_MESSAGES/*.po`; its messages
    join the core's catalogues (the core's own translation wins when both have a message id)."""


@hookspec(firstresult=True)
def sms_gateway(settings):
    """Return the SMS gateway to send through (an object with `async send(to, text, message_id)` that
    raises when the gateway did not take the message), or None when this plugin has none configured.

    Asked for each delivery round of the SMS outbox; the first answer wins. `to` is `+` and digits,
    `message_id` is the same on every retry of one message."""
