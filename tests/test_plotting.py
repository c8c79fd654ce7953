"""Run figures: drawn at the end of a run, re-drawn from the files alone, clear errors on bad folders."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from matplotlib import image as mpimg
from PIL import Image

from neuromod.api import run_config as run
from neuromod.plot import main as plot_main
from neuromod.plotting import CorruptRunError, NotARunError, load_run, plot_run
from neuromod.plotting.run_figures import most_modulated, showcase_trial
from neuromod.plotting.transfer_function import activation_moments
from tests.conftest import FAST, ROOT, compose_config

ADDITIVE_FIGURES = {
    "learning_curves.png",
    "example_trials.png",
    "accuracy_by_delay.png",
    "activity_sequence.png",
    "activation_params.png",
    "activation_function.png",
    "activation_function.gif",
}


@pytest.fixture(scope="module")
def additive_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("additive")
    overrides = FAST + [
        "analysis.animate=true",
        "analysis.frame_stride=2",
        "task.max_delay=6",
        "task.eval_delays=[1,3,6,9]",
    ]
    summary = run(compose_config(overrides), output_dir=out)
    assert summary["status"] == "completed"
    return out


def _is_drawn_png(path):
    pixels = mpimg.imread(path)
    return pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 300 and pixels.std() > 0.05


def test_a_run_draws_every_figure(additive_run):
    figures = additive_run / "figures"
    assert {p.name for p in figures.iterdir()} == ADDITIVE_FIGURES
    for name in ADDITIVE_FIGURES - {"activation_function.gif"}:
        assert _is_drawn_png(figures / name), name
    summary = json.loads((additive_run / "summary.json").read_text())
    final = summary["final"]
    assert {"sequentiality_index", "si_neurons_kept", "si_trials_used"} <= set(final)
    assert final["si_trials_total"] == 8  # the whole evaluation set of FAST


def test_animation_is_a_small_gif_with_one_frame_per_stride(additive_run):
    path = additive_run / "figures" / "activation_function.gif"
    assert path.stat().st_size < 5 * 1024**2
    files = load_run(additive_run)
    trial = showcase_trial(files)
    query = int(files.trials["query_step"][trial])
    expected = len(range(0, query + 1, 2)) + (query % 2 != 0)  # every 2nd step, ending on the query
    with Image.open(path) as gif:
        assert gif.format == "GIF"
        assert gif.n_frames == expected


def test_replot_regenerates_the_figures_from_files_only(additive_run, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(additive_run, copy)
    shutil.rmtree(copy / "figures")
    (copy / "checkpoint.pt").unlink()  # figures must not need the model
    assert plot_main([str(copy), "--no-animate"]) == 0
    assert {p.name for p in (copy / "figures").iterdir()} == ADDITIVE_FIGURES - {"activation_function.gif"}
    assert "6 figures" in capsys.readouterr().out


def test_replot_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert plot_main([str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a neuromod run folder" in err
    with pytest.raises(NotARunError, match="not a directory"):
        plot_run(tmp_path / "missing")


def test_replot_refuses_a_failed_run(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"status": "failed", "error": "bad"}))
    with pytest.raises(NotARunError, match="status is 'failed'"):
        plot_run(tmp_path)


def test_truncated_trials_file_is_a_clear_error(additive_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(additive_run, copy)
    data = (copy / "trials.npz").read_bytes()
    (copy / "trials.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptRunError, match="trials.npz is unreadable"):
        load_run(copy)
    done = subprocess.run(
        [sys.executable, "-m", "neuromod.plot", str(copy)], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "truncated or corrupt" in lines[0]


def test_inconsistent_trials_file_is_a_clear_error(additive_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(additive_run, copy)
    with np.load(copy / "trials.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["outputs"] = arrays["outputs"][:, :1]
    np.savez(copy / "trials.npz", **arrays)
    with pytest.raises(CorruptRunError, match="outputs has shape"):
        plot_run(copy)


def test_lstm_run_draws_its_gates(tmp_path):
    summary = run(compose_config(FAST + ["architecture=lstm"]), output_dir=tmp_path)
    assert summary["status"] == "completed"
    names = {p.name for p in (tmp_path / "figures").iterdir()}
    assert "lstm_gates.png" in names and _is_drawn_png(tmp_path / "figures" / "lstm_gates.png")
    assert not names & {"activation_params.png", "activation_function.png"}  # no activation parameters
    assert summary["final"]["si_neurons_total"] == 8  # the LSTM's hidden units (hidden_size=8)


def _trials(delays, correct, n_steps=12):
    B = len(delays)
    return {
        "delay": np.array(delays),
        "correct": np.array(correct),
        "query_step": np.array([2 + d for d in delays]),
        "inputs": np.zeros((n_steps, B, 2)),
        "period_lead": np.array([[0, 1]] * B),
        "period_cue": np.array([[1, 2]] * B),
        "period_delay": np.array([[2, 2 + d] for d in delays]),
    }


def test_showcase_trial_is_the_longest_correct_trained_delay():
    class Files:
        trials = _trials([1, 4, 6, 9], [True, True, False, True])
        config = {"task.min_delay": 1, "task.max_delay": 6}

    assert showcase_trial(Files) == 1  # delay 6 was wrong; delay 9 lies beyond the training range


def test_most_modulated_neurons_and_moments():
    params = np.ones((10, 5, 3))
    params[:, 3, 0] = np.linspace(0, 5, 10)  # neuron 3 changes its gain
    params[:, 1, 1] = np.linspace(1, 2, 10)  # neuron 1 changes its threshold
    assert most_modulated(params, 2) == [1, 3]
    moments = activation_moments(_trials([6], [True]), 0)
    assert moments == {"before the cue": 0, "early delay": 2, "late delay": 7, "query": 8}


def test_retention_table_averages_seeds_by_test_delay_and_is_drawn_beyond_the_training_range(tmp_path):
    from neuromod.plotting.sweeps import plot_retention, retention_table

    rows = []
    for hidden, seed, acc in [(4, 0, (1.0, 0.6, 0.2)), (4, 1, (0.8, 0.4, 0.4)), (64, 0, (1.0, 1.0, 0.9))]:
        rows.append(
            {
                "run": f"h{hidden}s{seed}",
                "status": "completed",
                "architecture.hidden_size": hidden,
                "seed": seed,
                "task.max_delay": 20,
                "reached_criterion": int(hidden == 64),
                "test_accuracy_by_delay.10": acc[0],
                "test_accuracy_by_delay.40": acc[1],
                "test_accuracy_by_delay.160": acc[2],
            }
        )
    rows.append({**rows[0], "run": "failed", "status": "failed", "test_accuracy_by_delay.160": 0.0})
    results = pd.DataFrame(rows)
    params = ["architecture.hidden_size", "seed"]
    table, col, trained = retention_table(results, params)
    assert col == "architecture.hidden_size" and trained == 20
    assert list(table.index) == [10, 40, 160]
    assert table.loc[40, 4] == pytest.approx(0.5) and table.loc[160, 4] == pytest.approx(0.3)
    assert table.loc[160, 64] == pytest.approx(0.9)
    written = plot_retention(results, params, tmp_path)
    assert {p.name for p in written} == {"retention.png", "retention.pdf"}
    # every test delay within the training range: nothing about retention to show
    within = results.drop(columns=["test_accuracy_by_delay.40", "test_accuracy_by_delay.160"])
    within["test_accuracy_by_delay.20"] = 1.0
    assert retention_table(within, params) is None and plot_retention(within, params, tmp_path / "x") == []


def test_retention_takes_the_training_range_from_the_runs_configs(tmp_path):
    """Collection passes the longest training delay read from the runs' configs (a preset that does not
    sweep ``task.max_delay`` has no such column)."""
    from neuromod.plotting.sweeps import retention_table

    results = pd.DataFrame(
        [
            {
                "run": "a",
                "status": "completed",
                "seed": 0,
                "test_accuracy_by_delay.10": 1.0,
                "test_accuracy_by_delay.80": 0.5,
            },
            {
                "run": "b",
                "status": "completed",
                "seed": 1,
                "test_accuracy_by_delay.10": 0.8,
                "test_accuracy_by_delay.80": 0.7,
            },
        ]
    )
    assert retention_table(results, ["seed"]) is None  # no training range known
    table, col, trained = retention_table(results, ["seed"], trained=20)
    assert trained == 20 and col == "_col" and table.loc[80, "all runs"] == pytest.approx(0.6)
