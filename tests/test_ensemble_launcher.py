"""``hydra/launcher=ensemble`` through the real main.py: a sweep whose jobs share an ensemble writes the run
folders the default launcher writes (to the tolerance of tests/test_ensemble.py), is collected to the same
table, skips completed jobs when launched again, records a diverging member, resumes a killed ensemble
from its members' checkpoints, and runs the jobs that cannot join an ensemble solo."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from neuromod.api import collect_sweep
from tests.conftest import ROOT, multirun_command
from tests.test_ensemble import ACCURACY_ATOL, LOSS_RTOL, _assert_same_rows, _cfg, _solo

#: Runs of a second or so: 20 steps, an evaluation every 5 on 64 trials.
TINY = [
    "training.steps=20",
    "training.eval_every=5",
    "training.batch_size=16",
    "training.eval_batch_size=64",
    "training.progress=false",
    "task.max_delay=3",
    "architecture.n_neurons=4",
    "analysis.dynamics=false",
    "analysis.figures=false",
    "threads=1",
]
ENSEMBLE = "hydra/launcher=ensemble"


def _sweep(
    tmp_path: Path, sweep: Path, *overrides: str, base: list[str] = TINY, timeout: int = 300
) -> subprocess.CompletedProcess:
    command = multirun_command(sweep, tmp_path, *base, *overrides)
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def _jobs(sweep: Path) -> list[Path]:
    return sorted((p for p in sweep.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def test_an_ensemble_sweep_writes_the_default_launchers_run_folders(tmp_path):
    grid = ["seed=0,1,2", "architecture.hidden_size=4,8"]
    basic, ensemble = tmp_path / "basic", tmp_path / "ensemble"
    _sweep(tmp_path, basic, *grid)
    done = _sweep(tmp_path, ensemble, *grid, ENSEMBLE)
    output = done.stdout + done.stderr
    assert "ensemble 1/2: 3 members train together (#0, #2, #4)" in output
    assert "ensemble 2/2: 3 members train together (#1, #3, #5)" in output
    assert len(_jobs(ensemble)) == 6
    for a, b in zip(_jobs(basic), _jobs(ensemble), strict=True):
        assert a.name == b.name
        solo, member = _summary(a), _summary(b)
        assert member["status"] == solo["status"] == "completed" and member["steps"] == solo["steps"] == 20
        assert member["config"] == solo["config"]
        assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
        for name in ("config.yaml", "overrides.yaml"):
            assert (a / ".hydra" / name).read_text() == (b / ".hydra" / name).read_text()
        rows = [pd.read_csv(folder / "metrics.csv").to_dict("records") for folder in (a, b)]
        _assert_same_rows(*rows)
        log = (b / "main.log").read_text()
        assert "step 20  train_loss" in log and f"-> {b}" in log
        others = [f"-> {c}" for c in _jobs(ensemble) if c != b]
        assert not any(other in log for other in others)  # its own records, not the other members'
    tables = [
        collect_sweep(sweep, tmp_path / f"collected_{sweep.name}", plots=False).results
        for sweep in (basic, ensemble)
    ]
    assert list(tables[0].columns) == list(tables[1].columns)
    assert set(tables[0].attrs.get("params", [])) == set(tables[1].attrs.get("params", []))
    keys = ["run", "seed", "architecture.hidden_size", "status", "steps"]
    assert tables[0][keys].equals(tables[1][keys])
    for column in ("eval_accuracy", "test_accuracy"):
        assert (tables[0][column] - tables[1][column]).abs().max() <= ACCURACY_ATOL, column
    for x, y in zip(tables[0]["test_loss"], tables[1]["test_loss"], strict=True):
        assert math.isclose(x, y, rel_tol=LOSS_RTOL)

    # launched again: every job is skipped as main.py skips it, its files untouched
    kept = {
        job: ((job / "summary.json").read_bytes(), (job / "summary.json").stat().st_mtime_ns)
        for job in _jobs(ensemble)
    }
    _sweep(tmp_path, ensemble, *grid, ENSEMBLE)
    for job, (content, mtime) in kept.items():
        assert (job / "summary.json").read_bytes() == content
        assert (job / "summary.json").stat().st_mtime_ns == mtime
        assert "already holds a completed run: skipped" in (job / "main.log").read_text()


def test_a_diverging_member_is_recorded_and_the_others_complete(tmp_path):
    sweep = tmp_path / "sweep"
    done = _sweep(tmp_path, sweep, "seed=0,1", "training.lr=0.01,1e30", ENSEMBLE)
    assert "ensemble 1/1: 4 members train together" in done.stdout + done.stderr
    statuses = {}
    for job in _jobs(sweep):
        summary = _summary(job)
        statuses[summary["config"]["training.lr"]] = statuses.get(summary["config"]["training.lr"], [])
        statuses[summary["config"]["training.lr"]].append(summary["status"])
        if summary["status"] == "diverged":
            assert "diverged at step" in summary["error"]
    assert statuses == {0.01: ["completed", "completed"], 1e30: ["diverged", "diverged"]}


def test_jobs_that_cannot_join_an_ensemble_run_solo(tmp_path):
    # one_neuron has no ensemble form; a group of one is smaller than min_members; both run solo, the
    # additive pair as one ensemble, in two worker processes
    sweep = tmp_path / "sweep"
    done = _sweep(
        tmp_path,
        sweep,
        "task=cue_go",  # (its shortest delay is 5)
        "task.max_delay=6",
        "architecture=additive,one_neuron",
        "seed=0,1",
        ENSEMBLE,
        "hydra.launcher.n_jobs=2",
        base=[o for o in TINY if not o.startswith(("task.max_delay=", "architecture.n_neurons="))],
    )
    output = done.stdout + done.stderr
    assert "ensemble 1/2: 2 members train together (#0, #1)" in output
    assert "ensemble 2/2: architecture._target_=" in output and "its 2 jobs run solo" in output
    for job in _jobs(sweep):
        assert _summary(job)["status"] == "completed"
        together = "members train together" in (job / "main.log").read_text()
        assert together == (int(job.name) < 2), job


def test_a_killed_ensemble_sweep_resumes_every_member_from_its_checkpoint(tmp_path):
    sweep = tmp_path / "sweep"
    overrides = [
        "training.steps=100",
        "training.checkpoint_every=7",
        "training.resume=true",
        "seed=0,1,2",
        ENSEMBLE,
    ]
    command = multirun_command(sweep, tmp_path, *TINY, *overrides)
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )

    def rows(job: Path) -> int:
        try:
            return len((job / "metrics.csv").read_text().splitlines()) - 1
        except OSError:
            return 0

    try:
        deadline = time.monotonic() + 240
        while not all(rows(sweep / str(k)) >= 3 for k in range(3)):  # step 15: a checkpoint at 14
            assert process.poll() is None, "the sweep ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.01)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    killed = [_summary(sweep / str(k)) for k in range(3)]
    assert all(s["status"] == "running" and s["pid"] == process.pid for s in killed)

    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    assert "ensemble 1/1: 3 members train together" in done.stdout + done.stderr  # resumed together
    for k in range(3):
        summary = _summary(sweep / str(k))
        assert summary["status"] == "completed" and summary["steps"] == 100
        assert summary["resumed_from_step"] >= 14 and "is stale" in summary["stale_attempt"]
        assert len(pd.read_csv(sweep / str(k) / "metrics.csv")) == 20


@pytest.mark.parametrize(
    ("option", "named"),
    [
        ("hydra.launcher.max_members=0", "hydra.launcher.max_members=0"),
        ("+hydra.launcher.colour=1", "colour"),
    ],
)
def test_a_bad_launcher_option_is_one_line_naming_it(tmp_path, option, named):
    command = multirun_command(tmp_path / "sweep", tmp_path, *TINY, "seed=0,1", ENSEMBLE, option)
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and named in lines[0], lines
    assert not (tmp_path / "sweep" / "0" / "summary.json").exists()


def test_python_main_without_the_launcher_is_unchanged():
    # the plugin is found (registered in the ConfigStore) and not the default
    done = subprocess.run(
        [sys.executable, "main.py", "--cfg", "hydra", "-p", "hydra.launcher"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "BasicLauncher" in done.stdout, done.stderr


def test_the_launcher_benchmark_prints_its_table(tmp_path):
    command = [
        sys.executable,
        "benchmarks/bench_sweep_launchers.py",
        "--launchers",
        "ensemble,basic",
        "--out",
        str(tmp_path),
        "--",
        *TINY,
        "seed=0,1",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "| launcher | wall (s) | exit | runs |" in done.stdout
    assert "| ensemble |" in done.stdout and "| basic |" in done.stdout and "2 completed" in done.stdout


def test_a_member_resumed_from_its_checkpoint_continues_in_an_ensemble_beside_a_fresh_one():
    # seed 0 trained 10 of its 20 steps, its state kept (a checkpoint's); then an ensemble of it, resumed,
    # and seed 1 from step 0: both as their uninterrupted solo runs (Adam at steps 10 and 0 in one update)
    from neuromod.ensemble import EnsembleTrainer
    from neuromod.runner.run import build_run

    first = build_run(_cfg("additive", "seed=0", "training.steps=10"))
    EnsembleTrainer([first, build_run(_cfg("additive", "seed=2", "training.steps=10"))]).fit()
    resumed = build_run(_cfg("additive", "seed=0"))
    resumed.trainer.load_state_dict(first.trainer.state_dict())
    fresh = build_run(_cfg("additive", "seed=1"))
    ensemble = EnsembleTrainer([resumed, fresh])
    ensemble.fit()
    assert resumed.trainer.step == fresh.trainer.step == 20
    _assert_same_rows(_solo(_cfg("additive", "seed=0"))[0], resumed.trainer.history)
    _assert_same_rows(_solo(_cfg("additive", "seed=1"))[0], fresh.trainer.history)
