"""Survey templates (from plugins) and published, immutable survey versions."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Union

import msgspec

from feedback import audit
from feedback.errors import NotFound
from feedback.models import ChoiceQuestion, ContactQuestion, RatingQuestion, SurveyDefinition, TextQuestion
from feedback.plugins import PluginManager, flatten
from feedback.store import Connection
from feedback.store import surveys as survey_store

_encoder = msgspec.json.Encoder()
CORE_KINDS = (RatingQuestion, ChoiceQuestion, TextQuestion, ContactQuestion)
_types: dict[tuple[type, ...], type[SurveyDefinition]] = {}


def survey_type(plugins: PluginManager | None = None) -> type[SurveyDefinition]:
    """The survey Struct whose question union holds every kind the plugins register (without a plugin
    manager: the core's kinds)."""
    if plugins is None:
        return SurveyDefinition
    kinds = tuple(dict.fromkeys(flatten(plugins.hook.register_question_types())))
    if set(kinds) <= set(CORE_KINDS):
        return SurveyDefinition
    if kinds not in _types:
        union = Union[kinds]  # noqa: UP007 - built at run time from the registered kinds
        _types[kinds] = msgspec.defstruct(
            "SurveyDefinition",
            [("questions", list[union], msgspec.field(default_factory=list))],
            bases=(SurveyDefinition,),
            frozen=True,
            kw_only=True,
        )
    return _types[kinds]


def decode_definition(raw: bytes | str, plugins: PluginManager | None = None) -> SurveyDefinition:
    return msgspec.json.decode(raw, type=survey_type(plugins))


def survey_templates(plugins: PluginManager) -> dict[str, SurveyDefinition]:
    """Every template the plugins register, by slug; a slug registered twice is an error."""
    templates: dict[str, SurveyDefinition] = {}
    for template in flatten(plugins.hook.register_survey_templates()):
        if template.slug in templates:
            raise ValueError(f"survey template {template.slug!r} registered twice")
        templates[template.slug] = template
    return templates


def publish(conn: Connection, definition: SurveyDefinition, plugins: PluginManager | None = None) -> int:
    """Publish a new version of a survey; earlier versions stay as they were. Returns the version.

    A definition with a plugin's question kind needs that plugin's manager (`plugins`) to validate."""
    # Round-trip through the decoder so a definition built in code is validated like one from JSON.
    definition = decode_definition(_encoder.encode(definition), plugins)
    now = datetime.now(UTC).isoformat()
    with audit.tracked(conn, "survey", definition.slug, "publish"):
        survey_store.upsert_survey(conn, definition.slug, _encoder.encode(definition.title).decode(), now)
        return survey_store.insert_next_version(conn, definition.slug, _encoder.encode(definition).decode(), now)


def publish_template(conn: Connection, slug: str, plugins: PluginManager) -> int:
    templates = survey_templates(plugins)
    if slug not in templates:
        raise NotFound(f"survey: no template {slug!r}", "survey")
    return publish(conn, templates[slug], plugins)


# -- drafts: a survey being edited before it is published ------------------------------------------------


def _draft_entry(slug: str, base_version: int | None, encoded: str) -> dict[str, object]:
    """What the audit log keeps of a draft: its survey, the version it started from and a digest of its
    definition (the published version keeps the text itself)."""
    return {
        "slug": slug,
        "base_version": base_version,
        "definition_sha256": hashlib.sha256(encoded.encode()).hexdigest(),
    }


def create_draft(conn: Connection, definition: SurveyDefinition, base_version: int | None, user: str | None) -> int:
    """Store a new draft of `definition`; returns its id."""
    now = datetime.now(UTC).isoformat()
    encoded = _encoder.encode(definition).decode()
    draft_id = survey_store.insert_draft(conn, definition.slug, base_version, encoded, user, now)
    audit.record(conn, "survey_draft", draft_id, "create", after=_draft_entry(definition.slug, base_version, encoded))
    return draft_id


def save_draft(conn: Connection, draft_id: int, definition: SurveyDefinition) -> None:
    encoded = _encoder.encode(definition).decode()
    before = survey_store.draft(conn, draft_id)
    survey_store.update_draft(conn, draft_id, encoded, datetime.now(UTC).isoformat())
    if before is not None and before["definition"] != encoded:  # a save that changes nothing logs nothing
        base = before["base_version"]
        audit.record(
            conn,
            "survey_draft",
            draft_id,
            "update",
            before=_draft_entry(before["slug"], base, before["definition"]),
            after=_draft_entry(definition.slug, base, encoded),
        )


def publish_draft(conn: Connection, draft_id: int, definition: SurveyDefinition, plugins: PluginManager) -> int:
    """Publish the draft as the next immutable version and remove the draft, in one transaction. The
    draft is taken first, so of two admins publishing it at once only one makes a version. The survey's
    entry records the publication."""
    if not survey_store.delete_draft(conn, draft_id):
        raise NotFound(f"id: no survey draft {draft_id}", "id")
    return publish(conn, definition, plugins)


def discard_draft(conn: Connection, draft_id: int) -> bool:
    """Remove a draft unpublished; False when there was none."""
    before = survey_store.draft(conn, draft_id)
    if not survey_store.delete_draft(conn, draft_id):
        return False
    if before is not None:
        entry = _draft_entry(before["slug"], before["base_version"], before["definition"])
        audit.record(conn, "survey_draft", draft_id, "delete", before=entry)
    return True
