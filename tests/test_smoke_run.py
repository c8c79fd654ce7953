"""A shrunken run of the real pipeline writes every file of the run-folder contract."""

import json

import numpy as np
import pandas as pd

from neuromod.api import run_config as run
from tests.conftest import FAST, compose_config, needs_pdflatex, pdflatex


def test_run_writes_every_file(tmp_path):
    cfg = compose_config(FAST)
    summary = run(cfg, output_dir=tmp_path)
    assert summary["status"] == "completed"
    for name in ("summary.json", "metrics.csv", "checkpoint.pt", "trials.npz", "params.tex"):
        assert (tmp_path / name).is_file(), name
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["status"] == "completed"
    assert set(on_disk["final"]) >= {
        "eval_accuracy",
        "eval_loss",
        "eval_accuracy_by_delay",
        "chance_accuracy",
    }
    assert on_disk["steps"] == 2 and on_disk["seed"] == 0
    assert on_disk["config"]["training.steps"] == 2
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert list(metrics["step"]) == [1, 2]
    assert {"train_loss", "eval_loss", "eval_accuracy", "wall_time_s"} <= set(metrics.columns)
    with np.load(tmp_path / "trials.npz") as trials:
        assert trials["inputs"].shape[1] == trials["outputs"].shape[1] > 0
        assert trials["params"].ndim == 4
    tex = (tmp_path / "params.tex").read_text()
    assert "\\begin{tabular}" in tex and "training.steps" in tex.replace("\\_", "_")
    assert (tmp_path / "figures" / "learning_curves.png").stat().st_size > 1000
    assert (tmp_path / "figures" / "example_trials.png").stat().st_size > 1000


def test_same_seed_same_metrics(tmp_path):
    overrides = [*FAST, "training.steps=4", "training.eval_every=2"]
    first = run(compose_config(overrides), output_dir=tmp_path / "a")
    second = run(compose_config(overrides), output_dir=tmp_path / "b")
    third = run(compose_config([*overrides, "seed=1"]), output_dir=tmp_path / "c")
    a, b, c = (pd.read_csv(tmp_path / d / "metrics.csv").drop(columns="wall_time_s") for d in "abc")
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    assert first["final"] == second["final"]
    assert third["seed"] == 1


def test_every_completed_run_reports_the_test_set_and_its_controls(tmp_path):
    summary = run(compose_config(FAST), output_dir=tmp_path)
    final = summary["final"]
    assert {"test_accuracy", "test_loss", "test_accuracy_by_delay"} <= set(final)
    # time_person has a query and a common cue period: every control is scored
    assert {"query_ablation_accuracy", "query_swap_accuracy", "cue_shuffle_accuracy"} <= set(final)
    for key in ("test_accuracy", "query_ablation_accuracy", "query_swap_accuracy", "cue_shuffle_accuracy"):
        assert 0.0 <= final[key] <= 1.0


@needs_pdflatex
def test_params_tex_compiles_with_pdflatex(tmp_path):
    run(compose_config(FAST), output_dir=tmp_path / "run")
    document = "\\documentclass{article}\n\\begin{document}\n\\input{run/params.tex}\n\\end{document}\n"
    (tmp_path / "doc.tex").write_text(document)
    assert pdflatex(tmp_path, "doc.tex").read_bytes()[:5] == b"%PDF-"
