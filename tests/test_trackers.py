"""Trackers: TensorBoard event files written while training (``logger=tensorboard``), read back with
TensorBoard's own event reader; the logger as an execution setting (never a swept or changed parameter)."""

from __future__ import annotations

import csv
import subprocess

import pytest

from neuromod.runfolder.settings import changed_settings
from tests.conftest import FAST, ROOT, multirun_command

tensorboard = pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")


def _events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    reader = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "histograms": 0, "images": 0})
    reader.Reload()
    return reader


def _hparams(reader) -> dict:
    """The hyperparameters the run recorded for TensorBoard's HPARAMS tab, as Python values."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = reader.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    values = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    return {key: getattr(value, value.WhichOneof("kind")) for key, value in values.items()}


@pytest.mark.slow
def test_a_sweep_with_tensorboard_writes_scalars_histograms_and_hparams_per_job(tmp_path):
    sweep = tmp_path / "sweep"
    overrides = [*FAST, "training.steps=4", "training.eval_every=2", "analysis.figures=false"]
    command = multirun_command(
        sweep, tmp_path, *overrides, "logger=tensorboard", "seed=0,1", "training.lr=0.01,0.03"
    )
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = set()
    for job in range(4):
        run_dir = sweep / str(job)
        assert list(run_dir.glob("events.out.tfevents.*")), f"no event file in {run_dir}"
        reader = _events(run_dir)
        with open(run_dir / "metrics.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        # every evaluation's numbers, at their steps, as metrics.csv has them
        accuracy = reader.Scalars("eval_accuracy")
        assert [event.step for event in accuracy] == [int(row["step"]) for row in rows] == [2, 4]
        assert [event.value for event in accuracy] == pytest.approx([float(r["eval_accuracy"]) for r in rows])
        assert [e.step for e in reader.Scalars("train_loss")] == [2, 4]
        # the activation parameters' distributions at each evaluation
        histograms = reader.Tags()["histograms"]
        assert {"activation/g", "activation/theta", "activation/alpha"} <= set(histograms)
        assert [event.step for event in reader.Histograms("activation/g")] == [2, 4]
        # hparams: the job's own settings, next to its final metrics
        hparams = _hparams(reader)
        seen.add((hparams["seed"], hparams["training.lr"]))
        assert hparams["status"] == "completed"
        test_accuracy = reader.Scalars("final/test_accuracy")
        assert len(test_accuracy) == 1 and 0.0 <= test_accuracy[0].value <= 1.0
    assert seen == {(0, 0.01), (0, 0.03), (1, 0.01), (1, 0.03)}


def test_tracker_end_writes_figures_final_metrics_and_hparams(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from neuromod.trackers.tensorboard import TensorBoardTracker

    (tmp_path / "figures").mkdir()
    figure = plt.figure(figsize=(2, 1), dpi=50)
    figure.savefig(tmp_path / "figures" / "learning_curves.png")
    plt.close(figure)
    summary = {
        "status": "diverged",
        "steps": 7,
        "final": {"eval_accuracy": 0.5, "eval_loss": float("nan"), "note": "text"},
        "config": {"training.lr": 0.1, "architecture.hidden_size": 8, "threads": 1, "task.delays": [1, 2]},
    }
    tracker = TensorBoardTracker(tmp_path, hparams=None)
    tracker.on_run_end(summary, tmp_path)
    tracker.close()
    reader = _events(tmp_path)
    image = reader.Images("figures/learning_curves")
    assert len(image) == 1 and (image[0].width, image[0].height) == (100, 50)
    assert [(e.step, e.value) for e in reader.Scalars("final/eval_accuracy")] == [(7, 0.5)]
    assert reader.Scalars("final/completed")[0].value == 0.0
    assert "final/eval_loss" not in reader.Tags()["scalars"]  # not finite: left out
    # without command-line overrides: every setting outside the execution keys, lists as text
    assert _hparams(reader) == {
        "training.lr": 0.1,
        "architecture.hidden_size": 8,
        "task.delays": "[1, 2]",
        "status": "diverged",
    }


def test_the_logger_is_an_execution_setting_not_a_changed_parameter():
    before = {"training.lr": 0.01, "logger._target_": None}
    now = {
        "training.lr": 0.01,
        "logger._target_": "neuromod.trackers.tensorboard.TensorBoardTracker",
        "logger.histograms": True,
    }
    assert changed_settings(before, now) == []
    assert changed_settings(before, {**now, "training.lr": 0.02}) == ["training.lr: 0.01 -> 0.02"]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("logger.requires=neuromod_no_such_package", ["neuromod_no_such_package", "logger=none"]),
        ("+logger.histogram=false", ["logger.histogram is not allowed", "TensorBoardTracker"]),
    ],
)
def test_a_logger_that_cannot_be_used_is_refused_before_training(tmp_path, python, override, expected):
    command = [python, "main.py", *FAST, "logger=tensorboard", override, f"hydra.run.dir={tmp_path / 'run'}"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and all(text in lines[0] for text in expected), lines
    assert not (tmp_path / "run" / "metrics.csv").exists()


@pytest.mark.slow
def test_a_completed_run_is_reused_when_launched_again_with_a_logger(tmp_path, python):
    run_dir = tmp_path / "run"
    base = [python, "main.py", *FAST, "analysis.figures=false", f"hydra.run.dir={run_dir}"]
    first = subprocess.run(base, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr[-2000:]
    summary = (run_dir / "summary.json").read_text()
    again = subprocess.run(
        [*base, "logger=tensorboard"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert "already holds a completed run: skipped" in again.stdout + again.stderr
    assert (run_dir / "summary.json").read_text() == summary  # not trained again
    assert not list(run_dir.glob("events.out.tfevents.*"))
