"""Command line only: re-draw a saved run's figures from its files, without retraining.

    python -m neuromod.plot <run_dir> [<run_dir> ...] [--animate] [--frame-stride N]

Reads ``summary.json``, ``metrics.csv`` and ``trials.npz`` and writes ``<run_dir>/figures/``. A folder
that is not a readable run ends with a one-line error and exit status 1. The figures themselves are drawn
by the package :mod:`neuromod.plotting` (:func:`neuromod.plotting.plot_run`); nothing else lives here.
"""

from __future__ import annotations

import argparse
import logging
import sys

from neuromod.plotting import NotARunError, plot_run
from neuromod.runfolder.files import SUMMARY


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m neuromod.plot", description="Re-draw the figures of saved neuromod runs."
    )
    parser.add_argument("run_dirs", nargs="+", metavar="run_dir", help="a run folder (holds summary.json)")
    animation = parser.add_mutually_exclusive_group()
    animation.add_argument(
        "--animate", dest="animate", action="store_true", default=None,
        help="also write figures/activation_function.gif (default: the run's analysis.animate)",
    )  # fmt: skip
    animation.add_argument("--no-animate", dest="animate", action="store_false", help="no GIF")
    parser.add_argument(
        "--frame-stride", type=int, default=None, metavar="N",
        help="animation frame every N steps (default: the run's analysis.frame_stride)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.frame_stride is not None and args.frame_stride < 1:
        parser.error(f"--frame-stride must be >= 1, got {args.frame_stride}")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    status = 0
    for run_dir in args.run_dirs:
        try:
            written = plot_run(run_dir, animate=args.animate, frame_stride=args.frame_stride)
        except NotARunError as error:
            print(f"error: {error}", file=sys.stderr)
            status = 1
            continue
        except RuntimeError as error:
            print(f"error: {str(error).splitlines()[0]}", file=sys.stderr)
            status = 1
            continue
        print(f"{run_dir}: {len(written)} figures -> {', '.join(p.name for p in written)}")
        _say_if_not_finished(run_dir)
    return status


def _say_if_not_finished(run_dir: str) -> None:
    """Figures drawn from the files of an unfinished run: say whether it is still running or stale."""
    import json
    from pathlib import Path

    from neuromod.results.runs import status_text

    try:
        summary = json.loads((Path(run_dir) / SUMMARY).read_text())
    except (OSError, ValueError):
        return
    if isinstance(summary, dict) and summary.get("status") == "running":
        print(f"{run_dir}: not finished, status {status_text(summary, run_dir)}")


if __name__ == "__main__":
    sys.exit(main())
