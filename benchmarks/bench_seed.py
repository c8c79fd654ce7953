"""neuromod's training step against the seed project's own code, timed in the same process.

The seed (lauraflyra/LSTM_MemoryTask) trains its additive network (20 neurons, modulator hidden size 64,
batch 200, 25-step trials of the time_person task) with a Python loop over time and neurons. This script
imports the seed's own modules from a checkout given on the command line (nothing of it is copied here)
and times one training step of each, interleaved round by round (a change in machine load hits both
alike), after warm-up:

- ``seed``: the body of the seed's training loop (``src/models/train.py``): its ``NetworkAdditive`` forward,
  ``nn.MSELoss``, ``zero_grad``, ``backward``, ``Adam(lr=0.01).step()``, on a batch from its own
  ``gen_input_output``;
- ``neuromod``: ``Trainer.train_step`` of the same configuration (``architecture=additive af=gain
  task=time_person``, ``task.max_delay=19`` for 25-step trials, batch 200, ``training.loss=mse``): a fresh
  batch, forward, loss, backward, gradient clipping and Adam.

    git clone https://github.com/lauraflyra/LSTM_MemoryTask /tmp/LSTM_MemoryTask   # any checkout
    python benchmarks/bench_seed.py --seed-repo /tmp/LSTM_MemoryTask --threads 2

Prints the medians of the wall time, their ratio, the median of the per-round ratios, the medians of the
CPU time of this process (all its threads; with one thread the work done, which other jobs on a shared
machine move less than the wall time) and the load average; ``--csv`` appends a row.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from neuromod.compose import compose_config
from neuromod.runner.run import build_run

#: neuromod at the seed's configuration (trials of 2 + 3 + 19 + 1 = 25 steps, as the seed's).
OVERRIDES = [
    "architecture=additive",
    "architecture.n_neurons=20",
    "architecture.hidden_size=64",
    "af=gain",
    "task=time_person",
    "task.max_delay=19",
    "training.batch_size=200",
    "training.loss=mse",
    "training.lr=0.01",
    "training.progress=false",
]


def seed_step(seed_repo: Path):
    """One training step of the seed's additive network, as its training loop runs it."""
    sys.path.insert(0, str(seed_repo))
    try:
        from src.data.create_input_output_additive import gen_input_output
        from src.models.network_additive import NetworkAdditive
    except ImportError as error:
        raise SystemExit(f"--seed-repo {seed_repo}: cannot import the seed's modules ({error})") from None
    np.random.seed(0)  # noqa: NPY002  (the seed draws its trials from numpy's global generator)
    torch.manual_seed(0)
    x, y, _, _ = gen_input_output(batch_size=200)
    x, y = torch.from_numpy(x).float(), torch.from_numpy(y).float()
    model = NetworkAdditive()
    loss_fn = torch.nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)

    def step() -> None:
        y_pred, _ = model(x)
        loss = loss_fn(y_pred, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def neuromod_step(overrides: list[str]):
    """``Trainer.train_step`` of neuromod at the seed's configuration (plus ``overrides``)."""
    return build_run(compose_config(OVERRIDES + overrides)).trainer.train_step


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seed-repo", required=True, type=Path, help="a checkout of lauraflyra/LSTM_MemoryTask"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    parser.add_argument("--csv", default=None, help="append a row to this CSV")
    parser.add_argument("overrides", nargs="*", help="config overrides for neuromod (e.g. threads=1)")
    args = parser.parse_args(argv)
    if not (args.seed_repo / "src" / "models" / "network_additive.py").is_file():
        parser.error(f"--seed-repo {args.seed_repo}: no src/models/network_additive.py there")
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = {"seed": seed_step(args.seed_repo), "neuromod": neuromod_step(args.overrides)}
    load_before = os.getloadavg()[0]
    for _ in range(args.warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    cpu: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(args.repeats):
        order = list(steps) if r % 2 == 0 else list(reversed(steps))
        for name in order:
            start, start_cpu = time.perf_counter(), time.process_time()
            steps[name]()
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
        print(
            f"  round {r + 1}/{args.repeats}: "
            + ", ".join(f"{n} {times[n][-1] * 1e3:.0f} ms" for n in steps)
            + f" (load {os.getloadavg()[0]:.1f})",
            file=sys.stderr,
            flush=True,
        )
    median = {name: statistics.median(t) for name, t in times.items()}
    per_round = statistics.median(s / n for s, n in zip(times["seed"], times["neuromod"], strict=True))
    row = {
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "seed_ms": round(median["seed"] * 1e3, 3),
        "neuromod_ms": round(median["neuromod"] * 1e3, 3),
        "seed_over_neuromod": round(median["seed"] / median["neuromod"], 2),
        "median_round_ratio": round(per_round, 2),
        "seed_cpu_ms": round(statistics.median(cpu["seed"]) * 1e3, 1),
        "neuromod_cpu_ms": round(statistics.median(cpu["neuromod"]) * 1e3, 1),
        "seed_min_ms": round(min(times["seed"]) * 1e3, 1),
        "neuromod_min_ms": round(min(times["neuromod"]) * 1e3, 1),
        "load_1min": round((load_before + os.getloadavg()[0]) / 2, 2),
        "neuromod_overrides": " ".join(args.overrides),
    }
    print(
        f"threads {row['threads']} | {args.repeats} interleaved rounds | load {row['load_1min']}\n"
        f"  seed      {row['seed_ms']:8.1f} ms  (fastest {row['seed_min_ms']}, "
        f"CPU time {row['seed_cpu_ms']})\n"
        f"  neuromod  {row['neuromod_ms']:8.1f} ms  (fastest {row['neuromod_min_ms']}, "
        f"CPU time {row['neuromod_cpu_ms']})\n"
        f"  seed/neuromod {row['seed_over_neuromod']:.2f}x (median of the rounds' ratios "
        f"{row['median_round_ratio']:.2f}x)"
    )
    if args.csv:
        path = Path(args.csv)
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists()
        with open(path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
    return row


if __name__ == "__main__":
    main()
