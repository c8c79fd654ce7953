"""MLflow export of a sweep's run folders (``python -m neuromod.export``, ``collect_results.py
mlflow=true``), read back through MLflow's client: one MLflow run per folder, exporting again updates."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
from importlib.util import find_spec

import pytest

from tests.conftest import FAST, ROOT, collect_results, multirun_command

needs_mlflow = pytest.mark.skipif(find_spec("mlflow") is None, reason="the mlflow extra is not installed")


def _client(sweep):
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{sweep / '.mlflow' / 'mlflow.db'}")


def _runs(client, kind="run"):
    """The experiment's active runs of one kind, by run folder."""
    (experiment,) = client.search_experiments(filter_string="name != 'Default'")
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.`neuromod.kind` = '{kind}'")
    return {run.data.tags["neuromod.run_dir"]: run for run in runs}


def _fake_run(folder, lr, status="completed", rows=((10, 0.5), (20, 0.75))):
    folder.mkdir(parents=True, exist_ok=True)
    summary = {
        "status": status,
        "steps": rows[-1][0],
        "started_at": 1.7e9,
        "wall_time_s": 3.0,
        "config": {"training.lr": lr, "seed": 0, "task.delays": [1, 2]},
        "final": {"eval_accuracy": rows[-1][1], "test_accuracy": 0.6},
    }
    if status == "running":  # alive: this process, beating now
        summary.update(host=socket.gethostname(), pid=os.getpid(), updated_at=time.time())
    (folder / "summary.json").write_text(json.dumps(summary))
    with open(folder / "metrics.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "train_loss", "eval_accuracy", "wall_time_s"])
        writer.writerows([step, 1.0 / step, accuracy, step / 10] for step, accuracy in rows)


@needs_mlflow
def test_exporting_again_updates_runs_in_place_and_redoes_a_changed_one(tmp_path):
    from neuromod.export import export_sweep

    sweep = tmp_path / "sweep"
    _fake_run(sweep / "0", 0.01, status="running", rows=((10, 0.5),))
    _fake_run(sweep / "1", 0.02)
    first = export_sweep(sweep)
    client = _client(sweep)
    runs = _runs(client)
    assert set(runs) == {"0", "1"} and runs["0"].info.status == "RUNNING"
    assert runs["1"].data.params == {"training.lr": "0.02", "seed": "0", "task.delays": "[1, 2]"}
    history = client.get_metric_history(runs["1"].info.run_id, "eval_accuracy")
    assert [(m.step, m.value) for m in history] == [(10, 0.5), (20, 0.75)]
    assert runs["1"].data.metrics["test_accuracy"] == 0.6  # a final metric that is not a column

    # run 0 finished since; run 1's folder now holds a run with another learning rate
    _fake_run(sweep / "0", 0.01)
    _fake_run(sweep / "1", 0.05, rows=((10, 0.25), (20, 0.5)))
    second = export_sweep(sweep)
    runs = _runs(client)
    assert set(runs) == {"0", "1"}
    assert second["0"] == first["0"] and runs["0"].info.status == "FINISHED"
    history = client.get_metric_history(second["0"], "eval_accuracy")
    assert sorted((m.step, m.value) for m in history) == [(10, 0.5), (20, 0.75)]  # no repeated row
    assert second["1"] != first["1"] and runs["1"].data.params["training.lr"] == "0.05"
    assert client.get_run(first["1"]).info.lifecycle_stage == "deleted"
    artifacts = {a.path for a in client.list_artifacts(second["1"])}
    assert {"summary.json", "metrics.csv"} <= artifacts


def test_export_without_mlflow_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "sweep" / "0").mkdir(parents=True)
    code = (
        "import runpy, sys; sys.modules['mlflow'] = None; sys.modules['mlflow.tracking'] = None; "
        f"sys.argv = ['export', {str(tmp_path / 'sweep')!r}]; "
        "runpy.run_module('neuromod.export', run_name='__main__')"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "Error: exporting to MLflow needs the mlflow package: pip install -e '.[mlflow]'"
    ]


@needs_mlflow
@pytest.mark.slow
def test_a_2x2_sweep_with_a_failed_job_exports_four_runs_twice_without_duplicates(tmp_path):
    sweep = tmp_path / "sweep"
    # architecture=factorial with task.encoding=additive is refused: that job fails
    overrides = [*FAST, "training.steps=4", "training.eval_every=2", "analysis.figures=false"]
    grid = ["architecture=additive,factorial", "task.encoding=factorial,additive"]
    launched = subprocess.run(
        multirun_command(sweep, tmp_path, *overrides, *grid), cwd=ROOT, capture_output=True, text=True
    )
    assert launched.returncode == 0, launched.stderr[-2000:]
    export = [sys.executable, "-m", "neuromod.export", str(sweep)]
    for _ in range(2):
        done = subprocess.run(export, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    client = _client(sweep)
    runs = _runs(client)
    assert len(runs) == 4
    statuses = {key: run.info.status for key, run in runs.items()}
    assert sorted(statuses.values()) == ["FAILED", "FINISHED", "FINISHED", "FINISHED"]
    (failed,) = [run for run in runs.values() if run.info.status == "FAILED"]
    assert failed.data.params["architecture.n_neurons"]  # the settings of a failed run too
    assert "requires task.encoding=factorial" in failed.data.tags["neuromod.error"]
    for key, run in runs.items():
        if run.info.status != "FINISHED":
            continue
        with open(sweep / key / "metrics.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        history = client.get_metric_history(run.info.run_id, "eval_loss")
        assert [(m.step, m.value) for m in history] == [(int(r["step"]), float(r["eval_loss"])) for r in rows]
        assert 0.0 <= run.data.metrics["test_accuracy"] <= 1.0
        assert run.data.params["task.encoding"] in ("additive", "factorial")

    # collection with mlflow=true: the same four runs, nested under a run holding the tables
    collected = collect_results(tmp_path, f"dir={sweep}", "mlflow=true", "plots=false", "progress=false")
    assert collected.returncode == 0, collected.stderr[-2000:]
    runs = _runs(client)
    (parent,) = _runs(client, "collection").values()
    assert len(runs) == 4
    assert {run.data.tags.get("mlflow.parentRunId") for run in runs.values()} == {parent.info.run_id}
    assert "summary.tex" in {a.path for a in client.list_artifacts(parent.info.run_id)}
