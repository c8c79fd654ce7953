"""What ``main.py`` returns to a sweeper (e.g. Optuna): one number per run. Needs no torch."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig


def objective_value(summary: dict[str, Any], objective: DictConfig) -> float:
    """The metric a sweeper optimises; a failed or diverged run gets the worst value, never an error."""
    worst = float("-inf") if objective.direction == "maximize" else float("inf")
    if objective.get("failed_value") is not None:
        worst = float(objective.failed_value)
    if summary.get("status") != "completed":
        return worst
    value = (summary.get("final") or {}).get(objective.metric)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return worst
    return value if value == value else worst  # NaN counts as a failure
