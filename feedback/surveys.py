"""Survey templates (from plugins) and published, immutable survey versions."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Union

import msgspec

from feedback.errors import NotFound
from feedback.models import ChoiceQuestion, ContactQuestion, RatingQuestion, SurveyDefinition, TextQuestion
from feedback.plugins import flatten, pm

_encoder = msgspec.json.Encoder()
CORE_KINDS = (RatingQuestion, ChoiceQuestion, TextQuestion, ContactQuestion)
_types: dict[tuple[type, ...], type[SurveyDefinition]] = {}


def survey_type() -> type[SurveyDefinition]:
    """The survey Struct whose question union holds every kind the plugins register."""
    kinds = tuple(dict.fromkeys(flatten(pm.hook.register_question_types())))
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


def decode_definition(raw: bytes | str) -> SurveyDefinition:
    return msgspec.json.decode(raw, type=survey_type())


def survey_templates() -> dict[str, SurveyDefinition]:
    """Every template the plugins register, by slug; a slug registered twice is an error."""
    templates: dict[str, SurveyDefinition] = {}
    for template in flatten(pm.hook.register_survey_templates()):
        if template.slug in templates:
            raise ValueError(f"survey template {template.slug!r} registered twice")
        templates[template.slug] = template
    return templates


def publish(conn: sqlite3.Connection, definition: SurveyDefinition) -> int:
    """Publish a new version of a survey; earlier versions stay as they were. Returns the version."""
    # Round-trip through the decoder so a definition built in code is validated like one from JSON.
    definition = decode_definition(_encoder.encode(definition))
    now = datetime.now(UTC).isoformat()
    conn.execute(
        "INSERT INTO surveys (slug, title, created_at) VALUES (?, ?, ?) ON CONFLICT (slug) DO UPDATE"
        " SET title = excluded.title",
        (definition.slug, _encoder.encode(definition.title).decode(), now),
    )
    row = conn.execute("SELECT max(version) FROM survey_versions WHERE slug = ?", (definition.slug,)).fetchone()
    version = (row[0] or 0) + 1
    conn.execute(
        "INSERT INTO survey_versions (slug, version, definition, published_at) VALUES (?, ?, ?, ?)",
        (definition.slug, version, _encoder.encode(definition).decode(), now),
    )
    return version


def publish_template(conn: sqlite3.Connection, slug: str) -> int:
    templates = survey_templates()
    if slug not in templates:
        raise NotFound(f"survey: no template {slug!r}", "survey")
    return publish(conn, templates[slug])
