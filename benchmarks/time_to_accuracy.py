"""Time to accuracy: wall time and training steps until the default experiment first reaches
``eval_accuracy >= 0.99``.

Runs ``neuromod.runner.run.run`` (exactly what ``python main.py`` does, without figures) with
``training.stop_at_accuracy`` set, once per seed, into a temporary folder, and reads the run's
``metrics.csv``: the first evaluated row at or above the threshold gives the step and ``wall_time_s``
(training and evaluation time so far, start-up excluded).

    python benchmarks/time_to_accuracy.py                       # neuromod's defaults, seed 0
    python benchmarks/time_to_accuracy.py --seeds 0 1 2 --threads 1
    python benchmarks/time_to_accuracy.py -- architecture.implementation=native   # on nn.LSTM
    python benchmarks/time_to_accuracy.py -- training.lr=0.02       # any overrides after --

Prints a table and writes ``benchmarks/results/time_to_accuracy.csv`` (``--csv`` to change) and, next to
it, ``time_to_accuracy.png``: evaluation accuracy against training wall time and against steps, one line
per seed, the threshold and each seed's first evaluation at it marked.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

from omegaconf import OmegaConf

from neuromod.compose import compose_config
from neuromod.runner.run import run

ROOT = Path(__file__).resolve().parents[1]


def read_curve(metrics_csv: Path) -> list[dict]:
    """The evaluated rows of ``metrics.csv``: step, wall_time_s and eval_accuracy as numbers."""
    with open(metrics_csv, newline="") as handle:
        return [
            {"step": int(row["step"]), "wall_time_s": float(row["wall_time_s"]), "eval_accuracy": float(acc)}
            for row in csv.DictReader(handle)
            if (acc := row.get("eval_accuracy")) not in (None, "")
        ]


def first_reaching(curve: list[dict], threshold: float) -> dict | None:
    """The first evaluated row with ``eval_accuracy >= threshold`` (None: never)."""
    return next((row for row in curve if row["eval_accuracy"] >= threshold), None)


def measure(
    seed: int, threshold: float, threads: int | None, overrides: list[str]
) -> tuple[dict, list[dict]]:
    """One run until ``threshold``: its row of the table, and its evaluated rows (:func:`read_curve`)."""
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
        curve = read_curve(Path(folder) / "metrics.csv")
    hit = first_reaching(curve, threshold)
    row = {
        "seed": seed,
        "threshold": threshold,
        "reached": hit is not None,
        "steps": int(hit["step"]) if hit else None,
        "train_wall_time_s": round(float(hit["wall_time_s"]), 2) if hit else None,
        "final_eval_accuracy": summary.get("final", {}).get("eval_accuracy"),
        "steps_run": summary.get("steps"),
        "run_wall_time_s": round(total, 2),
        # the architecture's execution setting (the controls have none)
        "implementation": OmegaConf.select(cfg, "architecture.implementation", default="-"),
        "threads": threads or "default",
        "load_1min": round((load + os.getloadavg()[0]) / 2, 2),
        "overrides": " ".join(overrides),
    }
    return row, curve


def plot(rows: list[dict], curves: list[list[dict]], threshold: float, path: Path) -> Path:
    """Evaluation accuracy against training wall time and against steps, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for i, (row, curve) in enumerate(zip(rows, curves, strict=True)):
        for ax, x_key in zip(axes, ("wall_time_s", "step"), strict=True):
            ax.plot([c[x_key] for c in curve], [c["eval_accuracy"] for c in curve], marker="o", ms=3,
                    color=f"C{i}", label=f"seed {row['seed']}")  # fmt: skip
            hit = first_reaching(curve, threshold)
            if hit is not None:
                ax.plot(hit[x_key], hit["eval_accuracy"], marker="*", ms=12, color=f"C{i}")
    for ax, label in zip(axes, ("training wall time (s)", "training step"), strict=True):
        ax.axhline(threshold, color="grey", ls="--", lw=1, label=f"threshold {threshold}")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("evaluation accuracy")
    axes[0].set_ylim(-0.02, 1.02)
    axes[1].legend(loc="lower right")
    reached = [r["train_wall_time_s"] for r in rows if r["reached"]]
    summary = f"{len(reached)} of {len(rows)} seeds reached it"
    if reached:
        summary += f", after {min(reached):.1f}-{max(reached):.1f} s of training"
    fig.suptitle(f"Time to evaluation accuracy >= {threshold} ({summary}; star: first evaluation at it)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threshold", type=float, default=0.99)
    parser.add_argument("--threads", type=int, default=None, help="the run's `threads` (default: config's)")
    parser.add_argument("--csv", default=str(ROOT / "benchmarks" / "results" / "time_to_accuracy.csv"))
    parser.add_argument("overrides", nargs="*", help="config overrides (after --)")
    args = parser.parse_args(argv)
    rows, curves = [], []
    for seed in args.seeds:
        print(
            f"seed {seed}: training until eval_accuracy >= {args.threshold} ...", file=sys.stderr, flush=True
        )
        row, curve = measure(seed, args.threshold, args.threads, list(args.overrides))
        rows.append(row)
        curves.append(curve)
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
    figure = plot(rows, curves, args.threshold, path.with_suffix(".png"))
    print(f"wrote {path} and {figure}", file=sys.stderr)
    return rows


if __name__ == "__main__":
    main()
