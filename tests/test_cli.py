"""Bad input through the real command line: exit status 2, one clear line naming the key, the bad value and
what is allowed, no traceback (unless HYDRA_FULL_ERROR=1), and no run folder that claims ``completed``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from neuromod.api import run_config as run
from tests.conftest import FAST, ROOT, compose_config

#: (name, overrides, fragments the one error line must contain: the key, the bad value, what is allowed)
BAD_INPUTS = [
    ("unknown_group_option", ["architecture=nope"], ["architecture=nope", "additive", "factorial"]),
    ("unknown_key", ["training.stpes=3"], ["training.stpes", "did you mean training.steps", "+training"]),
    ("unparsable_override", ["training.steps=[1"], ["training.steps=[1", "cannot parse"]),
    ("wrong_type", ["training.steps=abc"], ["training.steps='abc'", "integer >= 1"]),
    ("zero_steps", ["training.steps=0"], ["training.steps=0", "integer >= 1"]),
    ("negative_steps", ["training.steps=-5"], ["training.steps=-5", "integer >= 1"]),
    ("zero_batch_size", ["training.batch_size=0"], ["training.batch_size=0", "integer >= 1"]),
    ("negative_lr", ["training.lr=-0.1"], ["training.lr=-0.1", "number > 0"]),
    ("zero_lr", ["training.lr=0"], ["training.lr=0", "number > 0"]),
    ("hidden_size_0", ["architecture.hidden_size=0"], ["architecture.hidden_size=0", "integer >= 1"]),
    ("negative_delay", ["task.min_delay=-1"], ["task.min_delay=-1", "integer >= 0"]),
    (
        "inverted_delays",
        ["task.min_delay=5", "task.max_delay=2"],
        ["task.max_delay=2", ">= task.min_delay (5)"],
    ),
    ("delay_too_long", ["task.max_delay=5000"], ["task.max_delay=5000", "max_trial_steps=1000"]),
    ("orhan_ma_delay_too_long", ["task=de1", "task.delay=2000"], ["task.delay=2000", "max_trial_steps"]),
    (
        "architecture_encoding_mismatch",
        ["architecture=factorial"],
        ["architecture=factorial", "task.encoding=additive", "task.encoding=factorial"],
    ),
    ("negative_eval_delay", ["task.eval_delays=[2,-3]"], ["task.eval_delays=[2, -3]", "integers >= 0"]),
    (
        "eval_delay_beyond_trial",
        ["task.eval_delays=[1,2000]"],
        ["task.eval_delays=[1, 2000]", "max_trial_steps"],
    ),
    ("eval_delay_task_cannot_make", ["task=cue_go", "task.eval_delays=[0]"], ["task.eval_delays", ">= 1"]),
    ("device_missing", ["device=cuda:3"], ["device='cuda:3'", "cpu"]),
    ("device_unknown", ["device=tpu"], ["device='tpu'", "auto, cpu, cuda or cuda:N"]),
    ("bad_boolean", ["training.resume=maybe"], ["training.resume='maybe'", "true or false"]),
]


def main_py(folder: Path, overrides: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    """``python main.py`` (shrunken) with its run folder in ``folder``."""
    command = [
        sys.executable,
        "main.py",
        *FAST,
        "analysis.figures=false",
        *overrides,
        f"hydra.run.dir={folder}",
    ]
    environment = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    environment.update(env or {})
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=environment, timeout=300)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """Every bad input, run as separate processes a few at a time (each mostly imports torch)."""
    base = tmp_path_factory.mktemp("bad_inputs")

    def launch(case):
        name, overrides, _ = case
        return name, (main_py(base / name, overrides), base / name)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(launch, BAD_INPUTS))


@pytest.mark.parametrize("name, overrides, fragments", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_fails_with_one_clear_line(results, name, overrides, fragments):
    result, folder = results[name]
    assert result.returncode == 2, result.stderr
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("Error: ")
    for fragment in fragments:
        assert fragment in errors[0], f"{fragment!r} not in {errors[0]!r}"
    for summary in folder.rglob("summary.json"):
        status = json.loads(summary.read_text())["status"]
        assert status == "failed", f"{summary} says {status}"


def test_hydra_full_error_shows_the_traceback(tmp_path):
    result = main_py(tmp_path / "run", ["training.stpes=3"], env={"HYDRA_FULL_ERROR": "1"})
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "stpes" in result.stderr


def test_bad_override_never_replaces_a_completed_run(tmp_path):
    """A completed run folder re-launched with a bad value keeps its completed record."""
    folder = tmp_path / "run"
    run(compose_config([*FAST, "analysis.figures=false"]), output_dir=folder)  # in this process: cheaper
    before = (folder / "summary.json").read_text()
    assert json.loads(before)["status"] == "completed"
    result = main_py(folder, ["training.lr=-1"])
    assert result.returncode == 2 and "training.lr=-1" in result.stderr
    assert (folder / "summary.json").read_text() == before
