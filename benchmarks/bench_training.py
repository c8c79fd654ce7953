"""Training-step benchmark: neuromod's fast path against a naive per-neuron loop, in the same process.

For each architecture at the seeds' configuration, the median wall time of one training step (forward,
loss, backward, gradient clipping, Adam) after warm-up, for three implementations of the same model with
the same weights and batches, timed interleaved (so a change in machine load hits all three alike):

- ``fast``: neuromod as it runs by default (``architecture.implementation=auto``: hand-written modulator
  recurrence on CPU, cuDNN on CUDA);
- ``native``: the same vectorised model on ``nn.LSTM`` (``architecture.implementation=native``: all
  neurons and trials in one call);
- ``naive``: :class:`reference.NaiveReference` (``benchmarks/reference.py``), a Python loop over neurons
  with an ``nn.LSTMCell``, as research code of this kind is usually written.

Also: peak memory of a training step per implementation (a separate process each on CPU, from
``ru_maxrss``; ``torch.cuda.max_memory_allocated`` on CUDA), and the modulator's achieved GFLOP/s next to
the matrix-multiply rate measured on this machine (a large square product, and one of the modulator's
own shape).

    python benchmarks/bench_training.py            # full run (a few minutes on 2 cores)
    python benchmarks/bench_training.py --quick    # fewer repeats (about a minute)

Prints a table and writes ``benchmarks/results/bench_training.csv`` (``--csv`` to change). Columns are
described in docs/performance.md.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from reference import NaiveReference

from neuromod.compose import compose_config
from neuromod.runner.build import build, resolve_device
from neuromod.training import compute_loss, resolve_loss

ROOT = Path(__file__).resolve().parents[1]

#: The seeds' configurations: overrides of the default experiment, batch size and trial length.
SEED_CONFIGS = {
    # time_person, additive encoding: lead 2 + 3 cue steps + delay up to 20 + query = 26 steps
    "additive": {
        "overrides": ["architecture=additive", "architecture.n_neurons=20", "architecture.hidden_size=64"],
        "batch": 200,
    },
    # factorial encoding: lead 2 + 1 cue step + delay up to 16 + query = 20 steps, 12 neurons
    "factorial": {
        "overrides": [
            "architecture=factorial",
            "task.encoding=factorial",
            "task.max_delay=16",
            "architecture.hidden_size=64",
        ],
        "batch": 100,
    },
    # cue_go: cue at step 5 + delay up to 79 + go = 85 steps; feedback, so it steps through time
    "one_neuron": {
        "overrides": [
            "architecture=one_neuron",
            "task=cue_go",
            "task.max_delay=79",
            "architecture.hidden_size=64",
        ],
        "batch": 100,
    },
}
IMPLEMENTATIONS = ("fast", "native", "naive")


class Setup:
    """One architecture at its seed configuration: the three implementations, batches, optimisers.

    ``implementation``: the ``architecture.implementation`` of ``fast`` (``native`` is built with
    ``native``, from the same seed: the same weights).
    """

    def __init__(self, arch: str, device: torch.device, n_batches: int = 4, implementation: str = "auto"):
        spec = SEED_CONFIGS[arch]
        overrides = spec["overrides"] + ["training.progress=false"]
        self.cfg = compose_config(overrides + [f"architecture.implementation={implementation}"])
        self.task, model = build(self.cfg, device)
        _, native = build(compose_config(overrides + ["architecture.implementation=native"]), device)
        self.device = device
        self.batch_size = spec["batch"]
        self.loss_kind = resolve_loss(self.cfg.training.loss, self.task)
        generator = torch.Generator(device=device).manual_seed(0)
        self.batches = []
        for _ in range(n_batches):
            # random delays as in training, the longest one included so every batch has the seed's length
            delays = torch.randint(
                self.task.min_delay,
                self.task.max_delay + 1,
                (self.batch_size,),
                generator=generator,
                device=device,
            )
            delays[0] = self.task.max_delay
            self.batches.append(self.task.sample(self.batch_size, generator, delays))
        self.models = {"fast": model, "native": native, "naive": NaiveReference(copy.deepcopy(model))}
        self.optimizers = {
            name: torch.optim.Adam(m.parameters(), lr=float(self.cfg.training.lr))
            for name, m in self.models.items()
        }
        self.count = 0
        neurons = model.neurons
        inputs = self.batches[0].inputs
        self.shape = {
            "T": inputs.shape[0],
            "B": self.batch_size,
            "N": neurons.n_neurons,
            "H": neurons.modulator.hidden_size,
            "F": neurons.modulator.lstm.input_size,
            "P": neurons.activation.n_params,
        }

    def step(self, name: str) -> None:
        """One training step of implementation ``name`` (forward, loss, backward, clip, Adam)."""
        model, optimizer = self.models[name], self.optimizers[name]
        batch = self.batches[self.count % len(self.batches)]
        self.count += 1
        result = model(batch.inputs)
        loss = compute_loss(result.outputs, batch, self.loss_kind, self.task, result.activity)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), float(self.cfg.training.grad_clip or 1e9))
        optimizer.step()
        synchronize(self.device)

    def modulator_flops(self) -> float:
        """Floating-point operations of the modulator (LSTM products + head) in one training step:
        the forward products, and two products of the same size each in the backward pass. Without
        feedback the modulator runs T - lag steps (its last ``lag`` outputs would act after the trial)."""
        s = self.shape
        neurons = self.models["fast"].neurons
        steps = s["T"] if neurons.uses_feedback else max(s["T"] - neurons.activation.lag, 0)
        per_step = 2 * s["F"] * 4 * s["H"] + 2 * s["H"] * 4 * s["H"] + 2 * s["H"] * s["P"]
        return 3.0 * steps * s["B"] * s["N"] * per_step

    def neurons_pass(self) -> None:
        """Forward and backward of the modulated neuron layer alone (the modulator's share of a step)."""
        model = self.models["fast"]
        inputs = self.batches[0].inputs
        with torch.no_grad():
            drive = model.drive(inputs)
        drive.requires_grad_(True)
        rates, params = model.neurons(drive, inputs)
        (rates.sum() + params.sum()).backward()
        model.zero_grad(set_to_none=True)
        synchronize(self.device)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_rate(m: int, k: int, n: int, device: torch.device, repeats: int) -> float:
    """GFLOP/s of ``[m, k] @ [k, n]`` in float32: the best of ``repeats`` (a peak, so the fastest repeat;
    on a shared machine the median moves with other jobs' load)."""
    a = torch.randn(m, k, device=device)
    b = torch.randn(k, n, device=device)
    out = torch.empty(m, n, device=device)

    def product():
        torch.mm(a, b, out=out)
        synchronize(device)

    product()
    best = min(median_time(product, 1) for _ in range(repeats))
    return 2.0 * m * k * n / best / 1e9


def time_steps(setup: Setup, warmup: int, repeats: int, names: tuple[str, ...], progress: bool) -> dict:
    """Median step time per implementation, timed interleaved: round r times every implementation once."""
    for name in names:
        for _ in range(warmup):
            setup.step(name)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names:
            start = time.perf_counter()
            setup.step(name)
            times[name].append(time.perf_counter() - start)
        if progress:
            done = ", ".join(f"{n} {statistics.median(t) * 1e3:.0f} ms" for n, t in times.items())
            print(f"    round {r + 1}/{repeats}: {done}", file=sys.stderr, flush=True)
    return {name: statistics.median(t) for name, t in times.items()}


def probe_memory(arch: str, name: str, device: str, threads: int) -> float:
    """Peak extra memory (MB) of training steps of one implementation, in a fresh process on CPU."""
    command = [sys.executable, __file__, "--probe", arch, name, "--device", device, "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"    memory probe {arch}/{name} failed: {done.stderr.strip()[-300:]}", file=sys.stderr)
        return float("nan")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["peak_mb"])


def run_probe(arch: str, name: str, device: torch.device) -> None:
    setup = Setup(arch, device, n_batches=1)
    for other in IMPLEMENTATIONS:  # keep only the probed implementation alive
        if other != name:
            setup.models.pop(other)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = peak_rss_kib()
    for _ in range(2):
        setup.step(name)
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    else:
        peak = (peak_rss_kib() - base) / 2**10
    print(json.dumps({"peak_mb": peak}))


def peak_rss_kib() -> int:
    """This process's peak resident memory (KiB). ``VmHWM`` where available: ``ru_maxrss`` survives
    ``exec`` on Linux, so a probe started from a large parent would inherit the parent's peak."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (about a minute on 2 cores)")
    parser.add_argument("--archs", default=",".join(SEED_CONFIGS), help="comma-separated, from %(default)s")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per implementation")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps per implementation first")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory probes")
    parser.add_argument("--csv", default=str(ROOT / "benchmarks" / "results" / "bench_training.csv"))
    parser.add_argument("--probe", nargs=2, metavar=("ARCH", "IMPL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    if args.probe:
        run_probe(args.probe[0], args.probe[1], device)
        return []
    archs = [a.strip() for a in args.archs.split(",") if a.strip()]
    unknown = [a for a in archs if a not in SEED_CONFIGS]
    if unknown:
        parser.error(f"--archs: unknown {unknown}; allowed: {list(SEED_CONFIGS)}")
    repeats = args.repeats or (5 if args.quick else 15)
    warmup = args.warmup or (1 if args.quick else 3)

    print(
        f"device {device} | threads {threads} | torch {torch.__version__} | {platform.processor() or 'cpu'} "
        f"| load {os.getloadavg()[0]:.2f} | repeats {repeats}, warm-up {warmup}",
        file=sys.stderr,
    )
    peak_repeats = 5 if args.quick else 10
    peak_square = matmul_rate(2048, 2048, 2048, device, peak_repeats)
    rows = []
    for arch in archs:
        load_before = os.getloadavg()[0]
        setup = Setup(arch, device)
        s = setup.shape
        print(f"  {arch}: T={s['T']} B={s['B']} N={s['N']} H={s['H']}", file=sys.stderr, flush=True)
        step = time_steps(setup, warmup, repeats, IMPLEMENTATIONS, progress=True)
        setup.neurons_pass()
        layer = median_time(setup.neurons_pass, max(3, repeats // 2))
        peak_shape = matmul_rate(4 * s["H"], s["H"], s["B"] * s["N"], device, 10)
        gflops = setup.modulator_flops() / layer / 1e9
        memory = {name: float("nan") for name in IMPLEMENTATIONS}
        if not args.no_memory:
            memory = {name: probe_memory(arch, name, str(device), threads) for name in IMPLEMENTATIONS}
        rows.append(
            {
                "arch": arch,
                "device": str(device),
                "threads": threads,
                "T": s["T"],
                "batch": s["B"],
                "neurons": s["N"],
                "hidden": s["H"],
                "fast_ms": round(step["fast"] * 1e3, 1),
                "native_ms": round(step["native"] * 1e3, 1),
                "naive_ms": round(step["naive"] * 1e3, 1),
                "naive_over_fast": round(step["naive"] / step["fast"], 2),
                "native_over_fast": round(step["native"] / step["fast"], 2),
                "fast_peak_mb": round(memory["fast"], 1),
                "native_peak_mb": round(memory["native"], 1),
                "naive_peak_mb": round(memory["naive"], 1),
                "modulator_ms": round(layer * 1e3, 1),
                "modulator_gflops": round(gflops, 1),
                "matmul_peak_gflops": round(peak_square, 1),
                "matmul_shape_gflops": round(peak_shape, 1),
                "pct_of_peak": round(100 * gflops / peak_square, 1),
                "load_1min": round((load_before + os.getloadavg()[0]) / 2, 2),
            }
        )
    # measured again at the end: a peak taken during another job's burst would flatter the percentages
    peak_square = max(peak_square, matmul_rate(2048, 2048, 2048, device, peak_repeats))
    for row in rows:
        row["matmul_peak_gflops"] = round(peak_square, 1)
        row["pct_of_peak"] = round(100 * row["modulator_gflops"] / peak_square, 1)
    print_table(rows)
    write_csv(Path(args.csv), rows)
    print(f"wrote {args.csv}", file=sys.stderr)
    return rows


def print_table(rows: list[dict]) -> None:
    columns = [
        ("arch", "arch"),
        ("T", "T"),
        ("batch", "B"),
        ("neurons", "N"),
        ("fast_ms", "fast ms"),
        ("native_ms", "nn.LSTM ms"),
        ("naive_ms", "naive ms"),
        ("naive_over_fast", "naive/fast"),
        ("native_over_fast", "nn.LSTM/fast"),
        ("fast_peak_mb", "fast MB"),
        ("naive_peak_mb", "naive MB"),
        ("modulator_gflops", "mod GFLOP/s"),
        ("matmul_peak_gflops", "mm peak"),
        ("matmul_shape_gflops", "mm shape"),
        ("pct_of_peak", "% peak"),
        ("load_1min", "load"),
    ]
    cells = [[str(row[key]) for key, _ in columns] for row in rows]
    widths = [max(len(title), *(len(c[i]) for c in cells)) for i, (_, title) in enumerate(columns)]
    print("  ".join(title.rjust(w) for (_, title), w in zip(columns, widths, strict=True)))
    for c in cells:
        print("  ".join(v.rjust(w) for v, w in zip(c, widths, strict=True)))


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
