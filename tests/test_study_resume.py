"""Resumable tuning studies (``hydra/sweeper=study``): a study killed with SIGKILL and launched again ends
with its configured number of completed trials, each listed once; parallel trials leave the storage to the
sweeper process alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from tests.conftest import FAST, ROOT

optuna = pytest.importorskip("optuna", reason="the tune extra is not installed")

TRIAL = [o for o in FAST if not o.startswith(("training.steps", "training.eval_every"))] + [
    "training.steps=30",
    "training.eval_every=10",
    "analysis.figures=false",
]


def _command(sweep, n_trials, *extra, trial=TRIAL):
    return [
        sys.executable, str(ROOT / "main.py"), "-m", "experiment=tune_time_person", *trial,
        f"hydra.sweeper.n_trials={n_trials}", "hydra.sweeper.sampler.n_startup_trials=3",
        f"hydra.sweep.dir={sweep}", *extra,
    ]  # fmt: skip


def _status(run_dir):
    try:
        return json.loads((run_dir / "summary.json").read_text()).get("status")
    except (OSError, ValueError):
        return None


def _load(sweep):
    return optuna.load_study(study_name="tune_time_person", storage=f"sqlite:///{sweep / 'study.db'}")


@pytest.mark.slow
def test_a_study_killed_mid_way_continues_to_its_total_when_launched_again(tmp_path):
    sweep = tmp_path / "sweep"
    command = _command(sweep, 8)
    first = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    # kill -9 while the fourth trial trains (three complete)
    while not (_status(sweep / "2") == "completed" and _status(sweep / "3") == "running"):
        assert first.poll() is None and time.time() < deadline, "the study ended before it could be killed"
        time.sleep(0.02)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    states = [trial.state for trial in _load(sweep).trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 3
    assert states.count(optuna.trial.TrialState.RUNNING) == 1

    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "3 of 8 trials complete, 5 to run" in done.stdout

    study = _load(sweep)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(complete) == 8 and [t.number for t in failed] == [3]
    # the trial lost in flight is proposed again (next number, same parameters)
    assert study.trials[4].params == failed[0].params
    trials = pd.read_csv(sweep / "trials.csv")
    finished = trials[trials["status"] == "completed"]
    # each completed trial once, in the folder numbered by its trial, with the value the sampler saw
    assert sorted(finished["trial"]) == sorted(t.number for t in complete)
    assert finished["trial"].is_unique and len(finished) == 8
    by_number = {t.number: t.value for t in complete}
    assert all(row.value == pytest.approx(by_number[row.trial]) for row in finished.itertuples())
    assert trials.set_index("trial").loc[3, "status"] == "stale"  # the killed trial's folder, as left

    # launched once more, the complete study runs nothing
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "8 of 8 trials complete, 0 to run" in again.stdout
    assert len(_load(sweep).trials) == 9


AUDIT = """
import os, sys
_log = os.environ.get("NEUROMOD_SQLITE_AUDIT")
if _log:
    def _hook(event, args):
        if event == "sqlite3.connect":
            with open(_log, "a") as handle:
                handle.write(f"{os.getpid()} {args[0]}\\n")
    sys.addaudithook(_hook)
"""


@pytest.mark.slow
def test_parallel_trials_leave_the_storage_to_the_sweeper_process(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="the sweeps extra is not installed")
    # Every Python process of the study (the sweeper, joblib's workers) logs the SQLite files it opens.
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(AUDIT)
    audit = tmp_path / "sqlite_opened.txt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hooks), str(ROOT)])}
    env["NEUROMOD_SQLITE_AUDIT"] = str(audit)
    sweep = tmp_path / "sweep"
    parallel = ["hydra/launcher=parallel", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2"]
    command = _command(sweep, 4, *parallel, trial=[*FAST, "analysis.figures=false"])
    launch = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, stderr = launch.communicate(timeout=300)
    assert launch.returncode == 0, stderr.decode()[-3000:]
    study = _load(sweep)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 4
    openers = {line.split()[0] for line in audit.read_text().splitlines() if "study.db" in line}
    assert openers == {str(launch.pid)}
    job_pids = {json.loads((sweep / str(n) / "summary.json").read_text())["pid"] for n in range(4)}
    assert len(job_pids) >= 2 and launch.pid not in job_pids  # the trials ran in other processes


def test_prepare_study_fails_and_requeues_lost_trials_and_refuses_a_live_owner():
    from hydra_plugins.neuromod_study.study_sweeper import OWNER_ATTR, StudyInUse, prepare_study

    study = optuna.create_study(direction="maximize")
    finished, lost = study.ask(), study.ask()
    for trial in (finished, lost):
        trial.suggest_float("x", 0.0, 1.0)
    study.tell(finished, 1.0)
    assert prepare_study(study) == (1, 2)  # trial 1 was running: failed, enqueued as trial 2
    states = [t.state for t in study.get_trials()]
    TrialState = optuna.trial.TrialState
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.WAITING]
    assert study.trials[2].system_attrs["fixed_params"] == study.trials[1].params

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket

        study.set_user_attr(OWNER_ATTR, {"host": socket.gethostname(), "pid": sleeper.pid})
        with pytest.raises(StudyInUse, match=str(sleeper.pid)):
            prepare_study(study)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert prepare_study(study)[0] == 1  # its owner gone, the study continues


def test_a_continued_study_keeps_its_direction():
    from hydra_plugins.neuromod_study.study_sweeper import check_directions

    study = optuna.create_study(study_name="s", direction="maximize")
    check_directions(study, ["maximize"])
    with pytest.raises(ValueError, match="created to maximize, but this launch asks to minimize"):
        check_directions(study, ["minimize"])
