"""Collection at scale: stale running runs, the libyaml reading of .hydra/, caps, the benchmark script."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from neuromod.api import collect_sweep as collect
from neuromod.plotting.run_files import NotARunError, load_run
from neuromod.results import hydra_files
from neuromod.results.runs import read_run, silence_text, stale_reason

ROOT = Path(__file__).resolve().parents[1]


def _run(folder: Path, num: int, summary: dict | None, delay: int = 5) -> Path:
    """A run folder: .hydra/ as Hydra writes it and, unless None, ``summary.json``."""
    (folder / ".hydra").mkdir(parents=True)
    overrides = [f"task.max_delay={delay}", f"seed={num}"]
    config = {
        "task": {"max_delay": delay, "lr_copy": "${training.lr}"},
        "training": {"lr": 1e-3},
        "seed": num,
    }
    hydra = {
        "hydra": {"job": {"num": num}, "runtime": {"choices": {"af": "gain", "hydra/launcher": "basic"}}}
    }
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if summary is not None:
        flat = {"task.max_delay": delay, "task.lr_copy": 1e-3, "training.lr": 1e-3, "seed": num}
        (folder / "summary.json").write_text(
            json.dumps({"seed": num, "steps": 10, "config": flat, **summary})
        )
    return folder


def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(done.stdout)


@pytest.fixture
def sweep(tmp_path):
    now = time.time()
    root = tmp_path / "sweep"
    here = socket.gethostname()
    _run(root / "0", 0, {"status": "completed", "final": {"test_accuracy": 0.9}})
    _run(root / "1", 1, {"status": "running", "host": here, "pid": _dead_pid(), "updated_at": now - 60})
    _run(root / "2", 2, {"status": "running", "host": "elsewhere", "pid": 1, "updated_at": now - 7500})
    _run(root / "3", 3, {"status": "running", "host": here, "pid": os.getpid(), "updated_at": now - 5})
    old = _run(root / "4", 4, {"status": "running"})  # written before heartbeats: the file's time counts
    os.utime(old / "summary.json", (now - 4000, now - 4000))
    _run(root / "5", 5, None)  # killed before it wrote a summary
    return root


def test_stale_runs_are_reported_with_how_long_they_were_silent(sweep, tmp_path, caplog):
    caplog.set_level("INFO")
    out = tmp_path / "out"
    collect(sweep, out, progress=False, plots=False, table_metrics=["test_accuracy"])
    failed = pd.read_csv(out / "failed_runs.csv", dtype={"run": str}, keep_default_na=False).set_index("run")
    assert failed.loc["1", "status"] == "stale"
    assert failed.loc["1", "reason"].startswith("stale: silent for 1 min at step 10 (host ")
    assert failed.loc["2", "status"] == "stale"
    assert failed.loc["2", "reason"] == "stale: silent for 2 h 5 min at step 10 (host elsewhere, pid 1)"
    assert failed.loc["3", "status"] == "running" and "still running" in failed.loc["3", "reason"]
    assert failed.loc["4", "status"] == "stale" and "silent for 1 h 6 min" in failed.loc["4", "reason"]
    assert failed.loc["5", "status"] == "incomplete"
    results = pd.read_csv(out / "results.csv", dtype={"run": str}).set_index("run")
    assert results.loc["2", "status"] == "stale"
    assert "3 stale" in caplog.text
    assert json.loads((out / "collection.json").read_text())["n_stale"] == 3
    # A longer patience: the silent run elsewhere is given the benefit of the doubt; the dead pid is not.
    record = read_run(sweep / "2", stale_after_s=10_000)
    assert record.status == "running"
    assert read_run(sweep / "1", stale_after_s=10_000).status == "stale"


def test_plot_names_a_stale_run(sweep):
    with pytest.raises(
        NotARunError, match=r"status is 'stale: silent for 2 h 5 min at step 10 \(host elsewhere"
    ):
        load_run(sweep / "2")
    with pytest.raises(NotARunError, match="status is 'running'"):
        load_run(sweep / "3")


def test_durations_read_as_people_say_them():
    assert [silence_text(s) for s in (5, 60, 3600, 7500, 90000, 86400)] == [
        "5 s",
        "1 min",
        "1 h",
        "2 h 5 min",
        "1 d 1 h",
        "1 d",
    ]
    assert stale_reason({}, 61) == "stale: silent for 1 min"


def test_libyaml_reading_matches_omegaconf(sweep):
    from omegaconf import OmegaConf

    from neuromod.runfolder.settings import flatten

    path = sweep / "0" / ".hydra" / "config.yaml"
    path.write_text(path.read_text() + "small: 1e-3\nwhen: 2001-12-14\nref: ${task}\n")
    assert hydra_files.job_values(path) is None  # a reference to a whole node: OmegaConf resolves it
    path.write_text(path.read_text().replace("ref: ${task}\n", ""))
    values, derived = hydra_files.job_values(path)
    assert values == flatten(OmegaConf.to_container(OmegaConf.load(path), resolve=True))
    assert derived == {"task.lr_copy"} and isinstance(values["small"], float)
    record = read_run(sweep / "0")
    assert record.job_num == 0 and record.choices == {"af": "gain"}
    assert record.overridden == {"task.max_delay", "seed"}
    # Only hydra.yaml's job and runtime blocks are parsed; a file laid out otherwise is parsed whole.
    flow = sweep / "0" / ".hydra" / "hydra.yaml"
    flow.write_text("{hydra: {job: {num: 7}, runtime: {choices: {af: fixed, hydra/launcher: basic}}}}\n")
    assert hydra_files.hydra_settings(flow) == (7, {"af": "fixed"})


def test_the_benchmark_runs(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_collect.py"),
            "--runs",
            "30",
            "--dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "30 runs" in done.stdout and "runs/s" in done.stdout and "peak memory" in done.stdout


def test_many_combinations_are_capped_in_the_table_and_pooled_in_the_figures(tmp_path, caplog):
    caplog.set_level("INFO")
    root = tmp_path / "many"
    final = {"test_accuracy": 0.8, "eval_accuracy_by_delay": {"1": 0.9, "2": 0.7}}
    for num in range(15):
        _run(root / str(num), num, {"status": "completed", "final": final}, delay=num + 1)
    out = tmp_path / "out"
    collect(root, out, progress=False, plots=True, metric="test_accuracy", table_metrics=["test_accuracy"],
            max_table_rows=4)  # fmt: skip
    assert len(pd.read_csv(out / "summary.csv")) == 15
    tex = (out / "summary.tex").read_text()
    assert "11 more combinations: see summary.csv" in tex and "The first 4 of 15 combinations" in tex
    assert "the first 4 of 15 combinations" in caplog.text
    assert (out / "accuracy_by_eval_delay.png").exists()
