"""A size that cannot fit is refused before training; the estimate is checked against measured peaks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from neuromod.runner.memory import GIB, MemoryEstimate, refusal
from tests.conftest import ROOT
from tests.test_cli import main_py

#: One training step at these sizes (a few hundred MB each), measured in a fresh process: the growth of its
#: resident size from just before the step to the step's peak (Linux: VmHWM after resetting it).
SIZES = [
    ["architecture.n_neurons=100", "training.batch_size=128"],
    ["architecture=one_neuron", "task=cue_go", "training.batch_size=4096"],
    ["af=fixed", "architecture.n_neurons=2000", "training.batch_size=512"],
    ["architecture=lstm", "architecture.hidden_size=256", "training.batch_size=512"],
    ["architecture=rnn", "architecture.hidden_size=512", "training.batch_size=1024"],
]

PROBE = """
import json, sys, torch
from neuromod.compose import compose_config
from neuromod.runner.build import build
from neuromod.runner.memory import estimate
from neuromod.training import compute_loss, resolve_loss
torch.set_num_threads(1)
cfg = compose_config(sys.argv[1:])
task, model = build(cfg, torch.device("cpu"))
B = int(cfg.training.batch_size)
found = estimate(model, task, B, 8)
batch = task.sample(B, torch.Generator().manual_seed(0), torch.full((B,), int(task.max_delay)))
optimizer = torch.optim.Adam(model.parameters(), 1e-3)
def status(field):  # kB
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith(field))
with open("/proc/self/clear_refs", "w") as handle:  # the peak (VmHWM) starts again from the current size
    handle.write("5")
before = status("VmRSS:")
out = model(batch.inputs)
compute_loss(out.outputs, batch, resolve_loss("auto", task), task, out.activity).backward()
optimizer.step()
after = status("VmHWM:")
print(json.dumps({"estimate": found.train_bytes, "measured": (after - before) * 1024}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("overrides", SIZES, ids=[" ".join(size) for size in SIZES])
def test_the_estimate_is_within_a_factor_of_3_of_the_measured_peak(overrides):
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *overrides], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    ratio = figures["estimate"] / figures["measured"]
    assert 1 / 3 <= ratio <= 3, figures


EVAL_PROBE = """
import json, sys, torch
from neuromod.compose import compose_config
from neuromod.runner.build import build
from neuromod.runner.memory import estimate
from neuromod.training import eval_delays_tensor, evaluate, resolve_loss
torch.set_num_threads(1)
chunk = None if sys.argv[1] == "whole" else int(sys.argv[1])
cfg = compose_config(sys.argv[2:])
task, model = build(cfg, torch.device("cpu"))
B, E = int(cfg.training.batch_size), int(cfg.training.eval_batch_size)
found = estimate(model, task, B, E)
batch = task.sample(E, torch.Generator().manual_seed(0), eval_delays_tensor(task, E, torch.device("cpu")))
def status(field):  # kB
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith(field))
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")
before = status("VmRSS:")
evaluate(model, task, batch, resolve_loss("auto", task), record=True, chunk=chunk)
after = status("VmHWM:")
weights = sum(p.numel() for p in model.parameters()) * 16  # allocated before the measurement
print(json.dumps({"estimate": found.eval_bytes - weights, "measured": (after - before) * 1024}))
"""


def _eval_peak(chunk: str, overrides: list[str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", EVAL_PROBE, chunk, *overrides],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [
        ["architecture.n_neurons=100", "training.batch_size=32", "training.eval_batch_size=1024"],
        [
            "architecture=lstm",
            "architecture.hidden_size=256",
            "training.batch_size=32",
            "training.eval_batch_size=1024",
        ],
    ],
    ids=["additive", "lstm"],
)
def test_evaluation_runs_in_chunks_of_the_training_batch_within_its_estimate(overrides):
    chunked = _eval_peak("32", overrides)  # chunks of the training batch
    assert 1 / 3 <= chunked["estimate"] / chunked["measured"] <= 3, chunked
    whole = _eval_peak("whole", overrides)  # one pass over all 1024 trials (what evaluation did before)
    assert whole["measured"] > 1.5 * chunked["measured"], (whole, chunked)


def test_a_run_that_fits_is_not_refused_and_one_that_does_not_is_named():
    fits = MemoryEstimate(train_bytes=int(8 * GIB), eval_bytes=GIB, n_steps=26)
    assert refusal(fits, int(10 * GIB), ["training.batch_size"], "cpu") is None
    assert refusal(fits, None, ["training.batch_size"], "cpu") is None  # nothing known: no refusal
    message = refusal(fits, int(8 * GIB), ["training.batch_size", "architecture.n_neurons"], "cpu")
    assert "8 GiB" in message and "training.batch_size, architecture.n_neurons" in message


@pytest.mark.parametrize(
    "overrides",
    [
        ["training.batch_size=100000000"],
        ["architecture.n_neurons=5000000"],
        ["task.max_delay=900", "training.batch_size=100000"],
    ],
)
def test_sizes_that_cannot_fit_exit_2_with_one_line(tmp_path, overrides):
    result = main_py(tmp_path / "run", overrides)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "does not fit" in errors[0] and "GiB" in errors[0], result.stderr
    assert "training.batch_size" in errors[0]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "failed"
