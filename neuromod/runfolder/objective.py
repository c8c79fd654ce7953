"""What ``main.py`` returns to a sweeper (e.g. Optuna): one number per run, and which metrics may be that
number. Needs no torch."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from neuromod.validation import ConfigError

#: Final metrics scored on the held-out test set besides the ``test_*`` ones: the controls of
#: :func:`neuromod.runner.finish.held_out_metrics` run on the test trials.
TEST_SET_CONTROLS = ("query_ablation_accuracy", "query_swap_accuracy", "cue_shuffle_accuracy")


def is_test_metric(metric: str) -> bool:
    """Whether ``metric`` is scored on the held-out test set (``test_*``, the query and cue controls and the
    lesions, ``lesion_*``)."""
    return metric.startswith(("test_", "lesion_")) or metric in TEST_SET_CONTROLS


def check_objective(objective: Any) -> None:
    """``objective.metric`` and ``objective.direction`` that a sweep can optimise meaningfully.

    Refused, each with one line: a metric that is not a name; a metric scored on the test set (tuning on
    it makes the reported test figure a selected one, not a held-out estimate: tune on the validation
    metrics, ``eval_*``); a per-delay table (``*_by_delay``: a dict, never one number, so every trial would
    get the worst value); the task's chance level (``chance_accuracy*``: the same whatever is tuned); a
    loss maximised or an accuracy minimised (the study would search for the worst settings). Whether the
    metric exists is known only once a run has finished (it depends on the task).
    """
    metric = objective.get("metric") if hasattr(objective, "get") else None
    direction = objective.get("direction") if hasattr(objective, "get") else None
    if not isinstance(metric, str) or not metric.strip():
        raise ConfigError(
            f"objective.metric={metric!r} is not allowed: it must be the name of a final metric of "
            "summary.json, e.g. eval_accuracy"
        )
    if is_test_metric(metric):
        raise ConfigError(
            f"objective.metric={metric} is not allowed: it is scored on the held-out test set, which is for "
            "reporting (tuning on it leaves no unbiased test figure); tune on the validation metrics, e.g. "
            f"objective.metric={_validation_twin(metric)}"
        )
    if metric.endswith("_by_delay"):
        raise ConfigError(
            f"objective.metric={metric} is not allowed: it is a table of one value per delay, not one "
            f"number; use objective.metric={metric[: -len('_by_delay')]}"
        )
    if metric == "chance_accuracy" or metric.startswith("chance_accuracy_"):
        raise ConfigError(
            f"objective.metric={metric} is not allowed: it is the task's chance level, the same whatever "
            "the sweep varies; use objective.metric=eval_accuracy"
        )
    words = metric.split("_")
    if "loss" in words and direction == "maximize":
        raise ConfigError(
            f"objective.metric={metric} with objective.direction=maximize is not allowed: a loss is "
            "minimised (maximising it searches for the worst settings); add objective.direction=minimize"
        )
    if "accuracy" in words and direction == "minimize":
        raise ConfigError(
            f"objective.metric={metric} with objective.direction=minimize is not allowed: an accuracy is "
            "maximised (minimising it searches for the worst settings); add objective.direction=maximize"
        )


def _validation_twin(metric: str) -> str:
    """The validation metric that corresponds to a test-set one: ``test_accuracy`` -> ``eval_accuracy``,
    ``test_loss`` -> ``eval_loss``, a task's extra metric ``test_<name>`` -> ``<name>`` (the validation
    figures of a task's extra metrics carry no prefix); ``eval_accuracy`` for the controls."""
    rest = metric[len("test_") :] if metric.startswith("test_") else ""
    if rest in ("accuracy", "loss"):
        return f"eval_{rest}"
    if not rest or rest.endswith("_by_delay"):
        return "eval_accuracy"
    return rest


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
