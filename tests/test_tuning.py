"""Hyperparameter studies: trials.csv, best_params.yaml and the figures from the job folders; with the
``tune`` extra installed, real Optuna studies through main.py (divergence, sampler seed, re-running the best).
"""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from omegaconf import OmegaConf

from neuromod import io
from neuromod import study as study_cli
from neuromod.plotting.study import draw_study
from neuromod.results import tuning
from tests.conftest import FAST, ROOT, compose_config

OBJECTIVE = {"metric": "eval_accuracy", "direction": "maximize", "failed_value": None}


def _fake_job(folder, num, overrides, summary, choices=None):
    """A job folder as Hydra and run() leave it (config.yaml composed from the same overrides)."""
    hydra_dir = folder / ".hydra"
    hydra_dir.mkdir(parents=True)
    (hydra_dir / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    choices = choices or {
        "architecture": "additive",
        "af": "gain",
        "task": "time_person",
        "training": "default",
    }
    hydra_node = {"job": {"num": num}, "runtime": {"choices": {**choices, "hydra/sweeper": "basic"}}}
    (hydra_dir / "hydra.yaml").write_text(yaml.safe_dump({"hydra": hydra_node}))
    OmegaConf.save(
        compose_config([o for o in overrides if not o.startswith("hydra")]), hydra_dir / "config.yaml"
    )
    if summary is not None:
        io.write_json(folder / "summary.json", summary)


@pytest.fixture
def fake_sweep(tmp_path):
    """Four trials: two completed, one diverged, one that died before writing its summary."""
    sweep = tmp_path / "sweep"
    done = {"status": "completed", "final": {"eval_accuracy": 0.5, "eval_loss": 1.1, "chance_accuracy": 0.25}}
    better = {"status": "completed", "final": {"eval_accuracy": 0.75, "eval_loss": 0.7}}
    diverged = {"status": "diverged", "error": "training diverged at step 3", "final": {"eval_accuracy": 0.9}}
    # Folder names need not be job numbers (a custom hydra.sweep.subdir): the order comes from hydra.yaml.
    _fake_job(
        sweep / "b",
        1,
        ["training.lr=0.01", "af=learn_all_params", "architecture.hidden_size=16"],
        better,
        choices={"architecture": "additive", "af": "learn_all_params"},
    )
    _fake_job(sweep / "a", 0, ["training.lr=0.001", "af=gain", "architecture.hidden_size=8"], done)
    _fake_job(sweep / "c", 2, ["training.lr=1e+30", "af=gain", "architecture.hidden_size=8"], diverged)
    _fake_job(sweep / "d", 3, ["training.lr=0.003", "af=gain", "architecture.hidden_size=32"], None)
    return sweep


KEYS = ["training.lr", "af", "architecture.hidden_size"]


def test_trials_csv_lists_every_trial_with_its_status_and_value(fake_sweep):
    result = tuning.write_study_results(fake_sweep, KEYS, OBJECTIVE, draw=draw_study)
    trials = pd.read_csv(fake_sweep / "trials.csv")
    assert list(trials["trial"]) == [0, 1, 2, 3]
    assert list(trials["status"]) == ["completed", "completed", "diverged", "failed"]
    # What main.py returned: the metric, or the worst value for a run that did not complete (even if
    # its summary carries a metric from before it diverged).
    assert list(trials["value"][:2]) == [0.5, 0.75]
    assert trials["value"][2] == trials["value"][3] == -math.inf
    assert list(trials["training.lr"]) == [0.001, 0.01, 1e30, 0.003]
    assert list(trials["af"]) == ["gain", "learn_all_params", "gain", "gain"]
    assert list(trials["architecture.hidden_size"]) == [8, 16, 8, 32]
    assert "diverged at step 3" in trials["error"][2] and "no summary.json" in trials["error"][3]
    assert result["best"]["trial"] == 1
    for name in ("optimization_history.png", "parameter_slices.png"):
        assert (fake_sweep / name).stat().st_size > 5000, name


def test_minimised_objective_picks_the_lowest_loss(fake_sweep):
    objective = {"metric": "eval_loss", "direction": "minimize", "failed_value": 1e6}
    result = tuning.write_study_results(fake_sweep, KEYS, objective, draw=None)
    trials = result["trials"]
    assert list(trials["value"]) == [1.1, 0.7, 1e6, 1e6]
    assert result["best"]["trial"] == 1


def test_best_params_yaml_composes_back_to_the_best_trial(fake_sweep, tmp_path):
    tuning.write_study_results(fake_sweep, KEYS, OBJECTIVE, draw=None)
    text = (fake_sweep / "best_params.yaml").read_text()
    assert text.startswith("# @package _global_")
    assert "training.lr=0.01" in text and "af=learn_all_params" in text  # the override line
    config_dir = tmp_path / "extra_configs" / "experiment"
    config_dir.mkdir(parents=True)
    (config_dir / "tuned.yaml").write_text(text)
    searchpath = f"hydra.searchpath=[file://{config_dir.parent}]"
    cfg = compose_config(["experiment=tuned", searchpath])
    expected = compose_config(["training.lr=0.01", "af=learn_all_params", "architecture.hidden_size=16"])
    assert OmegaConf.to_container(cfg) == OmegaConf.to_container(expected)
    # Command-line overrides still win over the file (e.g. a longer training of the best setting).
    assert compose_config(["experiment=tuned", searchpath, "training.steps=7"]).training.steps == 7


def test_no_completed_trial_means_no_best(tmp_path):
    sweep = tmp_path / "sweep"
    _fake_job(sweep / "0", 0, ["training.lr=1e+30"], {"status": "diverged"})
    result = tuning.write_study_results(sweep, ["training.lr"], OBJECTIVE, draw=draw_study)
    assert result["best"] is None and not (sweep / "best_params.yaml").exists()
    assert len(pd.read_csv(sweep / "trials.csv")) == 1


def test_searched_keys_come_from_sweeper_params_and_command_line():
    config = OmegaConf.create(
        {
            "hydra": {
                "sweeper": {"params": {"training.lr": "tag(log, interval(1e-4, 1e-2))", "seed": "0"}},
                "overrides": {"task": ["af=choice(gain,geadah)", "training.steps=5", "experiment=x"]},
            }
        }
    )
    assert tuning.searched_keys(config) == ["training.lr", "af"]


def test_command_line_rebuilds_results_of_a_sweep_folder(fake_sweep):
    assert study_cli.main([str(fake_sweep), "--no-figures"]) == 0
    trials = pd.read_csv(fake_sweep / "trials.csv")
    # Without the study's config, the searched keys are the overrides that vary between jobs.
    assert set(KEYS) <= set(trials.columns) and len(trials) == 4
    assert study_cli.main([str(fake_sweep.parent / "empty")]) == 2


# --------------------------------------------------------------------------- real studies (tune extra)
TRIAL = [o for o in FAST if not o.startswith("training.steps")] + [
    "training.steps=3",
    "analysis.figures=false",
]
N_TRIALS = 4


def _study(sweep_dir, cwd, seed, extra=()):
    """Run `main.py -m experiment=tune_time_person` with tiny trials; lr 1e30 diverges at once."""
    command = [
        sys.executable, str(ROOT / "main.py"), "-m", "experiment=tune_time_person", *TRIAL,
        "training.lr=choice(0.01,1e30)", f"hydra.sweeper.n_trials={N_TRIALS}",
        "hydra.sweeper.sampler.n_startup_trials=2", f"hydra.sweeper.sampler.seed={seed}",
        f"hydra.sweep.dir={sweep_dir}", *extra,
    ]  # fmt: skip
    # Launched from cwd so that multirun_paths.txt lands there, not in the repository.
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return pd.read_csv(sweep_dir / "trials.csv")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    pytest.importorskip("optuna", reason="the tune extra is not installed")
    root = tmp_path_factory.mktemp("study")
    return root, _study(root / "sweep", root, seed=0)


@pytest.mark.slow
def test_a_diverging_trial_does_not_end_the_study(study):
    root, trials = study
    assert len(trials) == N_TRIALS and list(trials["trial"]) == list(range(N_TRIALS))
    diverged = trials[trials["status"] == "diverged"]
    assert len(diverged) >= 1 and (diverged["training.lr"] == 1e30).all()
    assert (diverged["value"] == -math.inf).all()
    assert diverged["trial"].min() < N_TRIALS - 1  # trials ran after it
    completed = trials[trials["status"] == "completed"]
    assert len(completed) >= 1 and (completed["training.lr"] == 0.01).all()
    # The sweeper's own record agrees with trials.csv on the best value.
    best = yaml.safe_load((root / "sweep" / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(completed["value"].max())
    assert (root / "sweep" / "optimization_history.png").stat().st_size > 5000
    assert (root / "multirun_paths.txt").read_text().strip() == str(root / "sweep")


@pytest.mark.slow
def test_same_sampler_seed_gives_the_same_trials(study):
    root, first = study
    again = _study(root / "again", root, seed=0)
    columns = ["training.lr", "af", "af.init.g", "status", "value"]
    pd.testing.assert_frame_equal(first[columns], again[columns])
    assert first["af.init.g"].nunique() == N_TRIALS  # really sampled, not a constant


@pytest.mark.slow
def test_collect_results_reads_a_tuning_sweep(study, tmp_path):
    from neuromod.api import collect_sweep as collect

    root, trials = study
    found = collect(root / "sweep", tmp_path / "collection", progress=False, plots=False)
    assert len(found.results) == N_TRIALS  # the tuning files beside the trial folders are not runs
    assert {"training.lr", "af.init.g"} <= set(found.params)
    assert sorted(found.failed["status"]) == sorted(trials.loc[trials["status"] != "completed", "status"])


@pytest.mark.slow
def test_rerunning_the_best_trial_reproduces_its_metric(study, tmp_path):
    root, trials = study
    best_file = root / "sweep" / "best_params.yaml"
    best = trials.loc[trials["value"].idxmax()]
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "tuned.yaml").write_text(best_file.read_text())
    command = [sys.executable, str(ROOT / "main.py"), "--config-dir", str(tmp_path), "experiment=tuned",
               f"hydra.run.dir={tmp_path / 'rerun'}"]  # fmt: skip
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "rerun" / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["final"]["eval_accuracy"] == best["eval_accuracy"]
    assert summary["final"]["eval_loss"] == pytest.approx(best["eval_loss"], rel=1e-6)
    # The override line in the header composes the same configuration.
    line = next(x for x in best_file.read_text().splitlines() if x.startswith("#   python main.py "))
    from_line = compose_config(shlex.split(line.removeprefix("#   python main.py ")))
    from_file = compose_config(["experiment=tuned", f"hydra.searchpath=[file://{tmp_path}]"])
    assert OmegaConf.to_container(from_line) == OmegaConf.to_container(from_file)


@pytest.mark.slow
def test_failed_trials_get_the_failed_value_in_an_in_memory_study(tmp_path):
    """A trial whose run fails (a negative learning rate is refused before training) is a result worth
    ``objective.failed_value`` that the sampler sees; the study kept in memory leaves no database."""
    pytest.importorskip("optuna", reason="the tune extra is not installed")
    sweep = tmp_path / "sweep"
    trials = _study(
        sweep, tmp_path, seed=0,
        extra=["hydra.sweeper.params=null", "training.lr=choice(0.01,-1.0)", "hydra.sweeper.storage=null",
               "objective.failed_value=-1"],
    )  # fmt: skip
    failed = trials[trials["status"] == "failed"]
    assert len(failed) >= 1 and (failed["training.lr"] == -1.0).all() and (failed["value"] == -1.0).all()
    assert failed["error"].str.contains("training.lr").all()
    completed = trials[trials["status"] == "completed"]
    assert len(completed) >= 1 and (completed["value"] == completed["eval_accuracy"]).all()
    assert list(trials.columns[3:4]) == ["training.lr"]  # the only searched key (params=null)
    record = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert record["complete_trials"] == N_TRIALS  # failed runs returned a number: results, not crashes
    assert record["best_value"] == pytest.approx(completed["value"].max())
    assert not (sweep / "study.db").exists()
