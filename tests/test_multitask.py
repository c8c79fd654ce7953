"""task=multitask: several Orhan & Ma tasks for one network (batches, identity input, per-task scores)."""

from __future__ import annotations

import json
import math
import re
import subprocess

import pandas as pd
import pytest
import torch

from neuromod.results.tables import expand_metrics
from neuromod.runner.build import build
from neuromod.runner.checks import check_task
from neuromod.tasks.multitask import MultiTask
from neuromod.tasks.orhan_ma import ChangeDetection, DelayedEstimation, TwoAlternativeForcedChoice
from neuromod.validation import ConfigError
from tests.conftest import FAST, ROOT, collect_results, compose_config, multirun_command
from tests.test_cli import main_py

NAMES = ["de1", "cd", "afc2"]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def task() -> MultiTask:
    return MultiTask(NAMES)


def test_layout_identity_input_and_output_blocks(task):
    assert task.input_size == 50 + 3 and task.input_names[-3:] == ["task_de1", "task_cd", "task_afc2"]
    assert task.output_names == ["de1.orientation", "cd.changed", "afc2.category"]
    assert task.chance_level == pytest.approx((1 / 6 + 0.5 + 0.5) / 3)
    batch = task.sample(9, gen(0), torch.full((9,), 100))
    assert batch.inputs.shape == (150, 9, 53) and batch.targets.shape == (150, 9, 3)
    assert batch.group.tolist() == [0, 1, 2] * 3
    identity = batch.inputs[:, :, 50:]  # [T, B, 3]
    assert torch.equal(identity, torch.nn.functional.one_hot(batch.group, 3).float().expand(150, 9, 3))
    for k in range(3):  # a trial's targets live in its own task's block only
        others = [j for j in range(3) if j != k]
        assert bool((batch.targets[:, batch.group == k][:, :, others] == 0).all())
    assert torch.equal(batch.loss_weight.sum(0), torch.full((9,), 25.0))


def test_each_task_keeps_the_trials_it_makes_alone(task):
    """Batch k of the alternate schedule is task k mod 3's own batch from the same generator stream."""
    steps = [task.training_batch(6, g := gen(5), 0)] + [task.training_batch(6, g, s) for s in (1, 2, 3)]
    assert [batch.group.unique().tolist() for batch in steps] == [[0], [1], [2], [0]]
    alone = gen(5)
    for single, batch, (lo, hi) in zip(
        (DelayedEstimation(), ChangeDetection(), TwoAlternativeForcedChoice()),
        steps[:3],
        [(0, 1), (1, 2), (2, 3)],
        strict=True,
    ):
        own = single.sample(6, alone)
        assert torch.equal(batch.inputs[..., :50], own.inputs) and batch.n_steps == own.n_steps
        assert torch.equal(batch.targets[..., lo:hi], own.targets)
        assert torch.equal(batch.answer, own.answer.float())
        assert bool((batch.targets[..., [j for j in range(3) if j != lo]] == 0).all())


def test_schedules():
    sequential = MultiTask(NAMES, schedule="sequential", block_steps=2)
    assert [sequential.task_at(s) for s in range(8)] == [0, 0, 1, 1, 2, 2, 2, 2]
    mixed = MultiTask(NAMES, schedule="mixed")
    assert mixed.training_batch(6, gen(0), 7).group.tolist() == [0, 1, 2, 0, 1, 2]
    assert [MultiTask(NAMES).task_at(s) for s in range(5)] == [0, 1, 2, 0, 1]


def test_padding_of_trials_and_channels():
    """de1 (50 channels) with de2 (100): de1's trials are zero on channels 50-99; with two delays, the
    sorted evaluation delays reach every task and shorter trials are padded (no loss, no identity)."""
    task = MultiTask(["de1", "de2"], delays=[10, 40])
    assert task.input_size == 102 and task.output_names == [
        "de1.orientation",
        "de2.orientation_1",
        "de2.orientation_2",
    ]
    batch = task.sample(8, gen(1), torch.tensor([10, 10, 10, 10, 40, 40, 40, 40]))
    assert batch.n_steps == 25 + 40 + 25
    for k in range(2):
        assert sorted(batch.delay[batch.group == k].tolist()) == [10, 10, 40, 40]
    short = (batch.delay == 10).nonzero().squeeze(1)
    assert bool((batch.loss_weight[60:, short] == 0).all()) and bool((batch.inputs[60:, short] == 0).all())
    assert bool((batch.inputs[:60, short, 100 + batch.group[short]] == 1).all())
    assert bool((batch.inputs[:, batch.group == 0, 50:100] == 0).all())
    views = {k: trials for k, _, trials, _ in task.views(batch)}
    assert views[1].inputs.shape[-1] == 100 and views[0].inputs.shape[-1] == 50


def test_a_one_trial_probe_sees_the_longest_trial():
    """The pre-run checks draw one trial: it comes from the task with the longest trials."""
    task = MultiTask(["de1", "cd"], per_task={"cd": {"response_steps": 40}})
    assert task.mix_order == [1, 0]
    assert task.sample(1, gen(0), torch.tensor([100])).n_steps == 25 + 100 + 40
    assert task.sample(4, gen(0)).group.tolist() == [1, 0, 1, 0]
    cfg = compose_config(["task=multitask", "+task.per_task.cd.response_steps=900", *FAST])
    with pytest.raises(ConfigError, match="max_trial_steps=1000"):
        check_task(cfg, build(cfg, torch.device("cpu"))[0])


def test_scores_per_task(task):
    """An output that ignores the input scores chance on each task (binary info_loss exactly 1); the
    targets themselves score 1.0 on every task; each task's score is its own scoring of its trials."""
    batch = task.sample(3000, gen(2), torch.full((3000,), 100))
    silent = torch.zeros(batch.n_steps, 3000, 3)
    metrics = task.extra_metrics(silent, batch)
    assert metrics["accuracy_de1"] == pytest.approx(1 / 6, abs=0.04)
    assert metrics["accuracy_cd"] == pytest.approx(0.5, abs=0.04)
    assert metrics["accuracy_afc2"] == pytest.approx(0.5, abs=0.04)
    assert metrics["info_loss_cd"] == pytest.approx(1.0) and metrics["info_loss_afc2"] == pytest.approx(1.0)
    means = (metrics["info_loss_de1"] + metrics["info_loss_cd"] + metrics["info_loss_afc2"]) / 3
    assert metrics["info_loss"] == pytest.approx(means)
    assert metrics["chance_accuracy_de1"] == pytest.approx(1 / 6)
    oracle = batch.targets.clone()
    oracle[..., 1:] = 20 * (oracle[..., 1:] - 0.5)  # confident logits for the binary tasks
    correct = task.correct(oracle, batch)
    assert bool(correct.all())
    scores = task.extra_metrics(oracle, batch)
    assert [scores[f"accuracy_{n}"] for n in NAMES] == [1.0, 1.0, 1.0]
    for k, index, trials, block in task.views(batch, silent):
        assert torch.equal(task.correct(silent, batch)[index], task.components[k].correct(block, trials))


def test_loss_is_the_mean_of_the_task_losses(task):
    batch = task.sample(6, gen(3))
    outputs = torch.randn(batch.n_steps, 6, 3, requires_grad=True)
    activity = torch.rand(batch.n_steps, 6, 4)
    own = [
        task.components[k].loss(block, trials, activity[:, index])
        for k, index, trials, block in task.views(batch, outputs)
    ]
    loss = task.loss(outputs, batch, activity)
    assert loss.item() == pytest.approx(sum(o.item() for o in own) / 3)
    alone = task.training_batch(6, gen(3), 1)  # all change detection
    assert task.loss(outputs, alone).item() == pytest.approx(
        ChangeDetection().loss(outputs[..., 1:2], ChangeDetection().sample(6, gen(3))).item()
    )


def test_cue_shuffle_stays_within_each_task(task):
    batch = task.sample(12, gen(4))
    shuffled = task.with_shuffled_cues(batch, gen(5))
    assert torch.equal(shuffled.inputs[:, :, 50:], batch.inputs[:, :, 50:])
    assert torch.equal(shuffled.inputs[25:], batch.inputs[25:])
    for k in range(3):
        mine = batch.group == k
        cue, other = batch.inputs[:25, mine, :50], shuffled.inputs[:25, mine, :50]
        assert not torch.equal(cue, other)
        assert sorted(map(float, cue.sum((0, 2)))) == sorted(map(float, other.sum((0, 2))))


@pytest.mark.parametrize(
    "tasks, fragment",
    [
        ("[de1,nope]", "task.tasks: unknown task 'nope'"),
        ("[de1,time_person]", "task.tasks: time_person is not an Orhan & Ma task"),
        ("[]", "task.tasks=[] is not allowed"),
        ("[cd,cd]", "cd is listed twice"),
    ],
)
def test_impossible_combinations_are_config_errors(tasks, fragment):
    cfg = compose_config(["task=multitask", f"task.tasks={tasks}", *FAST])
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        build(cfg, torch.device("cpu"))


def test_config_errors_name_the_key():
    cfg = compose_config(["task=multitask", "task.schedule=sequential", *FAST])
    with pytest.raises(ConfigError, match="task.block_steps=None"):
        build(cfg, torch.device("cpu"))
    cfg = compose_config(["task=multitask", "+task.per_task.comp.p_change=0.2", *FAST])
    with pytest.raises(ConfigError, match="task.per_task"):
        build(cfg, torch.device("cpu"))
    cfg = compose_config(["task=multitask", "+task.per_task.cd.p_change=2", *FAST])
    with pytest.raises(ConfigError, match="task.tasks: cd: task.p_change must be in"):
        build(cfg, torch.device("cpu"))


def test_command_line_error_is_one_line(tmp_path):
    result = main_py(tmp_path / "run", ["task=multitask", "task.tasks=[de1,sinus]"])
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("Error: task.tasks: unknown task 'sinus'"), errors


def test_table_metric_patterns():
    columns = ["test_accuracy", "test_accuracy_by_delay.100", "test_accuracy_de1", "test_accuracy_cd", "x"]
    assert expand_metrics(["test_accuracy", "test_accuracy_*", "nothing_*"], columns) == [
        "test_accuracy",
        "test_accuracy_de1",
        "test_accuracy_cd",
    ]


@pytest.mark.slow
def test_sweep_reports_and_collects_per_task_metrics(tmp_path):
    """Two short multitask runs (seeds 0, 1): summary.json and metrics.csv carry every task's scores and
    sequentiality index; the collected sweep has them per run and as means."""
    sweep = tmp_path / "sweep"
    overrides = ["task=multitask", "architecture=rnn", *FAST, "training.lr=1e-3", "analysis.figures=false"]
    done = subprocess.run(
        multirun_command(sweep, tmp_path, *overrides, "seed=0,1"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for job in ("0", "1"):
        summary = json.loads((sweep / job / "summary.json").read_text())
        assert summary["status"] == "completed"
        final = summary["final"]
        for name in NAMES:
            for metric in ("test_accuracy", "test_info_loss", "accuracy", "info_loss", "sequentiality_index"):
                assert math.isfinite(final[f"{metric}_{name}"]), (metric, name)
        assert final["test_info_loss"] == pytest.approx(sum(final[f"test_info_loss_{n}"] for n in NAMES) / 3)
        header = (sweep / job / "metrics.csv").read_text().splitlines()[0].split(",")
        assert {"accuracy_de1", "info_loss_cd", "loss_afc2"} <= set(header)
    collected = collect_results(tmp_path, f"dir={sweep}", "plots=false", "progress=false")
    assert collected.returncode == 0, collected.stderr[-2000:]
    out = next((tmp_path / "collection_outputs").rglob("results.csv")).parent
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 2 and {
        "test_accuracy_de1",
        "test_info_loss_afc2",
        "sequentiality_index_cd",
    } <= set(results.columns)
    summary = pd.read_csv(out / "summary.csv")
    assert summary["test_accuracy_cd_mean"].iloc[0] == pytest.approx(results["test_accuracy_cd"].mean())


def test_resumed_run_keeps_the_turns(tmp_path):
    """Training resumed from step 2 continues with task 2 mod 3 and ends where the whole run ends."""
    from neuromod.api import run_config as run

    base = ["task=multitask", "architecture=rnn", *FAST, "training.lr=1e-3", "analysis.figures=false"]
    base += ["training.eval_every=2", "training.checkpoint_every=2", "skip_completed=false"]
    whole = run(compose_config([*base, "training.steps=4"]), output_dir=tmp_path / "whole")
    run(compose_config([*base, "training.steps=2"]), output_dir=tmp_path / "resumed")
    resumed = run(
        compose_config([*base, "training.steps=4", "training.resume=true"]), output_dir=tmp_path / "resumed"
    )
    assert resumed["resumed_from_step"] == 2
    for key in ("eval_loss", "test_loss", "test_info_loss_de1", "test_info_loss_cd"):
        assert resumed["final"][key] == whole["final"][key], key


def test_a_gde_component_keeps_its_true_cue_and_whole_trial_window():
    """GDE's observer is told each trial's cued location (Batch.info): a multitask carries it to GDE's
    trials, so GDE scores the same inside a multitask as alone; the SI window is each task's own."""
    task = MultiTask(["gde", "de1"], schedule="mixed")
    batch = task.sample(8, gen(3), torch.full((8,), 100))
    gde = batch.group == 0
    assert set(batch.info) == {"cued_location"}
    alone = task.components[0]
    _, _, trials, _ = next(task.views(batch))
    assert torch.equal(trials.info["cued_location"], batch.info["cued_location"][gde])
    outputs = torch.randn(batch.n_steps, 8, task.output_size, generator=gen(4))
    block = outputs[:, gde][:, :, task.output_slices[0]]
    metrics = task.extra_metrics(outputs, batch)
    assert metrics["info_loss_gde"] == pytest.approx(alone.extra_metrics(block, trials)["info_loss"])
    last = task.analysis_last_step(batch)
    assert torch.equal(last[gde], alone.analysis_last_step(trials))
    assert bool((last > batch.query_step - 1).all())
