"""The built-in survey templates (feedback_plugins.templates)."""

import re

import msgspec
import pytest

from feedback.models import (
    INDICATORS,
    ChoiceQuestion,
    ContactQuestion,
    RatingQuestion,
    SurveyDefinition,
    TextQuestion,
)
from feedback_plugins import templates

LANGS = {"vi", "ru", "zh", "en"}
SLUGS = ["csat", "haochaping", "vash_kontrol", "vn_one_stop", "a11_v2", "govuk"]
KEY = re.compile(r"^[a-z0-9_]+$")

TEMPLATES = templates.register_survey_templates()
BY_SLUG = {t.slug: t for t in TEMPLATES}


def text_dicts(survey: SurveyDefinition):
    """Every (where, text dict) in a survey; label lists are checked separately."""
    yield "title", survey.title
    yield "description", survey.description
    for q in survey.questions:
        yield f"{q.key}.text", q.text
        if isinstance(q, ChoiceQuestion):
            for option in q.options:
                yield f"{q.key}.{option.key}", option.text
        if isinstance(q, ContactQuestion):
            yield f"{q.key}.consent_text", q.consent_text


def check_script(lang: str, value: str, where: str) -> None:
    if lang == "zh":
        assert re.search(r"[\u4e00-\u9fff]", value), f"{where}: no Chinese characters in {value!r}"
    elif lang == "ru":
        assert re.search(r"[А-Яа-яЁё]", value), f"{where}: no Cyrillic in {value!r}"
    elif lang == "vi":
        assert any(ord(c) > 127 for c in value), f"{where}: Vietnamese without diacritics {value!r}"


def test_six_templates_with_the_expected_slugs():
    assert [t.slug for t in TEMPLATES] == SLUGS
    assert all(isinstance(t, SurveyDefinition) for t in TEMPLATES)


@pytest.mark.parametrize("survey", TEMPLATES, ids=SLUGS)
def test_languages(survey):
    assert survey.languages == ["vi", "ru", "zh", "en"]


@pytest.mark.parametrize("survey", TEMPLATES, ids=SLUGS)
def test_every_text_has_the_four_languages(survey):
    for where, text in text_dicts(survey):
        assert set(text) == LANGS, f"{survey.slug} {where}: {sorted(text)}"
        for lang, value in text.items():
            assert isinstance(value, str) and value.strip(), f"{survey.slug} {where} [{lang}] empty"
            check_script(lang, value, f"{survey.slug} {where} [{lang}]")


@pytest.mark.parametrize("survey", TEMPLATES, ids=SLUGS)
def test_no_text_anywhere_misses_a_language(survey):
    """A generic sweep: any dict keyed by a language code carries exactly the four."""

    def walk(node, path):
        if isinstance(node, dict):
            if set(node) & LANGS:
                assert set(node) == LANGS, f"{path}: {sorted(node)}"
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")

    walk(msgspec.to_builtins(survey), survey.slug)


@pytest.mark.parametrize("survey", TEMPLATES, ids=SLUGS)
def test_rating_labels_levels_and_scores(survey):
    ratings = [q for q in survey.questions if isinstance(q, RatingQuestion)]
    assert ratings
    for q in ratings:
        assert q.labels is not None, f"{survey.slug}.{q.key} has no labels"
        assert set(q.labels) == LANGS
        for lang, labels in q.labels.items():
            assert len(labels) == q.scale, f"{survey.slug}.{q.key} [{lang}]"
            for label in labels:
                assert isinstance(label, str) and label.strip()
                check_script(lang, label, f"{survey.slug}.{q.key} label [{lang}]")
            assert len(set(labels)) == q.scale, f"{survey.slug}.{q.key} [{lang}] duplicate labels"
        if q.levels is not None:
            assert len(q.levels) == q.scale
            assert all(1 <= level <= 5 for level in q.levels)
            assert q.levels == sorted(q.levels)
        if q.scores is not None:
            assert len(q.scores) == q.scale
            assert q.scores == sorted(q.scores)
        assert q.level_of(1) == 1 and q.level_of(q.scale) == 5
        assert q.score_of(1) == 0.0 and q.score_of(q.scale) == 100.0


@pytest.mark.parametrize("survey", TEMPLATES, ids=SLUGS)
def test_keys_unique_and_stable(survey):
    keys = [q.key for q in survey.questions]
    assert len(keys) == len(set(keys))
    for q in survey.questions:
        assert KEY.match(q.key), q.key
        if isinstance(q, ChoiceQuestion):
            option_keys = [o.key for o in q.options]
            assert len(option_keys) == len(set(option_keys))
            assert all(KEY.match(k) for k in option_keys)


@pytest.mark.parametrize("survey", TEMPLATES, ids=SLUGS)
def test_show_if_refers_to_an_earlier_rating(survey):
    seen: dict[str, object] = {}
    for q in survey.questions:
        if q.show_if is not None:
            target = seen.get(q.show_if.question)
            assert isinstance(target, RatingQuestion), f"{survey.slug}.{q.key}"
            for bound in (q.show_if.min, q.show_if.max):
                assert bound is None or 1 <= bound <= target.scale
        seen[q.key] = q


@pytest.mark.parametrize("survey", TEMPLATES, ids=SLUGS)
def test_indicators_are_in_the_vocabulary(survey):
    for q in survey.questions:
        assert q.indicator is None or q.indicator in INDICATORS, f"{survey.slug}.{q.key}"


@pytest.mark.parametrize("survey", TEMPLATES, ids=SLUGS)
def test_json_round_trip(survey):
    encoded = msgspec.json.encode(survey)
    assert msgspec.json.decode(encoded, type=SurveyDefinition) == survey


def test_templates_do_not_share_mutable_text():
    ids = [id(text) for survey in TEMPLATES for _, text in text_dicts(survey)]
    assert len(ids) == len(set(ids))


def test_primary_ratings():
    for slug in ("csat", "haochaping", "vn_one_stop", "a11_v2", "govuk"):
        primary = BY_SLUG[slug].primary_rating()
        assert primary is not None and primary.primary and primary.required
        assert primary.indicator == "overall"
    assert BY_SLUG["a11_v2"].primary_rating().key == "satisfaction"
    vash = BY_SLUG["vash_kontrol"]
    assert not any(isinstance(q, RatingQuestion) and q.primary for q in vash.questions)


def test_scoring():
    assert {t.slug: t.scoring for t in TEMPLATES} == {
        "csat": "csat",
        "haochaping": "csat",
        "vash_kontrol": "criteria_mean",
        "vn_one_stop": "csat",
        "a11_v2": "csat",
        "govuk": "csat",
    }


def test_csat():
    survey = BY_SLUG["csat"]
    overall = survey.question("overall")
    assert overall.style == "faces" and overall.scale == 5
    assert survey.question("reasons").show_if.max == 3
    assert survey.question("went_well").show_if.min == 4
    assert not survey.question("went_well").required
    assert {o.key for o in survey.question("reasons").options} >= {
        "waiting_time",
        "staff_attitude",
        "information",
        "premises",
        "procedure_complexity",
        "other",
    }
    assert isinstance(survey.question("comment"), TextQuestion)
    assert survey.question("comment").max_length == 1200
    contact = survey.question("contact")
    assert isinstance(contact, ContactQuestion)
    assert contact.consent_text["en"] == "I agree to be contacted about this feedback"


def test_haochaping():
    survey = BY_SLUG["haochaping"]
    overall = survey.question("overall")
    assert overall.labels["zh"] == ["非常不满意", "不满意", "基本满意", "满意", "非常满意"]
    assert overall.primary and overall.required and overall.style == "faces"
    assert {q.key: q.indicator for q in survey.questions if isinstance(q, RatingQuestion)} == {
        "overall": "overall",
        "efficiency": "efficiency",
        "competence": "staff_competence",
        "attitude": "staff_courtesy",
    }
    assert not any(survey.question(k).required for k in ("efficiency", "competence", "attitude"))
    bad = survey.question("bad_reasons")
    assert bad.multiple and bad.show_if.max == 2 and bad.show_if.min is None
    assert [o.key for o in bad.options] == [
        "over_time_limit",
        "extra_conditions",
        "extra_documents",
        "poor_attitude",
        "unclear_guidance",
        "repeated_visits",
        "other",
    ]
    assert bad.show_if.holds({"overall": 2}) and not bad.show_if.holds({"overall": 3})
    assert isinstance(survey.question("contact"), ContactQuestion)


def test_vash_kontrol():
    survey = BY_SLUG["vash_kontrol"]
    ratings = [q for q in survey.questions if isinstance(q, RatingQuestion)]
    assert [(q.key, q.indicator) for q in ratings] == [
        ("service_time", "service_time"),
        ("waiting_time", "waiting_time"),
        ("staff_courtesy", "staff_courtesy"),
        ("premises", "premises"),
        ("information", "information"),
    ]
    assert all(q.required and q.scale == 5 and q.style == "stars" for q in ratings)
    assert survey.question("comment") and survey.question("contact")


def test_vn_one_stop():
    survey = BY_SLUG["vn_one_stop"]
    overall = survey.question("overall")
    assert overall.scale == 3 and overall.primary and overall.required
    assert overall.labels["vi"] == ["Không hài lòng", "Hài lòng", "Rất hài lòng"]
    for key, indicator in (
        ("overall", "overall"),
        ("on_time", "on_time"),
        ("officer_attitude", "staff_courtesy"),
        ("publicity", "information"),
    ):
        q = survey.question(key)
        assert isinstance(q, RatingQuestion) and q.indicator == indicator and q.scale == 3
        assert q.levels == [1, 4, 5] and q.scores == [0.0, 75.0, 100.0]
    visits = survey.question("visits")
    assert not visits.multiple and visits.indicator == "visits"
    assert [o.key for o in visits.options] == ["1", "2", "3_or_more"]
    assert [o.key for o in survey.question("agencies").options] == ["1", "2", "3_or_more"]


def test_a11_v2():
    survey = BY_SLUG["a11_v2"]
    assert survey.question("satisfaction").labels["en"][0] == "Strongly disagree"
    assert survey.question("satisfaction").labels["en"][-1] == "Strongly agree"
    went_well, could_be_better = survey.question("went_well"), survey.question("could_be_better")
    assert went_well.show_if.min == 4 and could_be_better.show_if.max == 3
    expected = ["effectiveness", "ease", "efficiency", "transparency", "humanity", "employee", "other"]
    assert [o.key for o in went_well.options] == expected
    assert [o.key for o in could_be_better.options] == expected
    assert went_well.multiple and could_be_better.multiple


def test_govuk():
    survey = BY_SLUG["govuk"]
    assert [q.key for q in survey.questions] == ["overall", "comment"]
    assert survey.question("comment").max_length == 1200
    assert survey.question("overall").primary and survey.question("overall").required
