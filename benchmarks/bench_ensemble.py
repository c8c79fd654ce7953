"""Ensemble benchmark: one training step of an ensemble of K networks against K solo steps.

At the run shape of the retention sweep (``experiment=delay_x_hidden``'s jobs: additive, 4 neurons, modulator
hidden 4, delays 1-50, batch 64; ``--overrides`` to change), for each K the median wall time of one
training step (drawing each member's trials, forward, loss, backward, clip, Adam) of

- ``solo``: one run's :meth:`~neuromod.training.Trainer.train_step` (seed 0), times K for K runs;
- ``ensemble``: :meth:`~neuromod.ensemble.EnsembleTrainer.train_step` of K members (seeds 0..K-1).

They are timed interleaved (every round times one solo step and one step of every ensemble), so a change
in the machine's load hits all alike; evaluations are left out (neither evaluates in the timed steps).

    python benchmarks/bench_ensemble.py --threads 1
    python benchmarks/bench_ensemble.py --threads 0      # torch's default: every core
    python benchmarks/bench_ensemble.py --threads 1 --fit-steps 50 --fit-k 20   # also whole trainings

``--fit-steps N``: also time the whole training of ``--fit-k`` runs of N steps with their evaluations
(every 25 steps and at the end, 512 validation trials each): the runs one after the other
(:meth:`~neuromod.training.Trainer.fit` each) against one ensemble of them.

Prints a table (and the 1-minute load) and writes ``benchmarks/results/bench_ensemble_threads<N>.csv``.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from neuromod.compose import compose_config
from neuromod.ensemble import EnsembleTrainer
from neuromod.runner.run import build_run

ROOT = Path(__file__).resolve().parents[1]

#: One job of the retention sweep (experiment=delay_x_hidden): its shape, no evaluation in timed steps.
RUN_SHAPE = [
    "architecture=additive",
    "architecture.n_neurons=4",
    "architecture.hidden_size=4",
    "task.max_delay=50",
    "training.batch_size=64",
    "training.steps=1000000",
    "training.eval_every=1000000",
    "training.progress=false",
    "device=cpu",
    "threads=null",
]


def build_members(overrides: list[str], k: int):
    """K runs (seeds 0..k-1) as their solo runs build them; the config is composed once."""
    cfg = compose_config(overrides)
    members = []
    for seed in range(k):
        member = cfg.copy()
        member.seed = seed
        members.append(build_run(member))
    return members


def time_fits(overrides: list[str], k: int, steps: int) -> tuple[float, float]:
    """Seconds to train ``k`` runs of ``steps`` steps (evaluations every 25): one after the other, and
    as one ensemble (building excluded)."""
    overrides = overrides + [f"training.steps={steps}", "training.eval_every=25"]
    solo = build_members(overrides, k)
    started = time.perf_counter()
    for member in solo:
        member.trainer.fit()
    alone = time.perf_counter() - started
    ensemble = EnsembleTrainer(build_members(overrides, k))
    started = time.perf_counter()
    ensemble.fit()
    return alone, time.perf_counter() - started


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", default="1,5,20,60", help="ensemble sizes, comma-separated")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    parser.add_argument("--overrides", nargs="*", default=[], help="config overrides after the run shape")
    parser.add_argument("--fit-steps", type=int, default=0, help="also time whole trainings of N steps")
    parser.add_argument("--fit-k", type=int, default=20, help="runs in the whole-training comparison")
    parser.add_argument(
        "--csv", default=None, help="default: benchmarks/results/bench_ensemble_threads<N>.csv"
    )
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    ks = [int(k) for k in args.ks.split(",")]
    overrides = RUN_SHAPE + list(args.overrides)
    print(f"building 1 solo run and ensembles of {ks} ...", file=sys.stderr)
    solo = build_members(overrides, 1)[0].trainer
    ensembles = {k: EnsembleTrainer(build_members(overrides, k)) for k in ks}
    times: dict[str, list[float]] = {"solo": [], **{f"k{k}": [] for k in ks}}
    load_before = os.getloadavg()[0]
    for round_ in range(args.warmup + args.repeats):
        steps = [("solo", solo.train_step)] + [(f"k{k}", e.train_step) for k, e in ensembles.items()]
        for name, step in steps:
            started = time.perf_counter()
            step()
            if round_ >= args.warmup:
                times[name].append(time.perf_counter() - started)
    load = round((load_before + os.getloadavg()[0]) / 2, 2)
    solo_ms = statistics.median(times["solo"]) * 1e3
    rows = []
    for k in ks:
        ensemble_ms = statistics.median(times[f"k{k}"]) * 1e3
        rows.append(
            {
                "k": k,
                "threads": threads,
                "solo_step_ms": round(solo_ms, 2),
                "k_solo_steps_ms": round(k * solo_ms, 1),
                "ensemble_step_ms": round(ensemble_ms, 2),
                "ensemble_ms_per_member": round(ensemble_ms / k, 3),
                "speedup": round(k * solo_ms / ensemble_ms, 2),
                "load_1min": load,
            }
        )
    print(
        f"threads {threads} | load {load} | {args.repeats} rounds after {args.warmup} | {' '.join(overrides)}"
    )
    print("| K | K x solo step (ms) | ensemble step (ms) | per member (ms) | speed-up |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['k']} | {row['k_solo_steps_ms']} | {row['ensemble_step_ms']} | "
            f"{row['ensemble_ms_per_member']} | {row['speedup']}x |"
        )
    if args.fit_steps:
        load_before = os.getloadavg()[0]
        alone, together = time_fits(overrides, args.fit_k, args.fit_steps)
        load = round((load_before + os.getloadavg()[0]) / 2, 2)
        print(
            f"whole training, {args.fit_k} runs x {args.fit_steps} steps (evaluations included): one after "
            f"the other {alone:.1f} s, one ensemble {together:.1f} s ({alone / together:.2f}x) | load {load}"
        )
    path = Path(args.csv or ROOT / "benchmarks" / "results" / f"bench_ensemble_threads{threads}.csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {path}", file=sys.stderr)
    return rows


if __name__ == "__main__":
    main()
