"""Telling a dead run from a running one: owner process and heartbeat in summary.json."""

from __future__ import annotations

import subprocess
import sys

from neuromod.runfolder.liveness import STALE_AFTER_S, beat, owner, staleness


def test_a_live_run_with_a_fresh_heartbeat_is_not_stale():
    summary = {"status": "running", **owner()}
    assert staleness(summary) is None


def test_a_run_whose_process_is_gone_is_stale():
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    summary = {"status": "running", **owner(), "pid": int(done.stdout)}  # that process has exited
    assert staleness(summary) is not None


def test_a_silent_run_is_stale_after_the_limit_only():
    summary = beat({"status": "running", "host": "another-host", "pid": 1})
    now = summary["updated_at"]
    assert staleness(summary, now=now + STALE_AFTER_S - 1) is None
    assert staleness(summary, now=now + STALE_AFTER_S + 5) == STALE_AFTER_S + 5


def test_finished_runs_are_never_stale_and_old_summaries_use_the_file_time():
    assert staleness({"status": "completed", "updated_at": 0.0}, now=1e9) is None
    assert staleness({"status": "running"}, now=1e9) is None  # nothing to tell by
    assert (
        staleness({"status": "running"}, now=1e9, last_modified=1e9 - 2 * STALE_AFTER_S) == 2 * STALE_AFTER_S
    )
