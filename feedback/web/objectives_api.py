"""The JSON API of quality objectives, their status and control charts, and exposure counts."""

from __future__ import annotations

OBJECTIVE_CONTROLLERS: list = []
