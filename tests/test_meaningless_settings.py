"""Settings that are valid one by one but would make a run meaningless are refused before training with one
line naming the key and what to do (exit status 2, ``summary.json`` ``failed``); the settings the
repository's own presets use are not."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from neuromod import validation
from neuromod.api import run_config as run
from neuromod.runfolder.objective import check_objective, is_test_metric
from neuromod.runner.build import build
from neuromod.runner.checks import check_config, check_task
from neuromod.validation import ConfigError
from tests.conftest import CONFIG_DIR, FAST, compose_config
from tests.test_cli import main_py

pytestmark = pytest.mark.usefixtures("one_thread")


def refusal(overrides: list[str]) -> str | None:
    """The one-line error the checks give for ``overrides`` (on top of ``FAST``), or None if they pass:
    the checks before torch (:func:`check_config`), then the built task's (:func:`check_task`)."""
    cfg = compose_config([*FAST, *overrides])
    try:
        check_config(cfg)
        task, _ = build(cfg, torch.device("cpu"))
        check_task(cfg, task)
    except ConfigError as error:
        return str(error)
    return None


#: (name, overrides, fragments of the one error line: the key, the bad value, the reason, what to do)
MEANINGLESS = [
    (
        "lag_longer_than_every_trial",
        ["af.lag=5000"],
        [
            "af.lag=5000 is not allowed",
            "longest time_person training trial (delay 20) has 26 steps",
            "never act within a trial",
            "use af.lag < 26",
        ],
    ),
    ("lag_equal_to_the_trial", ["af.lag=26"], ["af.lag=26", "has 26 steps", "use af.lag < 26"]),
    # the evaluation trials are longer, but the modulator would never be trained
    ("lag_beyond_training_trials", ["task.eval_delays=[40]", "af.lag=30"], ["af.lag=30", "use af.lag < 26"]),
    (
        "lag_with_a_longer_task",
        ["task=cue_go", "architecture=one_neuron", "af.lag=26"],
        ["af.lag=26", "cue_go", "use af.lag < 26"],
    ),
    (
        "lag_of_the_modulator_rate_control",
        ["af=modulator_rate", "af.lag=26"],
        ["af.lag=26", "use af.lag < 26 (the default is 0)"],
    ),
    (
        "stop_above_one",
        ["training.stop_at_accuracy=1.5"],
        ["training.stop_at_accuracy=1.5", "no accuracy exceeds 1", "null"],
    ),
    (
        "stop_at_chance",
        ["training.stop_at_accuracy=0.25"],
        ["training.stop_at_accuracy=0.25", "chance accuracy of time_person (0.25)", "above 0.25"],
    ),
    (
        "stop_below_chance",
        ["task=cue_go", "training.stop_at_accuracy=0.3"],
        ["training.stop_at_accuracy=0.3", "cue_go (0.5)", "first evaluation"],
    ),
    (
        "stop_at_zero",
        ["task=sine", "training.stop_at_accuracy=0"],
        ["training.stop_at_accuracy=0", "sine (0)"],
    ),
    ("stop_nan", ["training.stop_at_accuracy=nan"], ["training.stop_at_accuracy=nan", "finite number"]),
    ("lr_infinite", ["training.lr=inf"], ["training.lr=inf", "finite number > 0"]),
    ("grad_clip_infinite", ["training.grad_clip=inf"], ["training.grad_clip=inf", "finite number > 0"]),
    ("failed_value_nan", ["objective.failed_value=nan"], ["objective.failed_value=nan", "other than NaN"]),
    (
        "one_evaluation_trial",
        ["training.eval_batch_size=1"],
        ["training.eval_batch_size=1", "one trial's", "at least 2"],
    ),
    (
        "tuning_on_test_accuracy",
        ["objective.metric=test_accuracy"],
        ["objective.metric=test_accuracy", "held-out test set", "objective.metric=eval_accuracy"],
    ),
    (
        "tuning_on_test_loss",
        ["objective.metric=test_loss", "objective.direction=minimize"],
        ["objective.metric=test_loss", "test set", "objective.metric=eval_loss"],
    ),
    (
        "tuning_on_a_tasks_test_metric",
        ["task=de1", "objective.metric=test_info_loss", "objective.direction=minimize"],
        ["objective.metric=test_info_loss", "objective.metric=info_loss"],
    ),
    (
        "tuning_on_a_test_control",
        ["objective.metric=query_swap_accuracy"],
        ["objective.metric=query_swap_accuracy", "test set"],
    ),
    (
        "tuning_on_a_per_delay_table",
        ["objective.metric=eval_accuracy_by_delay"],
        ["objective.metric=eval_accuracy_by_delay", "not one number", "objective.metric=eval_accuracy"],
    ),
    (
        "tuning_on_chance",
        ["objective.metric=chance_accuracy"],
        ["objective.metric=chance_accuracy", "chance"],
    ),
    (
        "maximising_a_loss",
        ["objective.metric=eval_loss"],
        ["objective.metric=eval_loss", "objective.direction=maximize", "add objective.direction=minimize"],
    ),
    (
        "minimising_an_accuracy",
        ["objective.direction=minimize"],
        ["objective.metric=eval_accuracy", "add objective.direction=maximize"],
    ),
    ("objective_not_a_name", ["objective.metric=3"], ["objective.metric=3", "eval_accuracy"]),
    (
        "multitask_evaluation_set_smaller_than_its_tasks",
        ["task=multitask", "training.eval_batch_size=2"],
        ["training.eval_batch_size=2", "afc2 would never be scored", "at least 3"],
    ),
    (
        "multitask_mixed_batch_smaller_than_its_tasks",
        ["task=multitask", "task.schedule=mixed", "training.batch_size=2"],
        ["training.batch_size=2", "task.schedule=mixed", "afc2 would never be trained", "at least 3"],
    ),
]


@pytest.mark.parametrize("name, overrides, fragments", MEANINGLESS, ids=[case[0] for case in MEANINGLESS])
def test_a_meaningless_setting_is_refused_with_one_line(name, overrides, fragments):
    message = refusal(overrides)
    assert message is not None, f"{overrides} was accepted"
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


#: Neighbours of the refused settings that keep their meaning, and must pass.
MEANINGFUL = [
    ["af.lag=25"],  # acts at the last step of the longest trial
    ["af=fixed", "af.lag=500"],  # no modulator: the lag has no effect
    ["af=static_learned", "af.lag=500"],
    ["architecture=lstm", "af.lag=500"],  # the control does not use the family
    ["architecture=rnn", "af.lag=500"],
    ["af=modulator_rate"],
    ["training.stop_at_accuracy=0.26"],
    ["training.stop_at_accuracy=1.0"],
    ["task=sine", "training.stop_at_accuracy=0.9"],
    ["training.eval_batch_size=2"],
    ["training.batch_size=1"],
    ["training.eval_every=1000"],  # the trainer still evaluates at the last step (test below)
    ["objective.metric=eval_loss", "objective.direction=minimize"],
    ["task=de1", "objective.metric=info_loss", "objective.direction=minimize"],
    ["objective.metric=masked_accuracy"],
    ["objective.metric=criterion_step", "objective.direction=minimize"],
    ["objective.failed_value=-inf"],
    ["task=multitask", "training.eval_batch_size=3"],
    ["task=multitask", "task.schedule=mixed", "training.batch_size=3"],
    ["task=multitask", "training.batch_size=1"],  # alternate: every batch is one task's
]


@pytest.mark.parametrize("overrides", MEANINGFUL, ids=[" ".join(case) for case in MEANINGFUL])
def test_a_meaningful_neighbour_is_accepted(overrides):
    assert refusal(overrides) is None


def test_a_run_whose_evaluation_interval_exceeds_its_steps_is_still_evaluated(tmp_path):
    """Why ``training.eval_every > training.steps`` is not refused: the last step is always evaluated."""
    cfg = compose_config([*FAST, "training.steps=3", "training.eval_every=10", "analysis.figures=false"])
    summary = run(cfg, output_dir=tmp_path / "run")
    assert summary["status"] == "completed"
    assert [row["step"] for row in _rows(tmp_path / "run" / "metrics.csv")] == [3]
    assert math.isfinite(summary["final"]["eval_accuracy"])


def _rows(path: Path) -> list[dict]:
    import csv

    with path.open() as handle:
        return [{"step": int(row["step"])} for row in csv.DictReader(handle)]


def test_non_finite_numbers():
    with pytest.raises(ConfigError, match="finite number > 0"):
        validation.number("training.lr", float("inf"), positive=True)
    with pytest.raises(ConfigError, match="finite number >= 0"):
        validation.number("key", float("-inf"), at_least=0)
    with pytest.raises(ConfigError, match="other than NaN"):
        validation.number("objective.failed_value", float("nan"), finite=False)
    assert validation.number("objective.failed_value", float("-inf"), finite=False) == float("-inf")
    assert validation.number("training.lr", 1e30, positive=True) == 1e30


def test_which_metrics_are_scored_on_the_test_set():
    assert is_test_metric("test_accuracy") and is_test_metric("test_accuracy_de1")
    assert is_test_metric("cue_shuffle_accuracy") and is_test_metric("query_ablation_accuracy")
    assert not is_test_metric("eval_accuracy") and not is_test_metric("info_loss")
    check_objective(OmegaConf.create({"metric": "accuracy_de1", "direction": "maximize"}))
    with pytest.raises(ConfigError, match="objective.metric=accuracy_de1"):
        check_objective(OmegaConf.create({"metric": "test_accuracy_de1", "direction": "maximize"}))


def _preset_sweeps(preset: str) -> list[list[str]]:
    """Every combination of the values a preset's sweeper tries (the ends of an interval; seeds left out)."""
    config = OmegaConf.load(Path(CONFIG_DIR) / "experiment" / f"{preset}.yaml")
    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    parser = OverridesParser.create()
    axes = []
    for key, value in params.items():
        if key == "seed":
            continue
        override = parser.parse_override(f"{key}={value}")
        if not override.is_sweep_override():
            values = [str(value)]
        elif override.is_discrete_sweep():
            values = list(override.sweep_string_iterator())
        else:
            interval = override.value()
            values = [str(interval.start), str(interval.end)]
        axes.append([f"{key}={v}" for v in values])
    return [list(combination) for combination in itertools.product(*axes)]


PRESETS = sorted(p.stem for p in (Path(CONFIG_DIR) / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_passes_the_checks(preset):
    """No false refusal: every setting a preset runs (each combination its sweep tries) passes every
    check, the task's included."""
    combinations = _preset_sweeps(preset)
    assert combinations
    for combination in combinations:
        cfg = compose_config([f"experiment={preset}", *combination])
        try:
            check_config(cfg)
            task, _ = build(cfg, torch.device("cpu"))
            check_task(cfg, task)
        except ConfigError as error:
            pytest.fail(f"experiment={preset} {' '.join(combination)} is refused: {error}")
        assert not is_test_metric(str(cfg.objective.metric))


#: Through the real command line: a check before torch, one while building, one against the task.
COMMAND_LINE = [
    ("objective_on_the_test_set", ["objective.metric=test_accuracy"], "objective.metric=test_accuracy"),
    ("lag", ["af.lag=5000"], "af.lag=5000"),
    ("stop_at_chance", ["training.stop_at_accuracy=0.25"], "training.stop_at_accuracy=0.25"),
]


@pytest.fixture(scope="module")
def command_line_results(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    base = tmp_path_factory.mktemp("meaningless")

    def launch(case):
        name, overrides, _ = case
        return name, (main_py(base / name, overrides), base / name)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(launch, COMMAND_LINE))


@pytest.mark.parametrize("name, overrides, key", COMMAND_LINE, ids=[case[0] for case in COMMAND_LINE])
def test_the_command_line_exits_2_with_one_line_and_records_failed(
    command_line_results, name, overrides, key
):
    result, folder = command_line_results[name]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith(f"Error: {key} is not allowed"), result.stderr
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "failed" and key in summary["error"]
    assert summary["steps"] == 0
    assert not (folder / "checkpoint.pt").exists() and not (folder / "metrics.csv").exists()
