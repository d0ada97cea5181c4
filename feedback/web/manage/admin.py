"""Placeholder: filled in by the manager web app work."""

from __future__ import annotations

ROUTES: list = []
