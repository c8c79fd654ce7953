"""Time to accuracy: wall time and training steps until the default experiment first reaches
``eval_accuracy >= 0.99``.

Runs ``neuromod.run.run`` (exactly what ``python main.py`` does, without figures) with
``training.stop_at_accuracy`` set, once per seed, into a temporary folder, and reads the run's
``metrics.csv``: the first evaluated row at or above the threshold gives the step and ``wall_time_s``
(training and evaluation time so far, start-up excluded).

    python benchmarks/time_to_accuracy.py                       # neuromod's defaults, seed 0
    python benchmarks/time_to_accuracy.py --seeds 0 1 2 --threads 1
    python benchmarks/time_to_accuracy.py --implementation native   # the modulator on nn.LSTM
    python benchmarks/time_to_accuracy.py -- training.lr=0.02       # any overrides after --

Prints a table and writes ``benchmarks/results/time_to_accuracy.csv`` (``--csv`` to change).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


import neuromod.modulator  # noqa: E402
from neuromod.compose import compose_config  # noqa: E402
from neuromod.run import run  # noqa: E402


def first_reaching(metrics_csv: Path, threshold: float) -> dict | None:
    """The first logged row of ``metrics.csv`` with ``eval_accuracy >= threshold`` (None: never)."""
    with open(metrics_csv, newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("eval_accuracy") not in (None, "") and float(row["eval_accuracy"]) >= threshold:
                return row
    return None


def measure(seed: int, threshold: float, threads: int | None, overrides: list[str]) -> dict:
    settings = [
        f"seed={seed}",
        f"training.stop_at_accuracy={threshold}",
        "training.progress=false",
        "analysis.figures=false",
        "skip_completed=false",
    ]
    if threads:
        settings.append(f"threads={threads}")
    cfg = compose_config(settings + overrides)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="neuromod_tta_") as folder:
        started = time.perf_counter()
        summary = run(cfg, output_dir=folder)
        total = time.perf_counter() - started
        hit = first_reaching(Path(folder) / "metrics.csv", threshold)
    return {
        "seed": seed,
        "threshold": threshold,
        "reached": hit is not None,
        "steps": int(hit["step"]) if hit else None,
        "train_wall_time_s": round(float(hit["wall_time_s"]), 2) if hit else None,
        "final_eval_accuracy": summary.get("final", {}).get("eval_accuracy"),
        "steps_run": summary.get("steps"),
        "run_wall_time_s": round(total, 2),
        "implementation": neuromod.modulator.DEFAULT_IMPLEMENTATION,
        "threads": threads or "default",
        "load_1min": round((load + os.getloadavg()[0]) / 2, 2),
        "overrides": " ".join(overrides),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threshold", type=float, default=0.99)
    parser.add_argument("--threads", type=int, default=None, help="the run's `threads` (default: config's)")
    parser.add_argument("--implementation", choices=neuromod.modulator.IMPLEMENTATIONS, default="auto")
    parser.add_argument("--csv", default=str(ROOT / "benchmarks" / "results" / "time_to_accuracy.csv"))
    parser.add_argument("overrides", nargs="*", help="config overrides (after --)")
    args = parser.parse_args(argv)
    neuromod.modulator.DEFAULT_IMPLEMENTATION = args.implementation
    rows = []
    for seed in args.seeds:
        print(
            f"seed {seed}: training until eval_accuracy >= {args.threshold} ...", file=sys.stderr, flush=True
        )
        rows.append(measure(seed, args.threshold, args.threads, list(args.overrides)))
        row = rows[-1]
        print(
            f"  reached={row['reached']} steps={row['steps']} train_wall_time_s={row['train_wall_time_s']} "
            f"(load {row['load_1min']})",
            file=sys.stderr,
            flush=True,
        )
    keys = ["seed", "reached", "steps", "train_wall_time_s", "run_wall_time_s", "implementation", "load_1min"]
    widths = [max(len(k), *(len(str(r[k])) for r in rows)) for k in keys]
    print("  ".join(k.rjust(w) for k, w in zip(keys, widths, strict=True)))
    for r in rows:
        print("  ".join(str(r[k]).rjust(w) for k, w in zip(keys, widths, strict=True)))
    path = Path(args.csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {path}", file=sys.stderr)
    return rows


if __name__ == "__main__":
    main()
