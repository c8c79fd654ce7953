"""Collecting a large sweep: N synthetic run folders, then ``collect`` on them, timed.

Each folder is what ``python main.py --multirun`` leaves: ``summary.json`` (flattened config, final
metrics, owner and heartbeat), ``metrics.csv`` and ``.hydra/`` (config.yaml, a ~4 KB hydra.yaml,
overrides.yaml), sized like the real ones. The sweep varies ``task.max_delay`` (10 values),
``architecture.hidden_size`` (5) and ``af`` (2) over seeds; about 2 % of the runs failed, 1 % are stale
(say running, silent for hours), 0.5 % never wrote a summary. Prints runs/s, wall time and peak memory.

    python benchmarks/bench_collect.py --runs 10000            # tables only (plots=false)
    python benchmarks/bench_collect.py --runs 1000 --plots     # with the figures
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import yaml

DELAYS = [5, 10, 15, 20, 25, 30, 35, 40, 45, 50]
HIDDEN = [16, 32, 64, 128, 256]
AFS = ["gain", "fixed"]
HELP = "Compose your configuration from those groups (group=option). " * 30


def _config(delay: int, hidden: int, af: str, seed: int) -> dict:
    return {
        "architecture": {
            "_target_": "neuromod.models.Additive",
            "n_neurons": 20,
            "hidden_size": hidden,
            "modulator_inputs": ["drive"],
            "drive_init_std": 1.0,
            "implementation": "auto",
        },
        "af": {"_target_": f"neuromod.activation.{af.title()}", "lag": 1, "init": {"g": 1.0, "theta": 1.0}},
        "task": {
            "_target_": "neuromod.tasks.TimePerson",
            "people": ["Laura", "Joram", "Denis", "Felix"],
            "slots": ["9am", "10am", "11am"],
            "cue_amplitude": 0.8,
            "lead": 2,
            "min_delay": 1,
            "max_delay": delay,
            "eval_delays": None,
        },
        "training": {
            "steps": 3000,
            "batch_size": 64,
            "lr": 0.01,
            "loss": "auto",
            "grad_clip": 1.0,
            "eval_every": 25,
            "stop_at_accuracy": 0.99,
            "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": "${training.lr}"},
        },
        "seed": seed,
        "device": "auto",
        "threads": 1,
    }


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _hydra(num: int, overrides: list[str], choices: dict, out_dir: Path) -> dict:
    return {
        "hydra": {
            "run": {"dir": "outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}"},
            "sweep": {"dir": str(out_dir.parent), "subdir": "${hydra.job.num}"},
            "launcher": {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"},
            "sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"},
            "help": {"app_name": "neuromod", "header": HELP, "template": HELP},
            "job_logging": {"version": 1, "formatters": {"simple": {"format": "[%(asctime)s] %(message)s"}}},
            "overrides": {"hydra": ["hydra.mode=MULTIRUN"], "task": overrides},
            "job": {"name": "main", "chdir": False, "override_dirname": ",".join(overrides), "num": num},
            "runtime": {
                "version": "1.3.8",
                "cwd": "/work",
                "output_dir": str(out_dir),
                "choices": {**choices, "hydra/launcher": "basic", "hydra/sweeper": "basic"},
            },
            "verbose": False,
        }
    }


def make_sweep(root: str | Path, n_runs: int, seed: int = 0) -> Path:
    """Write ``n_runs`` synthetic run folders ``root/0 .. root/n_runs-1``; returns ``root``."""
    root = Path(root)
    rng = random.Random(seed)
    now = time.time()
    combos = [(d, h, a) for d in DELAYS for h in HIDDEN for a in AFS]
    for num in range(n_runs):
        delay, hidden, af = combos[num % len(combos)]
        run_seed = num // len(combos)
        folder = root / str(num)
        (folder / ".hydra").mkdir(parents=True, exist_ok=True)
        tree = _config(delay, hidden, af, run_seed)
        overrides = [
            f"task.max_delay={delay}",
            f"architecture.hidden_size={hidden}",
            f"af={af}",
            f"seed={run_seed}",
        ]
        choices = {"af": af, "architecture": "additive", "task": "time_person", "training": "default"}
        (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
        hydra = _hydra(num, overrides, choices, folder)
        (folder / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra, sort_keys=False))
        (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        draw = rng.random()
        if draw < 0.005:
            continue  # killed before it wrote anything: .hydra/ only
        accuracy = min(1.0, 0.3 + 0.7 * rng.random() * (1 - delay / 100))
        rows = ["step,train_loss,eval_loss,eval_accuracy,chance_accuracy,wall_time_s"]
        rows += [
            f"{25 * i},{1 / i:.6f},{1.1 / i:.6f},{accuracy * i / 20:.6f},0.25,{i * 2.5:.3f}"
            for i in range(1, 21)
        ]
        (folder / "metrics.csv").write_text("\n".join(rows) + "\n")
        config = _flatten(tree)
        config["training.optimizer.lr"] = 0.01
        summary = {
            "status": "completed",
            "seed": run_seed,
            "steps": 500,
            "config": config,
            "host": "node-7",
            "pid": 1000 + num,
            "started_at": now - 3600,
            "updated_at": now - 3000,
            "wall_time_s": 600.0,
            "final": {
                "eval_accuracy": accuracy,
                "eval_loss": 1 - accuracy,
                "eval_accuracy_by_delay": {str(d): accuracy for d in range(1, delay + 1, 5)},
                "chance_accuracy": 0.25,
                "test_accuracy": accuracy,
                "query_swap_accuracy": 0.25,
                "reached_criterion": int(accuracy > 0.99),
            },
        }
        if draw < 0.025:
            summary.update(status="failed", error="RuntimeError: made to fail", final={})
        elif draw < 0.035:
            summary.update(status="running", updated_at=now - 7500, final={})  # silent for 2 h 5 min
        (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000, help="synthetic run folders")
    parser.add_argument("--plots", action="store_true", help="draw the figures too")
    parser.add_argument("--dir", default=None, help="where to write the sweep (default: a temporary folder)")
    args = parser.parse_args(argv)
    sys.path.append(str(Path(__file__).resolve().parents[1]))  # PYTHONPATH, if set, comes first
    from neuromod.api import collect_sweep as collect

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        started = time.perf_counter()
        sweep = make_sweep(Path(tmp) / "sweep", args.runs)
        made = time.perf_counter() - started
        started = time.perf_counter()
        result = collect(sweep, Path(tmp) / "out", progress=False, plots=args.plots, metric="test_accuracy",
                         table_metrics=["test_accuracy", "eval_accuracy"])  # fmt: skip
        wall = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{args.runs} runs ({args.runs / max(made, 1e-9):.0f} written/s): collect {wall:.2f} s, "
        f"{result.n_runs / wall:.0f} runs/s, peak memory (max RSS) {peak_mb:.0f} MB, plots={args.plots}, "
        f"{len(result.failed)} not completed"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
