"""The quality indicators public bodies report beside satisfaction (Guangxi's error rate 0.03 %, plan
completion 99.08 %, case closure 95.71 %), defined once with their names in the four languages and which
way is better. Their figures are posted per unit and period (`POST /api/v1/indicators/{key}/values`,
`feedback indicators import`); an objective judges one with the metric `indicator_value`.
"""

from __future__ import annotations

from feedback import hookimpl
from feedback.models import Indicator

INDICATORS = (
    Indicator(
        key="error_rate",
        names={"vi": "Tỷ lệ sai sót", "ru": "Доля ошибок", "zh": "差错率", "en": "Error rate"},
        direction="lower",
        unit_of_measure={
            "vi": "số sai sót / số hồ sơ đã xử lý",
            "ru": "ошибки / рассмотренные дела",
            "zh": "差错件数 / 办理件数",
            "en": "errors / cases handled",
        },
    ),
    Indicator(
        key="plan_completion",
        names={
            "vi": "Tỷ lệ hoàn thành kế hoạch",
            "ru": "Выполнение плана",
            "zh": "计划完成率",
            "en": "Plan completion",
        },
        direction="higher",
        unit_of_measure={
            "vi": "nhiệm vụ đã hoàn thành / nhiệm vụ theo kế hoạch",
            "ru": "выполненные задачи / запланированные задачи",
            "zh": "完成任务数 / 计划任务数",
            "en": "tasks completed / tasks planned",
        },
    ),
    Indicator(
        key="case_closure",
        names={
            "vi": "Tỷ lệ giải quyết xong vụ việc",
            "ru": "Доля закрытых дел",
            "zh": "结案率",
            "en": "Case closure rate",
        },
        direction="higher",
        unit_of_measure={
            "vi": "vụ việc đã giải quyết xong / vụ việc phát sinh",
            "ru": "закрытые дела / открытые дела",
            "zh": "结案数 / 立案数",
            "en": "cases closed / cases opened",
        },
    ),
)


@hookimpl
def register_indicators() -> list[Indicator]:
    return list(INDICATORS)
