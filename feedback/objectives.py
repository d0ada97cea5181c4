"""Quality objectives (ISO 9001 6.2): versions, evaluation from rollups, control-chart signals."""

from __future__ import annotations


def jobs() -> list:
    return []
