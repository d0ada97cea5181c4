"""The fallback scorer: top-2-box of the survey's primary rating.

level = the primary rating on the common 1..5 level; satisfied = level >= 4 (top-2-box);
dissatisfied = level <= 2 (a 好差评 差评, a Vietnam-766 "dissatisfied"); score = 0..100.
Every rating with an indicator contributes its 0..100 value to that indicator.
"""

from feedback import hookimpl
from feedback.models import RatingQuestion, Score, SurveyDefinition


def indicator_values(survey: SurveyDefinition, answers: dict) -> dict[str, float]:
    sums: dict[str, list[float]] = {}
    for question in survey.questions:
        if isinstance(question, RatingQuestion) and question.indicator:
            value = answers.get(question.key)
            if isinstance(value, int):
                sums.setdefault(question.indicator, []).append(question.score_of(value))
    return {name: sum(values) / len(values) for name, values in sums.items()}


@hookimpl(trylast=True)
def score_response(survey: SurveyDefinition, answers: dict) -> Score:
    primary = survey.primary_rating()
    indicators = indicator_values(survey, answers)
    value = answers.get(primary.key) if primary else None
    if primary is None or not isinstance(value, int):
        return Score(level=None, satisfied=False, dissatisfied=False, score=None, indicators=indicators)
    level = primary.level_of(value)
    return Score(
        level=level,
        satisfied=level >= 4,
        dissatisfied=level <= 2,
        score=primary.score_of(value),
        indicators=indicators,
    )
