"""Faults a long sweep meets: a write that fails (full disk, read-only folder, file size limit) and a job that
was killed without a word (its summary still says ``running``) or that is still running elsewhere."""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from neuromod import io
from neuromod.api import run_config as run
from neuromod.runfolder.liveness import owner, staleness
from tests.conftest import FAST, ROOT, compose_config, multirun_command

#: Checkpoints at steps 2, 4 and 6; an evaluation (a metrics.csv row and a heartbeat) every step.
SHORT = [*FAST, "training.steps=6", "training.checkpoint_every=2", "analysis.figures=false"]
#: Long enough to be killed part-way (as in tests/test_reliability.py).
RESUMABLE = [
    *FAST,
    "training.steps=100",
    "training.eval_every=5",
    "training.checkpoint_every=7",
    "analysis.figures=false",
]
ENOSPC = os.strerror(errno.ENOSPC)


def _summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _main_py(folder: Path, overrides: list[str], limit: int | None = None, **kwargs) -> subprocess.Popen:
    """``python main.py`` with its run folder in ``folder``; ``limit``: the largest file it may write
    (RLIMIT_FSIZE: a larger write fails with EFBIG, for any user)."""

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    command = [sys.executable, "main.py", *overrides, f"hydra.run.dir={folder}"]
    environment = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=environment,
        text=True,
        preexec_fn=limit_file_size if limit else None,
        **kwargs,
    )


def _finish(process: subprocess.Popen) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=300)
    return process.returncode, stdout or "", stderr or ""


def _fail_writes(monkeypatch, function: str, name: str, after: int) -> dict[str, bytes]:
    """``io.<function>`` raises ENOSPC for the file ``name`` after ``after`` successful writes of it;
    returns the file's content after its last successful write."""
    original, calls, last = getattr(io, function), [], {}

    def failing(path, *args, **kwargs):
        if Path(path).name == name:
            calls.append(path)
            if len(calls) > after:
                raise OSError(errno.ENOSPC, ENOSPC)
            original(path, *args, **kwargs)
            last["bytes"] = Path(path).read_bytes()
            return
        original(path, *args, **kwargs)

    monkeypatch.setattr(io, function, failing)
    return last


@pytest.mark.parametrize(
    "function, name, after",
    [("save_torch", "checkpoint.pt", 1), ("write_csv", "metrics.csv", 3), ("save_npz", "trials.npz", 0)],
)
def test_a_full_disk_fails_the_run_naming_the_file_and_keeps_the_last_checkpoint(
    tmp_path, monkeypatch, function, name, after
):
    """ENOSPC while writing a result file: the run ends with one message naming the file and the reason,
    ``summary.json`` says ``failed`` with it, and the checkpoint of step 2 is intact (no temporary file)."""
    last = _fail_writes(monkeypatch, function, name, after)
    with pytest.raises(io.WriteError) as caught:
        run(compose_config(SHORT), output_dir=tmp_path)
    message = str(caught.value)
    step = 2 if name != "trials.npz" else 6
    assert message == (
        f"cannot write {tmp_path / name}: {ENOSPC}; the last good checkpoint (step {step}) and earlier "
        "result files are intact"
    )
    summary = _summary(tmp_path)
    assert summary["status"] == "failed" and summary["error"] == message and "traceback" not in summary
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["step"] == step
    if name == "checkpoint.pt":
        assert (tmp_path / name).read_bytes() == last["bytes"]
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".") and p.name != ".hydra"]


def test_when_the_summary_cannot_be_written_either_it_keeps_its_previous_state(tmp_path, monkeypatch):
    _fail_writes(monkeypatch, "write_json", "summary.json", 2)  # the start and the first heartbeat
    with pytest.raises(io.WriteError, match=rf"cannot write {tmp_path / 'summary.json'}: {ENOSPC}"):
        run(compose_config(SHORT), output_dir=tmp_path)
    summary = _summary(tmp_path)
    assert summary["status"] == "running" and summary["steps"] == 1 and summary["pid"] == os.getpid()


def _assert_checkpoint_write_failed(process: subprocess.Popen, folder: Path, reason: str) -> str:
    """The run ended with exit 4 and one line: the checkpoint could not be written for ``reason``, the
    step-7 checkpoint is intact (no temporary file left), summary.json says failed. Returns the line."""
    status, _, stderr = _finish(process)
    assert status == 4, stderr
    line = (
        f"Error: cannot write {folder / 'checkpoint.pt'}: {reason}; the last good checkpoint (step 7) and "
        "earlier result files are intact"
    )
    assert _lines(stderr) == [line]
    assert _summary(folder)["status"] == "failed"
    assert torch.load(folder / "checkpoint.pt", weights_only=False)["step"] == 7
    assert not list(folder.glob(".checkpoint.pt.*"))
    return line


def test_a_file_size_limit_exits_4_with_one_line_and_keeps_the_checkpoint(tmp_path):
    """A real failing write (RLIMIT_FSIZE: EFBIG): the step-7 checkpoint of a first run is kept when the
    continued run cannot write its larger checkpoint; exit status 4, one line, no traceback."""
    folder = tmp_path / "run"
    first = [*RESUMABLE, "training.steps=7", "architecture.hidden_size=8"]
    assert _finish(_main_py(folder, first, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))[0] == 0
    before = (folder / "checkpoint.pt").read_bytes()  # ~30 kB
    more = [*first, "training.steps=14", "training.resume=true", "skip_completed=false"]
    process = _main_py(folder, more, limit=16_000, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = _assert_checkpoint_write_failed(process, folder, os.strerror(errno.EFBIG))
    assert _summary(folder)["error"] == line.removeprefix("Error: ")
    assert (folder / "checkpoint.pt").read_bytes() == before


@pytest.fixture
def small_disk(tmp_path):
    """A real 64 kB file system (tmpfs; needs root and the right to mount, else the test is skipped)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)]
    mounted = subprocess.run(command, capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    yield disk
    subprocess.run(["umount", "--lazy", str(disk)], check=True)  # lazy: never left behind, even if busy


def test_a_full_disk_exits_4_with_one_line_and_keeps_the_checkpoint(small_disk):
    """A real full disk (ENOSPC): the step-7 checkpoint (~30 kB) fits, a second one beside it does not."""
    folder = small_disk / "run"
    overrides = [*RESUMABLE, "training.steps=14", "architecture.hidden_size=8"]
    process = _main_py(folder, overrides, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _assert_checkpoint_write_failed(process, folder, ENOSPC)


def test_a_job_that_cannot_write_fails_and_the_sweep_goes_on(tmp_path):
    """Under a 100 kB file size limit the wide job's checkpoint (~230 kB) cannot be written: that job is
    recorded as failed and the next one completes; the sweep exits 0."""
    sweep = tmp_path / "sweep"
    command = multirun_command(
        sweep, tmp_path, *FAST, "analysis.figures=false", "architecture.hidden_size=64,2"
    )

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300, preexec_fn=limit_file_size
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    failed, completed = _summary(sweep / "0"), _summary(sweep / "1")
    assert failed["status"] == "failed" and "cannot write" in failed["error"]
    assert "checkpoint.pt: File too large" in failed["error"]
    assert completed["status"] == "completed"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_exits_4_and_keeps_the_checkpoint(tmp_path):
    """The run folder turns read-only after the first checkpoint (as a file system remounted read-only)."""
    folder = tmp_path / "run"
    process = _main_py(folder, RESUMABLE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not (folder / "checkpoint.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    folder.chmod(0o555)
    try:
        status, _, stderr = _finish(process)
        before = torch.load(folder / "checkpoint.pt", weights_only=False)["step"]
    finally:
        folder.chmod(0o755)
    assert status == 4, stderr
    (line,) = _lines(stderr)
    assert line.startswith(f"Error: cannot write {folder}") and "Permission denied" in line
    assert f"the last good checkpoint (step {before})" in line
    assert _summary(folder)["status"] == "running"  # the summary could not be written either


def _start_and_kill(folder: Path) -> int:
    """Start RESUMABLE, kill -9 it after its first checkpoint; returns the killed process's pid."""
    process = _main_py(folder, RESUMABLE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (folder / "checkpoint.pt").exists() and time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return process.pid


def test_a_killed_run_is_stale_and_is_run_again_from_its_checkpoint(tmp_path):
    folder = tmp_path / "run"
    pid = _start_and_kill(folder)
    summary = _summary(folder)
    assert summary["status"] == "running", "the run ended before it could be killed"
    assert summary["pid"] == pid and summary["host"] == socket.gethostname()
    assert summary["started_at"] <= summary["updated_at"]
    assert staleness(summary) is not None
    last = torch.load(folder / "checkpoint.pt", weights_only=False)["step"]

    process = _main_py(
        folder, [*RESUMABLE, "training.resume=true"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    status, stdout, stderr = _finish(process)
    assert status == 0, stderr
    output = stdout + stderr
    assert f"pid {pid}) is stale (its process is gone" in output
    assert "running it again from its checkpoint" in output
    resumed = _summary(folder)
    assert resumed["status"] == "completed" and resumed["resumed_from_step"] == last
    assert resumed["steps"] == 100 and resumed["pid"] != pid and "is stale" in resumed["stale_attempt"]


def test_a_stale_run_without_resume_is_run_again_from_scratch(tmp_path):
    folder = tmp_path / "run"
    summary = {"status": "running", **owner(), "pid": 999_999_999}  # a process that cannot exist
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps(summary))
    summary = run(compose_config(SHORT), output_dir=folder)
    assert summary["status"] == "completed" and "resumed_from_step" not in summary
    assert "pid 999999999) is stale" in summary["stale_attempt"]


def _live_summary(folder: Path) -> bytes:
    """A summary.json claimed by this test process (alive, same host, fresh heartbeat); returns its bytes."""
    folder.mkdir(parents=True)
    text = json.dumps({"status": "running", "steps": 3, **owner()}).encode()
    (folder / "summary.json").write_bytes(text)
    (folder / "checkpoint.pt").write_bytes(b"someone else's checkpoint")
    return text


def test_a_run_still_alive_elsewhere_is_refused_and_its_folder_left_alone(tmp_path):
    folder = tmp_path / "run"
    before = _live_summary(folder)
    process = _main_py(folder, SHORT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    status, _, stderr = _finish(process)
    assert status == 2, stderr
    (line,) = _lines(stderr)
    assert line.startswith(
        f"Error: {folder} is still running (host {socket.gethostname()}, pid {os.getpid()}"
    )
    assert (folder / "summary.json").read_bytes() == before
    assert (folder / "checkpoint.pt").read_bytes() == b"someone else's checkpoint"


def test_a_sweep_job_still_alive_elsewhere_fails_and_the_sweep_goes_on(tmp_path):
    sweep = tmp_path / "sweep"
    before = _live_summary(sweep / "0")
    command = multirun_command(sweep, tmp_path, *SHORT, "seed=0,1")
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "is still running" in result.stderr
    assert (sweep / "0" / "summary.json").read_bytes() == before
    assert _summary(sweep / "1")["status"] == "completed"


def test_a_parallel_job_killed_stops_the_launch_with_one_line_and_the_relaunch_resumes_it(tmp_path):
    """SIGKILL on a job of a ``hydra/launcher=parallel`` sweep: joblib stops the whole launch; main.py says so
    in one line (exit 1, not the exit 2 of a bad command line) and the same launch again resumes the job."""
    pytest.importorskip(
        "hydra_plugins.hydra_joblib_launcher", reason="optional extra: pip install -e '.[sweeps]'"
    )
    sweep = tmp_path / "sweep"
    command = multirun_command(
        sweep,
        tmp_path,
        *RESUMABLE,
        "training.resume=true",
        "seed=0,1",
        "hydra/launcher=parallel",
        "hydra.launcher.n_jobs=2",
    )
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline, pid = time.monotonic() + 240, None
    while pid is None and time.monotonic() < deadline:
        assert process.poll() is None, "the sweep ended before a job could be killed"
        time.sleep(0.01)
        if (sweep / "0" / "checkpoint.pt").exists():
            pid = _summary(sweep / "0")["pid"]
    assert pid is not None and pid != process.pid
    os.kill(pid, signal.SIGKILL)
    status, _, stderr = _finish(process)
    assert status == 1, stderr
    (line,) = [line for line in _lines(stderr) if line.startswith("Error:")]
    assert line.startswith("Error: a job's process died and the launcher stopped the sweep")
    assert "training.resume=true" in line and "command line" not in line and "Traceback" not in stderr

    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    resumed = _summary(sweep / "0")
    assert resumed["status"] == "completed" and "is stale" in resumed["stale_attempt"]
    assert resumed["resumed_from_step"] >= 7
