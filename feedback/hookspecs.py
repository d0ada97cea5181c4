"""The plugin contract: every hook, one docstring each.

Hooks are synchronous; an implementation may take any subset of the keyword arguments and may
return a value, a callable or an awaitable (the core resolves each with `await_me_maybe`).
`register_*` hooks are collected once at start-up and never called per request.
"""

from __future__ import annotations

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("feedback")
hookimpl = HookimplMarker("feedback")


@hookspec
def register_migrations():
    """Return a `sqlite_utils.Migrations` set (or a list of them) owned by this plugin."""


@hookspec
def register_question_types():
    """Return a list of question Struct classes (msgspec tagged, `tag_field="kind"`)."""


@hookspec
def register_survey_templates():
    """Return a list of `SurveyDefinition` templates (CSAT, 好差评, Ваш контроль, …)."""


@hookspec
def register_routes(settings):
    """Return a list of Litestar route handlers or routers to mount in the app."""


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
    """React to an `Event` after the write that caused it has committed (mail, webhooks, SSE…)."""
