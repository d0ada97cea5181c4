"""Scoring for multi-criteria surveys (Ваш контроль: five criteria, none primary).

The respondent's score is the mean of the criteria answered, on the common 1..5 level; satisfied
when that mean is 4 or more, dissatisfied when it is 2 or less (regional practice calls back below 4).
"""

from feedback import hookimpl
from feedback.models import RatingQuestion, Score, SurveyDefinition
from feedback_plugins.csat import indicator_values


@hookimpl
def score_response(survey: SurveyDefinition, answers: dict) -> Score | None:
    if survey.scoring != "criteria_mean":
        return None
    levels, scores = [], []
    for question in survey.questions:
        value = answers.get(question.key)
        if isinstance(question, RatingQuestion) and isinstance(value, int):
            levels.append(question.level_of(value))
            scores.append(question.score_of(value))
    indicators = indicator_values(survey, answers)
    if not levels:
        return Score(level=None, satisfied=False, dissatisfied=False, score=None, indicators=indicators)
    mean_level = sum(levels) / len(levels)
    return Score(
        level=max(1, min(5, round(mean_level))),
        satisfied=mean_level >= 4,
        dissatisfied=mean_level <= 2,
        score=sum(scores) / len(scores),
        indicators=indicators,
    )
