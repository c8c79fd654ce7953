"""The Python API of the README: train into a run folder as main.py would, load it back (config, metrics,
the rebuilt network, trials, plots, analyses), run a sweep and read it into a DataFrame."""

from __future__ import annotations

import json
import re

import pytest

from neuromod.api import (
    CorruptRunError,
    NotARunError,
    SweepError,
    collect_sweep,
    load_run,
    load_sweep,
    run_config,
    sweep,
    train,
)
from neuromod.results.collect import CollectionError
from neuromod.runfolder import files
from neuromod.validation import ConfigError
from tests.conftest import FAST, compose_config

#: A run of a second or two with every file a completed run writes.
SMALL = [*FAST, "architecture.n_neurons=4", "task.max_delay=4", "training.steps=4", "training.eval_every=2"]
#: What main.py leaves in a completed run's folder (the figures apart).
RUN_FILES = {
    files.HYDRA_CONFIG,
    files.HYDRA_SETTINGS,
    files.HYDRA_OVERRIDES,
    "main.log",
    files.SUMMARY,
    files.METRICS,
    files.CHECKPOINT,
    files.TRIALS,
    files.PARAMS_TABLE,
    files.ANALYSIS,
}


def test_run_config_and_collect_sweep_as_the_readme_shows(tmp_path):
    sweep_dir = tmp_path / "sweep"
    for seed in (0, 1):
        cfg = compose_config([*FAST, f"seed={seed}", "architecture.n_neurons=4", "training.steps=3"])
        summary = run_config(cfg, sweep_dir / str(seed))
        assert summary["status"] == files.COMPLETED and 0.0 <= summary["final"]["test_accuracy"] <= 1.0
        # the standard observers drew the run's figures
        assert (sweep_dir / str(seed) / files.FIGURES / "learning_curves.png").stat().st_size > 1000
        # no .hydra/ here: the loaded run's config is the one its checkpoint carries
        assert load_run(sweep_dir / str(seed)).config.seed == seed
    collection = collect_sweep(sweep_dir, tmp_path / "collection", plots=False)
    assert sorted(collection.results["seed"]) == [0, 1]
    assert set(collection.results["status"]) == {"completed"}
    assert (tmp_path / "collection" / "collection.json").exists()
    assert [p.name for p in collection.files][-1] == "collection.json"


def test_train_writes_a_main_py_run_folder_and_the_rebuilt_network_reproduces_it(tmp_path):
    run = train([*SMALL, "analysis.dynamics=true", "analysis.n_trials=24"], tmp_path / "run")
    written = {str(p.relative_to(run.path)) for p in run.path.rglob("*") if p.is_file()}
    assert RUN_FILES <= written
    assert {"figures/activation_function.png", "figures/decoding.png"} <= written
    # Hydra's record of the job, as a launched job has it
    assert (run.path / files.HYDRA_OVERRIDES).read_text().splitlines()[0] == "- training.steps=2"
    hydra = (run.path / files.HYDRA_SETTINGS).read_text()
    assert f"output_dir: {run.path.absolute()}" in hydra and "architecture: additive" in hydra
    assert "step 4  train_loss" in (run.path / "main.log").read_text()

    assert run.status == files.COMPLETED and run.summary["steps"] == 4
    assert run.config.architecture.n_neurons == 4 and run.config.task.max_delay == 4
    assert list(run.metrics["step"]) == [2, 4]
    assert run.metrics["eval_accuracy"].iloc[-1] == pytest.approx(run.final["eval_accuracy"])
    # the network rebuilt from checkpoint.pt alone scores what the run scored on its test set
    assert sum(p.numel() for p in run.network().parameters()) == run.summary["n_parameters"]
    again = load_run(run.path).evaluate()
    for key in ("test_accuracy", "test_loss", "query_swap_accuracy", "cue_shuffle_accuracy"):
        assert again[key] == pytest.approx(run.final[key], abs=1e-6), key
    assert run.task().name == "time_person"

    trials = run.trials()
    n_trials, n_neurons = trials["params"].shape[1:3]
    assert trials["inputs"].shape[1] == n_trials and n_neurons == 4
    picture = run.plot_activation_function(trial=n_trials - 1, neurons=[0, 3])
    assert picture.path == run.path / files.FIGURES / f"activation_function_trial{n_trials - 1}.png"
    assert picture._repr_png_()[:4] == b"\x89PNG"
    assert run.plot_activation_params(folder=tmp_path / "mine").path.parent == tmp_path / "mine"
    assert run.plot_decoding().path.stat().st_size > 1000
    with pytest.raises(ValueError, match=rf"trial {n_trials}: .*trials.npz holds trials 0 to {n_trials - 1}"):
        run.plot_activation_function(trial=n_trials)
    with pytest.raises(ValueError, match="neurons \\[9\\]: the network has neurons 0 to 3"):
        run.plot_activation_params(neurons=[9])
    results = run.analyse(what=("decoding", "state_space"), n_trials=24, write=True)
    assert set(results["decoding"]["signals"]) >= {"rates", "parameters"}
    assert json.loads((run.path / files.ANALYSIS).read_text())["n_trials"] == 24


def test_train_without_an_output_dir_writes_below_outputs_and_reuses_a_completed_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = train([*SMALL, "training.steps=2"], observers=())
    assert re.fullmatch(r"outputs/\d{4}-\d\d-\d\d/\d\d-\d\d-\d\d", run.path.as_posix())
    assert not (run.path / files.FIGURES).exists()  # no observer drew
    started = run.summary["started_at"]
    # the same settings into the same folder: its completed run is the result (skip_completed)
    assert train([*SMALL, "training.steps=2"], run.path, observers=()).summary["started_at"] == started


def test_train_refuses_bad_settings_in_one_line_and_records_them(tmp_path):
    with pytest.raises(ConfigError, match=r"^training.stpes is not a key .*did you mean training.steps\?"):
        train([*SMALL, "training.stpes=3"], tmp_path / "typo")
    with pytest.raises(ConfigError, match=r"^architecture=foo is not an option of architecture"):
        train(["architecture=foo"], tmp_path / "option")
    with pytest.raises(ConfigError, match=r"^training.lr=-1"):
        train([*SMALL, "training.lr=-1"], tmp_path / "bad")
    failed = load_run(tmp_path / "bad")
    assert failed.status == files.FAILED and "training.lr" in failed.summary["error"]
    assert "Error: training.lr=-1" in (tmp_path / "bad" / "main.log").read_text()
    with pytest.raises(NotARunError, match=r"bad/checkpoint.pt is missing"):
        failed.network()
    with pytest.raises(NotARunError, match=r"bad/metrics.csv is missing: the run logged no evaluation"):
        failed.metrics  # noqa: B018


def test_load_run_names_the_file_of_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(NotARunError, match=r"nowhere is not a directory"):
        load_run(tmp_path / "nowhere")
    with pytest.raises(NotARunError, match=rf"{tmp_path} is not a neuromod run folder \(no summary.json\)"):
        load_run(tmp_path)
    (tmp_path / files.SUMMARY).write_text("{truncated")
    with pytest.raises(CorruptRunError, match=r"summary.json is unreadable"):
        load_run(tmp_path)
    run = train(SMALL, tmp_path / "run", observers=())
    (run.path / files.METRICS).write_text("")
    (run.path / files.CHECKPOINT).write_bytes(b"not a checkpoint")
    (run.path / files.TRIALS).write_bytes(b"PK\x03\x04truncated")
    again = load_run(run.path)
    with pytest.raises(CorruptRunError, match=r"run/metrics.csv is unreadable"):
        again.metrics  # noqa: B018
    with pytest.raises(NotARunError, match=r"run/checkpoint.pt cannot be loaded as a checkpoint"):
        again.evaluate()
    with pytest.raises(CorruptRunError, match=r"run/trials.npz is unreadable"):
        again.trials()


def test_load_sweep_has_one_row_per_job_with_the_swept_columns_and_writes_nothing(tmp_path):
    sweep_dir = tmp_path / "sweep"
    jobs = [(4, 0), (4, 1), (8, 0), (8, 1)]
    for number, (hidden, seed) in enumerate(jobs):
        overrides = [*SMALL, "training.steps=2", f"architecture.hidden_size={hidden}", f"seed={seed}"]
        train(overrides, sweep_dir / str(number), observers=())
    before = sorted(p for p in tmp_path.rglob("*"))
    table = load_sweep(sweep_dir)
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing written
    assert len(table) == 4 and table.attrs["params"] == ["architecture.hidden_size", "seed"]
    assert list(zip(table["architecture.hidden_size"], table["seed"], strict=True)) == jobs
    assert set(table["status"]) == {files.COMPLETED}
    assert table["test_accuracy"].between(0, 1).all()
    # asked to, it writes the collection's files
    assert len(load_sweep(sweep_dir, out_dir=tmp_path / "collection")) == 4
    assert (tmp_path / "collection" / "results.csv").is_file()
    (tmp_path / "empty").mkdir()
    with pytest.raises(CollectionError, match=r"empty holds no run folder"):
        load_sweep(tmp_path / "empty")
    with pytest.raises(CollectionError, match=r"sweep folder .*missing does not exist"):
        load_sweep(tmp_path / "missing")


@pytest.mark.slow
def test_sweep_runs_main_py_multirun_and_says_why_it_could_not(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # multirun_paths.txt is written where the sweep is launched from
    tiny = [*SMALL, "training.steps=2", "analysis.figures=false"]
    folder = sweep([*tiny, "seed=0,1"], "multirun/mine")
    assert folder.as_posix() == "multirun/mine"
    table = load_sweep(folder)
    assert list(table["seed"]) == [0, 1] and set(table["status"]) == {files.COMPLETED}
    assert str(folder.absolute()) in (tmp_path / "multirun_paths.txt").read_text()
    with pytest.raises(SweepError, match=r"status 2: Error: training.stpes is not a key"):
        sweep(["training.stpes=3,4"], "multirun/typo")
