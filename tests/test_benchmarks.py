"""The benchmark scripts run from the command line and write what docs/performance.md describes (no timing
is asserted: the numbers depend on the machine)."""

from __future__ import annotations

import math
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from tests.conftest import ROOT  # noqa: E402

#: The columns docs/performance.md documents for bench_training.py's CSV.
BENCH_COLUMNS = {
    "arch",
    "fast_ms",
    "native_ms",
    "naive_ms",
    "naive_over_fast",
    "native_over_fast",
    "fast_peak_mb",
    "native_peak_mb",
    "naive_peak_mb",
    "modulator_ms",
    "modulator_gflops",
    "matmul_peak_gflops",
    "matmul_shape_gflops",
    "pct_of_peak",
    "load_1min",
}


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, f"benchmarks/{script}", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_training_step_benchmark_writes_its_table_and_csv(tmp_path):
    out = tmp_path / "bench.csv"
    result = _run(
        "bench_training.py", "--archs", "one_neuron", "--repeats", "1", "--warmup", "1", "--threads", "1",
        "--csv", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "naive/fast" in result.stdout and "one_neuron" in result.stdout
    table = pd.read_csv(out)
    assert BENCH_COLUMNS <= set(table.columns) and list(table["arch"]) == ["one_neuron"]
    row = table.iloc[0]
    assert (row["T"], row["batch"], row["neurons"], row["hidden"]) == (85, 100, 1, 64)  # the seed's setting
    for name in ("fast", "native", "naive"):
        assert row[f"{name}_ms"] > 0
        assert row[f"{name}_peak_mb"] > 0  # each measured in a process of its own
    assert math.isclose(row["naive_over_fast"], row["naive_ms"] / row["fast_ms"], rel_tol=0.05)
    assert 0 < row["pct_of_peak"] < 100


def test_training_step_benchmark_refuses_an_unknown_architecture():
    result = _run("bench_training.py", "--archs", "additive,lstm", "--no-memory")
    assert result.returncode == 2
    assert "lstm" in result.stderr and "additive" in result.stderr


def test_time_to_accuracy_reports_the_first_evaluation_at_the_threshold(tmp_path):
    out = tmp_path / "tta.csv"
    result = _run(
        "time_to_accuracy.py", "--seeds", "0", "--threshold", "0.5", "--threads", "1", "--csv", str(out),
        "--", "training.steps=100", "training.eval_every=25",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    row = pd.read_csv(out).iloc[0]
    assert row["reached"] and row["steps"] in (25, 50, 75, 100)
    assert 0 < row["train_wall_time_s"] <= row["run_wall_time_s"]
    # the run stops at the first evaluation at or above the threshold
    assert row["final_eval_accuracy"] >= 0.5 and row["steps_run"] == row["steps"]
    image = plt.imread(out.with_suffix(".png"))  # the curves against wall time and steps
    height, width = image.shape[:2]
    assert width > 2 * height > 600 and image.std() > 0.05  # two panels, not a blank canvas


def test_time_per_update_projects_a_run_from_its_measured_update_and_evaluation():
    result = _run(
        "time_per_update.py", "--updates", "2", "--warmup", "1", "--evaluations", "1", "--",
        "training.steps=1000", "training.eval_every=100", "training.batch_size=4",
        "training.eval_batch_size=8", "architecture.hidden_size=8", "threads=1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    row = dict(line.split(maxsplit=1) for line in result.stdout.splitlines()[1:])
    update, evaluation = float(row["update_ms"]), float(row["evaluation_ms"])
    assert update > 0 and evaluation > 0 and row["batch"] == "4" and row["eval_trials"] == "8"
    expected = (1000 * update + (10 + 4) * evaluation) / 1e3 / 3600  # evaluations, test set and controls
    assert math.isclose(float(row["projected_run_h"]), expected, abs_tol=0.006)


#: A stand-in for the seed project's modules, with the interface bench_seed.py uses.
FAKE_SEED = {
    "src/__init__.py": "",
    "src/data/__init__.py": "",
    "src/models/__init__.py": "",
    "src/data/create_input_output_additive.py": (
        "import numpy as np\n"
        "def gen_input_output(batch_size=300):\n"
        "    x = np.random.rand(25, batch_size, 7)\n"
        "    return x, x[:, :, :4], None, None\n"
    ),
    "src/models/network_additive.py": (
        "import torch\n"
        "class NetworkAdditive(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.linear = torch.nn.Linear(7, 4)\n"
        "    def forward(self, x):\n"
        "        return self.linear(x), {}\n"
    ),
}


def test_the_seed_comparison_times_both_steps_interleaved(tmp_path):
    for name, text in FAKE_SEED.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    out = tmp_path / "seed.csv"
    result = _run(
        "bench_seed.py", "--seed-repo", str(tmp_path), "--repeats", "3", "--warmup", "1", "--threads", "1",
        "--csv", str(out), "architecture.hidden_size=8", "training.batch_size=8",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("round ") == 3 and "seed/neuromod" in result.stdout
    row = pd.read_csv(out).iloc[0]
    assert row["seed_ms"] > 0 and row["neuromod_ms"] > 0
    ratio = row["seed_ms"] / row["neuromod_ms"]
    assert math.isclose(row["seed_over_neuromod"], ratio, rel_tol=0.05, abs_tol=0.01)
    assert row["neuromod_overrides"] == "architecture.hidden_size=8 training.batch_size=8"


def test_the_seed_comparison_names_a_folder_that_is_not_the_seed():
    result = _run("bench_seed.py", "--seed-repo", str(ROOT / "docs"))
    assert result.returncode == 2
    assert "--seed-repo" in result.stderr.splitlines()[-1] and "network_additive.py" in result.stderr
