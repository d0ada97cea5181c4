"""Survey templates (from plugins) and published, immutable survey versions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Union

import msgspec

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
    survey_store.upsert_survey(conn, definition.slug, _encoder.encode(definition.title).decode(), now)
    return survey_store.insert_next_version(conn, definition.slug, _encoder.encode(definition).decode(), now)


def publish_template(conn: Connection, slug: str, plugins: PluginManager) -> int:
    templates = survey_templates(plugins)
    if slug not in templates:
        raise NotFound(f"survey: no template {slug!r}", "survey")
    return publish(conn, templates[slug], plugins)
