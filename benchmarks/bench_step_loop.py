"""The one_neuron step loop (feedback) with and without the hand-written loop node, against the naive loop.

Times training steps of the ``one_neuron`` seed configuration (T=85, B=100, one neuron, H=64) three ways,
interleaved round by round so that a change in machine load hits all alike: the step loop as one
hand-written autograd node (``architecture.implementation=fused``, what ``auto`` runs on a CPU), the same
loop composed of autograd operations (``torch.lstm_cell`` steps, ``architecture.implementation=composed``),
and the naive per-neuron loop.

    python benchmarks/bench_step_loop.py --threads 2 --repeats 11
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from bench_training import Setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=11, help="timed rounds")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    node = Setup("one_neuron", cpu, implementation="fused")
    composed = Setup("one_neuron", cpu, implementation="composed")
    variants = {
        "loop node": lambda: node.step("fast"),
        "composed": lambda: composed.step("fast"),
        "naive": lambda: node.step("naive"),
    }
    for _ in range(args.warmup):
        for run in variants.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(args.repeats):
        for name, run in variants.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
        print(f"  round {r + 1}/{args.repeats}", file=sys.stderr, flush=True)
    median = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    print(
        f"threads {torch.get_num_threads()} | median ms per training step, {args.repeats} interleaved rounds"
    )
    for name, ms in median.items():
        print(f"  {name:10s} {ms:7.1f} ms   naive/this {median['naive'] / ms:5.2f}")


if __name__ == "__main__":
    main()
