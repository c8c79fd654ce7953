"""Sweeps through the real main.py: sweep-folder bookkeeping, launchers, and resuming a killed sweep."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from neuromod.api import collect_sweep as collect
from neuromod.callbacks import RecordSweepPath
from neuromod.results.sweep_paths import read_sweep_paths, record_sweep_path
from tests.conftest import CONFIG_DIR, FAST, ROOT

TINY = [*FAST, "analysis.figures=false", "task.max_delay=3", "architecture.n_neurons=4"]
MAIN = str(ROOT / "main.py")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["HYDRA_FULL_ERROR"] = "1"
    return env


def _wait_for(condition, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the sweep ended (status {proc.returncode}) before the condition held")
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.02)


def test_each_sweep_folder_is_recorded_once(tmp_path):
    paths = tmp_path / "multirun_paths.txt"
    a, b = tmp_path / "a", tmp_path / "b"
    assert record_sweep_path(paths, a)
    assert not record_sweep_path(paths, a)  # re-launched (resumed): not added again
    assert record_sweep_path(paths, b)
    assert read_sweep_paths(paths) == [str(a), str(b)]
    assert record_sweep_path(paths, a)  # resumed after another sweep: moves to the end, still once
    assert read_sweep_paths(paths) == [str(b), str(a)]
    paths.write_text(paths.read_text().rstrip("\n"))  # a hand-edited file without a final newline
    record_sweep_path(paths, tmp_path / "c")
    assert paths.read_text().splitlines() == [str(b), str(a), str(tmp_path / "c")]


def test_callback_resolves_a_custom_relative_sweep_dir(tmp_path):
    config = OmegaConf.create(
        {"hydra": {"runtime": {"cwd": str(tmp_path)}, "sweep": {"dir": "runs/../runs/x"}}}
    )
    callback = RecordSweepPath("bookkeeping/paths.txt")
    callback.on_multirun_start(config)
    callback.on_multirun_start(config)
    assert read_sweep_paths(tmp_path / "bookkeeping" / "paths.txt") == [str(tmp_path / "runs" / "x")]


@pytest.mark.slow
def test_killed_sweep_resumes_only_unfinished_jobs(tmp_path):
    """Kill a sweep while its third of four jobs runs; the re-launch (with joblib) trains only the rest."""
    sweep = tmp_path / "sweep"
    command = [sys.executable, MAIN, "--multirun", *TINY, "seed=0,1,2,3", f"hydra.sweep.dir={sweep}"]
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(
            command, cwd=tmp_path, env=_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            # The basic launcher runs the jobs one after another: job 2's folder appears once 0 and 1 ended.
            _wait_for(lambda: (sweep / "2").is_dir(), timeout=300, proc=first)
        finally:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()

    def completed(job: Path) -> bool:
        try:
            return json.loads((job / "summary.json").read_text())["status"] == "completed"
        except (OSError, ValueError, KeyError):
            return False

    jobs = [sweep / str(i) for i in range(4)]
    done_before = [j for j in jobs if completed(j)]
    assert sweep / "0" in done_before and sweep / "1" in done_before
    assert not completed(sweep / "3")
    before = {
        j: {
            name: ((j / name).read_bytes(), (j / name).stat().st_mtime_ns)
            for name in ("summary.json", "metrics.csv")
        }
        for j in done_before
    }

    # Re-launched with the parallel launcher where the sweeps extra is installed (job order is the same).
    parallel = importlib.util.find_spec("hydra_plugins") is not None and (
        importlib.util.find_spec("hydra_plugins.hydra_joblib_launcher") is not None
    )
    relaunch = [*command, *(["hydra/launcher=parallel", "hydra.launcher.n_jobs=2"] if parallel else [])]
    done = subprocess.run(relaunch, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    for job in jobs:
        assert completed(job), job
    for job, files in before.items():
        for name, (content, mtime) in files.items():
            assert (job / name).read_bytes() == content and (job / name).stat().st_mtime_ns == mtime, job
        assert "already holds a completed run: skipped" in (job / "main.log").read_text()
    for job in set(jobs) - set(before):
        assert "already holds a completed run" not in (job / "main.log").read_text()
        summary = json.loads((job / "summary.json").read_text())
        assert summary["steps"] == 2 and len((job / "metrics.csv").read_text().splitlines()) == 3
    # Launched twice into the same folder: recorded once.
    assert read_sweep_paths(tmp_path / "multirun_paths.txt") == [str(sweep)]


@pytest.mark.slow
def test_submitit_local_sweep_is_recorded_and_collected(tmp_path):
    """Jobs in other processes (submitit's local executor), a relative custom hydra.sweep.dir."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    command = [
        sys.executable,
        MAIN,
        "--multirun",
        *TINY,
        "seed=0,1",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=10",
        "hydra.sweep.dir=sweeps/submitit_test",
    ]
    done = subprocess.run(command, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    sweep = tmp_path / "sweeps" / "submitit_test"
    assert read_sweep_paths(tmp_path / "multirun_paths.txt") == [str(sweep)]
    assert (sweep / ".submitit").is_dir()  # submitit's own folder is not taken for a run
    result = collect(sweep, tmp_path / "collection", progress=False, plots=False)
    assert result.failed.empty
    assert sorted(result.results["seed"]) == [0, 1] and set(result.results["status"]) == {"completed"}
    assert result.params == ["seed"]


APP = """
import json, os
from pathlib import Path
import hydra

@hydra.main(version_base="1.3", config_path={config_dir!r}, config_name="config")
def main(cfg):
    import torch
    from hydra.core.hydra_config import HydraConfig

    out = Path(HydraConfig.get().runtime.output_dir)
    record = {{"torch_threads": torch.get_num_threads(), "seed": cfg.seed}}
    (out / "threads.json").write_text(json.dumps(record))

if __name__ == "__main__":
    main()
"""


@pytest.mark.slow
def test_parallel_preset_gives_each_job_one_thread(tmp_path):
    """hydra/launcher=parallel (joblib): jobs in worker processes, each limited to one torch thread."""
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    app = tmp_path / "app.py"
    app.write_text(APP.format(config_dir=CONFIG_DIR))
    sweep = tmp_path / "sweep"
    command = [sys.executable, str(app), "--multirun", "hydra/launcher=parallel", "seed=0,1"]
    proc = subprocess.run(
        [*command, "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads((sweep / str(i) / "threads.json").read_text()) for i in (0, 1)]
    assert [r["seed"] for r in records] == [0, 1]
    assert all(r["torch_threads"] == 1 for r in records), records
    launcher_multirun = OmegaConf.load(sweep / "multirun.yaml")
    assert launcher_multirun.hydra.launcher._target_.endswith("JoblibLauncher")
    assert read_sweep_paths(tmp_path / "multirun_paths.txt") == [str(sweep)]


def test_relaunch_with_other_settings_is_refused_and_keeps_the_results(tmp_path):
    """A completed run is reused only for the same settings: another value of a setting that changes the
    result is refused (exit 2, one line naming the key) and the old files stay as they were; a setting
    that only changes how the run executes (threads) still reuses it."""
    folder = tmp_path / "run"
    base = [sys.executable, MAIN, *TINY, f"hydra.run.dir={folder}"]
    first = subprocess.run(base, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    kept = {name: (folder / name).read_bytes() for name in ("summary.json", "metrics.csv", "checkpoint.pt")}

    changed = subprocess.run(
        [*base, "training.steps=3", "seed=5"], cwd=tmp_path, env=_env(), capture_output=True, text=True
    )
    assert changed.returncode == 2
    errors = [line for line in changed.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "training.steps: 2 -> 3" in errors[0] and "seed: 0 -> 5" in errors[0]
    assert "Traceback" not in changed.stderr
    for name, content in kept.items():
        assert (folder / name).read_bytes() == content, name

    same = subprocess.run([*base, "threads=2"], cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert same.returncode == 0, same.stderr[-2000:]
    assert "already holds a completed run: skipped" in (folder / "main.log").read_text()
    for name, content in kept.items():
        assert (folder / name).read_bytes() == content, name

    again = subprocess.run(
        [*base, "training.steps=3", "skip_completed=false"], cwd=tmp_path, env=_env(), capture_output=True
    )
    assert again.returncode == 0
    assert json.loads((folder / "summary.json").read_text())["steps"] == 3
