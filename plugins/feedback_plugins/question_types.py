"""The core question kinds, registered through the same hook a third party would use."""

from feedback import hookimpl
from feedback.models import ChoiceQuestion, ContactQuestion, RatingQuestion, TextQuestion


@hookimpl
def register_question_types():
    return [RatingQuestion, ChoiceQuestion, TextQuestion, ContactQuestion]
