"""Sweep launchers against each other: the same sweep through ``main.py --multirun`` with each launcher, end
to end (start-up, training, finishing, figures), each into a sweep folder of its own; then every sweep's
runs read back (statuses) with :func:`neuromod.api.load_sweep`.

    python benchmarks/bench_sweep_launchers.py -- experiment=delay_x_hidden
    python benchmarks/bench_sweep_launchers.py --launchers ensemble,packed -- experiment=delay_x_hidden \
        threads=1
    python benchmarks/bench_sweep_launchers.py --launchers ensemble,basic -- training.steps=50 seed=0,1,2,3

Everything after ``--`` is passed to every sweep. ``--launchers``: ``hydra/launcher`` options, in the order
they run (``basic``: Hydra's default); ``--launcher-args LAUNCHER=ARG ...``: overrides for one launcher
only (``ensemble=hydra.launcher.n_jobs=2``). Prints a table with the wall time of each sweep, its runs'
statuses and the 1-minute load average before and after; the sweep folders are kept under ``--out``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load() -> float:
    return os.getloadavg()[0]


def run_sweep(launcher: str, overrides: list[str], sweep_dir: Path) -> tuple[float, int]:
    """Wall seconds and exit status of one sweep."""
    command = [
        sys.executable,
        str(ROOT / "main.py"),
        "--multirun",
        *overrides,
        f"hydra/launcher={launcher}",
        f"hydra.sweep.dir={sweep_dir}",
        f"hydra.callbacks.record_sweep_path.paths_file={sweep_dir.parent / 'multirun_paths.txt'}",
    ]
    log = sweep_dir.parent / f"{sweep_dir.name}.log"
    started = time.perf_counter()
    with open(log, "w") as out:
        status = subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT).returncode
    return time.perf_counter() - started, status


def statuses(sweep_dir: Path) -> str:
    from neuromod.api import load_sweep

    frame = load_sweep(sweep_dir)
    counts = frame["status"].value_counts().to_dict()
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--launchers", default="ensemble,packed")
    parser.add_argument("--launcher-args", nargs="*", default=[], metavar="LAUNCHER=OVERRIDE")
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_sweep_launchers"))
    parser.add_argument("overrides", nargs="*", help="after --: the sweep's overrides")
    args = parser.parse_args()
    extra: dict[str, list[str]] = {}
    for item in args.launcher_args:
        name, _, override = item.partition("=")
        extra.setdefault(name, []).append(override)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rows = []
    for launcher in args.launchers.split(","):
        sweep_dir = args.out / f"{stamp}-{launcher}"
        sweep_dir.parent.mkdir(parents=True, exist_ok=True)
        before = _load()
        seconds, status = run_sweep(launcher, [*args.overrides, *extra.get(launcher, [])], sweep_dir)
        rows.append((launcher, seconds, status, statuses(sweep_dir), before, _load(), time.strftime("%H:%M")))
    print(f"sweep: {' '.join(args.overrides)}")
    print("| launcher | wall (s) | exit | runs | load before | load after | UTC |")
    print("|---|---|---|---|---|---|---|")
    for launcher, seconds, status, runs, before, after, when in rows:
        print(f"| {launcher} | {seconds:.1f} | {status} | {runs} | {before:.1f} | {after:.1f} | {when} |")
    print(f"sweep folders and logs: {args.out}")


if __name__ == "__main__":
    main()
