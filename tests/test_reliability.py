"""Interrupted, killed and diverging runs: checkpoints, resume equivalence, divergence, atomic files."""

from __future__ import annotations

import json
import math
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from neuromod import io
from neuromod.api import run_config as run
from neuromod.training import Trainer
from neuromod.validation import ConfigError
from tests.conftest import FAST, ROOT, collect_results, compose_config, multirun_command

#: Long enough to be stopped part-way (a few seconds), small enough for a test. Checkpoints every 7 steps,
#: evaluations every 5: a checkpoint usually falls between two logged rows (the running mean of the
#: training loss must survive the restart too).
RESUMABLE = [
    *FAST,
    "training.steps=100",
    "training.eval_every=5",
    "training.checkpoint_every=7",
    "analysis.figures=false",
]


def _metrics(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "metrics.csv").drop(columns=["wall_time_s"])


def _assert_same_run(resumed: dict, reference: dict, resumed_dir: Path, reference_dir: Path) -> None:
    """Same final metrics, the same metrics.csv rows (wall times aside) and the same final weights."""
    assert resumed["status"] == reference["status"] == "completed"
    assert resumed["steps"] == reference["steps"]
    assert resumed["final"] == reference["final"]
    pd.testing.assert_frame_equal(_metrics(resumed_dir), _metrics(reference_dir))
    a = torch.load(resumed_dir / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(reference_dir / "checkpoint.pt", weights_only=False)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[dict, Path]:
    """An uninterrupted run of RESUMABLE, in this process."""
    folder = tmp_path_factory.mktemp("reference")
    return run(compose_config(RESUMABLE), output_dir=folder), folder


def _start(folder: Path, *overrides: str) -> subprocess.Popen:
    command = [sys.executable, "main.py", *RESUMABLE, *overrides, f"hydra.run.dir={folder}"]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert path.exists(), "the run wrote no checkpoint"


def test_ctrl_c_checkpoints_marks_interrupted_and_resume_matches(tmp_path, reference):
    """Ctrl-C (SIGINT) on the real command line: exit 130, ``interrupted`` with a checkpoint at the step it
    stopped at; ``training.resume=true`` then ends exactly like the uninterrupted run."""
    folder = tmp_path / "run"
    process = _start(folder)
    _wait_for(folder / "checkpoint.pt", process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "training.resume=true" in stderr
    stopped = _summary(folder)
    assert stopped["status"] == "interrupted"
    assert torch.load(folder / "checkpoint.pt", weights_only=False)["step"] == stopped["steps"] < 100
    logged = list(pd.read_csv(folder / "metrics.csv")["step"])
    assert logged == list(range(5, stopped["steps"] + 1, 5))

    resumed = run(compose_config([*RESUMABLE, "training.resume=true"]), output_dir=folder)
    assert resumed["resumed_from_step"] == stopped["steps"]
    _assert_same_run(resumed, reference[0], folder, reference[1])


def test_kill_9_then_resume_from_the_last_checkpoint_matches(tmp_path, reference):
    """``kill -9`` between checkpoints (no handler runs); resuming through the command line with the same
    run folder continues from the last checkpoint and ends exactly like the uninterrupted run."""
    folder = tmp_path / "run"
    process = _start(folder)
    _wait_for(folder / "checkpoint.pt", process)
    process.kill()  # SIGKILL
    process.wait()
    assert _summary(folder)["status"] == "running", "the run ended before it could be killed"
    last = torch.load(folder / "checkpoint.pt", weights_only=False)["step"]
    assert last % 7 == 0 and 7 <= last < 100

    command = [sys.executable, "main.py", *RESUMABLE, "training.resume=true", f"hydra.run.dir={folder}"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    resumed = _summary(folder)
    assert resumed["resumed_from_step"] == last
    _assert_same_run(resumed, reference[0], folder, reference[1])


def _poison_at(monkeypatch, step: int) -> None:
    """Make the weights NaN right after update ``step`` (a deterministic divergence)."""
    original = Trainer.train_step

    def train_step(self):
        loss = original(self)
        if self.step == step:
            with torch.no_grad():
                next(self.model.parameters()).fill_(float("nan"))
        return loss

    monkeypatch.setattr(Trainer, "train_step", train_step)


@pytest.fixture(params=["checked_every_step", "checked_at_sync_points"])
def loss_checks(request, monkeypatch):
    """Both ways of watching the training loss: read on the host every step (CPU), or kept on the device
    and read at evaluations and checkpoints (accelerators; forced here on the CPU)."""
    if request.param == "checked_at_sync_points":
        monkeypatch.setattr(Trainer, "_checks_every_step", lambda self, loss: False)
    return request.param


def _nan_loss_at(monkeypatch, step: int) -> None:
    """Make the training loss NaN at update ``step``."""
    import neuromod.training.loop as loop

    original, calls = loop.compute_loss, []

    def compute_loss(outputs, *args, **kwargs):
        loss = original(outputs, *args, **kwargs)
        if outputs.requires_grad:  # a training step, not an evaluation
            calls.append(1)
            if len(calls) == step:
                loss = loss * float("nan")
        return loss

    monkeypatch.setattr(loop, "compute_loss", compute_loss)


@pytest.mark.parametrize("broken", ["weights", "loss"])
@pytest.mark.parametrize("eval_every", [1, 10], ids=["found_by_evaluation", "found_by_checkpoint"])
def test_diverged_run_is_recorded_and_keeps_the_last_good_checkpoint(
    tmp_path, monkeypatch, loss_checks, eval_every, broken
):
    """NaN weights after update 3, or a NaN training loss at update 3: the run stops as ``diverged`` at
    step 3; the checkpoint of step 2 is kept (non-finite weights are never written), whether an
    evaluation or the checkpoint notices first, and however the training loss is watched."""
    if broken == "weights":
        _poison_at(monkeypatch, 3)
    else:
        _nan_loss_at(monkeypatch, 3)
    overrides = [
        *FAST,
        "training.steps=6",
        f"training.eval_every={eval_every}",
        "training.checkpoint_every=1",
    ]
    summary = run(compose_config(overrides), output_dir=tmp_path)
    assert summary["status"] == "diverged" == _summary(tmp_path)["status"]
    assert summary["diverged_step"] == 3 and summary["last_good_checkpoint_step"] == 2
    assert "diverged at step 3" in summary["error"]
    if broken == "loss":
        assert "training loss" in summary["error"]
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert state["step"] == 2
    assert all(torch.isfinite(value).all() for value in state["model"].values())
    assert not (tmp_path / "trials.npz").exists()  # nothing from the diverged weights passes for a result


def test_losses_read_at_sync_points_log_the_same_metrics(tmp_path, monkeypatch):
    overrides = [*FAST, "training.steps=12", "training.eval_every=4", "training.checkpoint_every=5"]
    run(compose_config(overrides), output_dir=tmp_path / "every_step")
    monkeypatch.setattr(Trainer, "_checks_every_step", lambda self, loss: False)
    run(compose_config(overrides), output_dir=tmp_path / "deferred")
    every_step, deferred = _metrics(tmp_path / "every_step"), _metrics(tmp_path / "deferred")
    assert len(every_step) == 3
    pd.testing.assert_frame_equal(every_step, deferred)


def test_a_diverging_single_run_exits_3_with_one_line(tmp_path):
    """A huge learning rate (1e30) makes any architecture diverge at its first update."""
    command = [
        sys.executable,
        "main.py",
        *FAST,
        "analysis.figures=false",
        "training.lr=1e30",
        f"hydra.run.dir={tmp_path}",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 3
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "diverged at step 1" in errors[0], result.stderr
    assert _summary(tmp_path)["status"] == "diverged"


def test_a_sweep_with_a_diverging_job_completes_the_others(tmp_path):
    """The sweep goes on past a diverging job; collecting it (with a corrupt and a foreign folder added)
    lists every bad folder with its reason."""
    sweep = tmp_path / "sweep"
    command = multirun_command(sweep, tmp_path, *FAST, "analysis.figures=false", "training.lr=1e30,0.01")
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    jobs = [_summary(sweep / job) for job in ("0", "1")]
    assert {job["config"]["training.lr"]: job["status"] for job in jobs} == {
        1e30: "diverged",
        0.01: "completed",
    }

    # The morning after: that sweep plus a truncated summary and a stray folder, through the command lines
    # that read sweeps and runs. Each bad folder is listed with its reason; nothing is fatal.
    shutil.copytree(sweep / "1", sweep / "2")
    text = (sweep / "2" / "summary.json").read_text()
    (sweep / "2" / "summary.json").write_text(text[: len(text) // 2])
    (sweep / "notes").mkdir()
    (sweep / "notes" / "todo.txt").write_text("not a run")
    result = collect_results(tmp_path, f"dir={sweep}", "plots=false", "progress=false")
    assert result.returncode == 0, result.stderr[-2000:]
    (out,) = (tmp_path / "collection_outputs").glob("*/*")
    failed = pd.read_csv(out / "failed_runs.csv", dtype={"run": str}).set_index("run")
    assert set(failed.index) == {"0", "2", "notes"}
    assert failed.loc["0", "status"] == "diverged" and "diverged at step 1" in failed.loc["0", "reason"]
    assert "summary.json unreadable" in failed.loc["2", "reason"]
    assert "not a run folder" in failed.loc["notes", "reason"]
    results = pd.read_csv(out / "results.csv", dtype={"run": str}).set_index("run")
    assert results.loc["1", "status"] == "completed"

    replot = [sys.executable, "-m", "neuromod.plot", str(sweep / "notes")]
    result = subprocess.run(replot, cwd=ROOT, capture_output=True, text=True, timeout=300)
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(errors) == 1 and "Traceback" not in result.stderr, result.stderr


def test_resume_with_a_checkpoint_that_does_not_fit_is_one_clear_error(tmp_path):
    run(compose_config([*FAST, "analysis.figures=false"]), output_dir=tmp_path)
    wider = [*FAST, "architecture.hidden_size=16", "training.resume=true", "skip_completed=false"]
    with pytest.raises(ConfigError, match=r"training.resume=true: checkpoint .* cannot be used"):
        run(compose_config(wider), output_dir=tmp_path)


def test_resume_without_a_checkpoint_starts_from_scratch(tmp_path):
    summary = run(compose_config([*FAST, "analysis.figures=false", "training.resume=true"]), tmp_path)
    assert summary["status"] == "completed" and "resumed_from_step" not in summary


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "summary.json"
    io.write_json(target, {"status": "completed", "value": 1.0})

    def half_then_crash(handle):
        handle.write(b'{"status": "runn')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        io._atomic(target, half_then_crash)
    assert json.loads(target.read_text()) == {"status": "completed", "value": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temporary file left behind


def test_json_has_no_nan():
    """JSON has no NaN: a non-finite metric is written as null, readable by any JSON parser."""
    text = json.dumps(io._jsonable({"a": math.nan, "b": [math.inf, 1.0], "c": torch.tensor(2.0)}))
    assert json.loads(text) == {"a": None, "b": [None, 1.0], "c": 2.0}
