"""Soak test: a 50-job parallel sweep meets the faults of a long night, and is re-launched until it is done.

Not in the default run (``-m 'not soak'`` in pyproject.toml); run it with
``pytest -m soak tests/test_soak.py`` (a few minutes on 2 cores). One job diverges (``training.lr=1e30``),
one job's folder is a 64 kB tmpfs (a full disk: needs root and the right to mount, else the test is
skipped), and a few jobs are killed with SIGKILL while they train. The same command is launched again
(``training.resume=true``) until every job is completed, diverged or failed; the collection must then list
every job once with the right status, and no completed job may have been trained twice.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import FAST, ROOT, collect_results, multirun_command

JOBS = 50
#: The job whose learning rate makes it diverge at its first update, and the job whose folder is a full disk.
DIVERGING, FULL_DISK = 17, 33
#: Launches in which one running job is killed (a killed worker ends that launch: see docs/reliability.md).
KILLS = 3
MAX_LAUNCHES = KILLS + 3
FINAL = {"completed", "diverged", "failed"}

#: A few seconds a job; a checkpoint (~30 kB with hidden_size=8) every 5 steps: the full disk's second
#: checkpoint does not fit beside its first.
OVERRIDES = [
    *FAST,
    "training.steps=40",
    "training.eval_every=5",
    "training.checkpoint_every=5",
    "analysis.figures=false",
    "training.resume=true",
    "hydra/launcher=parallel",
    "hydra.launcher.n_jobs=2",
]


def _learning_rates() -> str:
    rates = [f"{0.001 + 0.0001 * i:.4f}" for i in range(JOBS)]
    rates[DIVERGING] = "1e30"
    return ",".join(rates)


def _summaries(sweep: Path) -> dict[int, dict]:
    found = {}
    for path in sweep.glob("*/summary.json"):
        try:
            found[int(path.parent.name)] = json.loads(path.read_text())
        except (ValueError, OSError):  # being replaced, or not a job's folder
            continue
    return found


def _ancestors(pid: int) -> set[int]:
    seen = set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            break
        pid = int(fields[1])
    return seen


def _kill_one_running_job(sweep: Path, launcher: subprocess.Popen, rng: random.Random) -> int | None:
    """SIGKILL a job that is training now (its summary says running, with a checkpoint) and whose pid is
    alive and a worker of this launch; returns the job's number."""
    running = [
        (job, s["pid"])
        for job, s in _summaries(sweep).items()
        if s.get("status") == "running"
        and s.get("host") == socket.gethostname()
        and s.get("steps", 0) >= 10  # the checkpoint of step 5 is written: the job will resume from it
        and job not in (DIVERGING, FULL_DISK)
    ]
    rng.shuffle(running)
    for job, pid in running:
        if pid != launcher.pid and launcher.pid in _ancestors(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:  # ended a moment ago
                continue
            return job
    return None


def _launch(
    sweep: Path, tmp_path: Path, number: int, kill: bool, rng: random.Random
) -> tuple[int, int | None, str]:
    command = multirun_command(sweep, tmp_path, *OVERRIDES, f"training.lr={_learning_rates()}")
    log = tmp_path / f"launch_{number}.log"
    with log.open("w") as out:
        launcher = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        killed, completed_at_start = (
            None,
            sum(s.get("status") == "completed" for s in _summaries(sweep).values()),
        )
        # kill once a random number of further jobs have completed
        threshold = completed_at_start + rng.randint(2, 20)
        deadline = time.monotonic() + 400
        while launcher.poll() is None:
            assert time.monotonic() < deadline, "a launch took more than 400 s"
            time.sleep(0.1)
            if kill and killed is None:
                done = sum(s.get("status") == "completed" for s in _summaries(sweep).values())
                if done >= threshold:
                    killed = _kill_one_running_job(sweep, launcher, rng)
    return launcher.returncode, killed, log.read_text()


@pytest.mark.soak
def test_a_long_sweep_with_kills_a_divergence_and_a_full_disk_ends_complete(tmp_path):
    rng = random.Random(20261201)
    sweep = tmp_path / "sweep"
    disk = sweep / str(FULL_DISK)
    disk.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a 64 kB tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    started = time.monotonic()
    try:
        killed, launches, codes = [], 0, []
        #: job -> (summary.json bytes, mtime) once it completed
        completed: dict[int, tuple[bytes, int]] = {}
        while launches < MAX_LAUNCHES:
            launches += 1
            code, job, output = _launch(sweep, tmp_path, launches, kill=launches <= KILLS, rng=rng)
            codes.append(code)
            assert "Traceback" not in output, output[-3000:]
            if job is not None:
                killed.append(job)
                # joblib stops the launch when a worker dies: one line, exit status 1
                assert code == 1, output[-3000:]
                assert "Error: a job's process died and the launcher stopped the sweep" in output
            else:
                assert code == 0, output[-3000:]
            for done, (text, mtime) in completed.items():  # nothing completed is trained again
                path = sweep / str(done) / "summary.json"
                assert (path.read_bytes(), path.stat().st_mtime_ns) == (text, mtime), f"job {done}"
            summaries = _summaries(sweep)
            for number, summary in summaries.items():
                if summary["status"] == "completed" and number not in completed:
                    path = sweep / str(number) / "summary.json"
                    completed[number] = (path.read_bytes(), path.stat().st_mtime_ns)
            if len(summaries) == JOBS and all(s["status"] in FINAL for s in summaries.values()):
                if launches > KILLS:
                    break
        wall = time.monotonic() - started

        collected = collect_results(tmp_path, f"dir={sweep}", "plots=false", "progress=false")
        assert collected.returncode == 0, collected.stderr[-3000:]
        (out,) = (tmp_path / "collection_outputs").glob("*/*")
        results = pd.read_csv(out / "results.csv", dtype={"run": str})
        failed = pd.read_csv(out / "failed_runs.csv", dtype={"run": str})
        statuses = dict(zip(results["run"].astype(int), results["status"], strict=True))
        reasons = dict(zip(failed["run"].astype(int), failed["reason"], strict=True))
        # joblib also ends the jobs running beside a killed one (it terminates its workers): stale too
        resumed_stale = sorted(
            job
            for job in range(JOBS)
            if "stale_attempt" in json.loads((sweep / f"{job}/summary.json").read_text())
        )
        summary = {
            "jobs": JOBS,
            "killed": killed,
            "stale_resumed": resumed_stale,
            "launches": launches,
            "exit_codes": codes,
            "wall_s": round(wall, 1),
            "statuses": results["status"].value_counts().to_dict(),
        }
        print("soak:", json.dumps(summary))

        assert len(results) == JOBS and sorted(statuses) == list(range(JOBS))
        assert len(killed) == KILLS, f"only {len(killed)} jobs could be killed"
        expected = {job: "completed" for job in range(JOBS)}
        expected[DIVERGING], expected[FULL_DISK] = "diverged", "failed"
        assert statuses == expected
        assert sorted(reasons) == [DIVERGING, FULL_DISK]
        assert f"cannot write {disk / 'checkpoint.pt'}: No space left on device" in reasons[FULL_DISK]
        assert set(killed) <= set(resumed_stale)
        for job in resumed_stale:
            resumed = json.loads((sweep / str(job) / "summary.json").read_text())
            assert "is stale" in resumed["stale_attempt"], job
            if job in killed:  # from its checkpoint, not from scratch (a job ended beside it may have none)
                assert resumed.get("resumed_from_step", 0) >= 5, job
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=False)
