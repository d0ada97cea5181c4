"""Corrective actions (ISO 9001 10.2): the state machine, opening, deadlines, effectiveness."""

from __future__ import annotations


def jobs() -> list:
    return []
