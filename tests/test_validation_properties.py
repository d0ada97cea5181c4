"""Property tests: answer validation accepts exactly what a survey version allows."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feedback.errors import InvalidInput
from feedback.ingest import validate_answers
from feedback.models import ChoiceQuestion, RatingQuestion, TextQuestion
from feedback.rates import wilson
from feedback.surveys import survey_templates
from tests.conftest import default_plugins

TEMPLATES = survey_templates(default_plugins())
anything = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 20) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def valid_answer(question):
    if isinstance(question, RatingQuestion):
        return st.integers(1, question.scale)
    if isinstance(question, ChoiceQuestion):
        keys = [option.key for option in question.options]
        if question.multiple:
            return st.lists(st.sampled_from(keys), unique=True, min_size=1)
        return st.sampled_from(keys)
    if isinstance(question, TextQuestion):
        return st.text(min_size=1, max_size=question.max_length).filter(str.strip)
    return st.text(min_size=1, max_size=50).filter(str.strip)


@st.composite
def valid_answers(draw, survey):
    answers = {}
    for question in survey.questions:
        if question.required or draw(st.booleans()):
            answers[question.key] = draw(valid_answer(question))
    return answers


@pytest.mark.parametrize("slug", sorted(TEMPLATES))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_valid_answers_are_accepted_and_kept(slug: str, data) -> None:
    survey = TEMPLATES[slug]
    answers = data.draw(valid_answers(survey))
    cleaned, contact = validate_answers(survey, answers)
    for key, value in answers.items():
        if survey.question(key).__struct_config__.tag == "contact":
            assert contact == value.strip()
        else:
            assert cleaned[key] == value


@pytest.mark.parametrize("slug", sorted(TEMPLATES))
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_any_answers_are_either_accepted_or_refused_naming_the_field(slug: str, data) -> None:
    survey = TEMPLATES[slug]
    keys = [q.key for q in survey.questions] + ["unknown_key"]
    answers = data.draw(st.dictionaries(st.sampled_from(keys), anything, max_size=6))
    try:
        cleaned, _ = validate_answers(survey, answers)
    except InvalidInput as error:
        assert error.field is not None and error.field.startswith("answers")
        assert error.message.startswith(error.field)
    else:
        for key, value in cleaned.items():
            question = survey.question(key)
            if isinstance(question, RatingQuestion):
                assert isinstance(value, int) and 1 <= value <= question.scale


@given(st.integers(0, 10_000), st.integers(1, 10_000))
def test_wilson_interval_contains_the_rate_and_stays_in_0_1(k: int, n: int) -> None:
    k = min(k, n)
    low, high = wilson(k, n)
    assert 0 <= low <= k / n <= high <= 1


def test_wilson_matches_published_values() -> None:
    # Newcombe (1998), Table I: 0/10 and 1/29.
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson(1, 29) == pytest.approx((0.0061, 0.1718), abs=1e-4)
    assert wilson(0, 0) is None
