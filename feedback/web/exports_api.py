"""Placeholder: CSV/XLSX exports, the A-11 CSV and the management-review PDF."""

from __future__ import annotations

EXPORT_CONTROLLERS: list = []
