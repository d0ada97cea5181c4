"""The JSON API of corrective actions: the queue, one action with its events, transitions, KPIs."""

from __future__ import annotations

ACTION_CONTROLLERS: list = []
