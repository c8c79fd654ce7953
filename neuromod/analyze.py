"""Command line only: the population analyses of a saved run, from its checkpoint.

    python -m neuromod.analyze <run_dir> [what=decoding,state_space,...] [n_trials=256] [figures=true]

Rebuilds the network from ``<run_dir>/.hydra/config.yaml`` and ``checkpoint.pt`` (any run folder, also one
saved before the analyses existed), runs the analyses (default: all but ``fixed_points``; ``what=all`` for
every one) and writes ``analysis.json`` and the figures into the run folder. A folder without the files the
analyses need ends with one line naming what is missing and exit status 1; a bad argument with exit 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from neuromod.analysis.dynamics import CHEAP, WHAT

SETTINGS = {"what": ",".join(CHEAP), "n_trials": "256", "figures": "true", "seed": None}


class Refused(Exception):
    """A run folder the analyses cannot use, or an unusable argument (``status``: the exit status)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def parse_settings(items: list[str]) -> dict[str, object]:
    """``key=value`` arguments -> the analysis settings (``Refused`` with exit status 2 if unusable)."""
    values = dict(SETTINGS)
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in SETTINGS:
            raise Refused(f"unknown argument {item!r}: use key=value with key one of {list(SETTINGS)}", 2)
        values[key] = value
    what = WHAT if values["what"] == "all" else tuple(w for w in str(values["what"]).split(",") if w)
    unknown = [w for w in what if w not in WHAT]
    if unknown or not what:
        raise Refused(f"what={values['what']!r}: choose from {list(WHAT)} (comma-separated) or all", 2)
    try:
        n_trials = int(values["n_trials"])
        seed = None if values["seed"] is None else int(values["seed"])
    except ValueError:
        raise Refused("n_trials and seed must be integers", 2) from None
    if n_trials < 10:
        raise Refused(f"n_trials must be >= 10 (cross-validation needs trials), got {n_trials}", 2)
    figures = str(values["figures"]).lower()
    if figures not in ("true", "false"):
        raise Refused(f"figures must be true or false, got {values['figures']!r}", 2)
    return {"what": what, "n_trials": n_trials, "seed": seed, "figures": figures == "true"}


def load_network(run_dir: Path):
    """The run's task and trained network (on the CPU), rebuilt from its config and checkpoint."""
    import torch

    from neuromod.experiment.build import build
    from neuromod.results.runs import job_config
    from neuromod.validation import ConfigError

    config_path, checkpoint_path = run_dir / ".hydra" / "config.yaml", run_dir / "checkpoint.pt"
    if not run_dir.is_dir():
        raise Refused(f"{run_dir} is not a directory", 1)
    for needed, what in ((config_path, "the run's config"), (checkpoint_path, "the trained network")):
        if not needed.is_file():
            raise Refused(f"{needed} is missing: the analyses need {what}", 1)
    try:
        cfg = job_config(run_dir)
        task, _, model = build(cfg, torch.device("cpu"))
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
    except ConfigError as error:
        raise Refused(f"{config_path} cannot be built: {error}", 1) from None
    except Exception as error:  # a truncated or foreign checkpoint, a config this version cannot read
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise Refused(f"{run_dir}: the network cannot be restored ({message})", 1) from None
    return cfg, task, model


def analyse_run(run_dir: str | Path, settings: dict[str, object]) -> list[Path]:
    """Run the analyses on a saved run and write their files; returns the files written."""
    from neuromod import io
    from neuromod.analysis.dynamics import analyse, write_analysis
    from neuromod.plotting.analysis_figures import draw_analysis

    run_dir = Path(run_dir)
    cfg, task, model = load_network(run_dir)
    try:
        summary = io.read_json(run_dir / "summary.json")
    except (OSError, ValueError):
        summary = {}
    final = summary.get("final") if isinstance(summary, dict) else None
    seed = settings["seed"] if settings["seed"] is not None else int(cfg.get("seed", 0))
    results = analyse(model, task, settings["what"], settings["n_trials"], seed, final)
    written = [write_analysis(run_dir, results)]
    if settings["figures"]:
        written += draw_analysis(results, run_dir / "figures")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m neuromod.analyze",
        description="Population analyses of a saved neuromod run (decoding over time, selectivity, state "
        "space, fixed points, psychometric curves): writes analysis.json and figures into the run folder.",
        epilog=f"analyses: {', '.join(WHAT)} (default: {','.join(CHEAP)}). See docs/analysis.md.",
    )
    parser.add_argument("run_dir", help="a run folder (holds .hydra/config.yaml and checkpoint.pt)")
    parser.add_argument(
        "settings", nargs="*", metavar="key=value", help="what=..., n_trials=N, seed=N, figures=false"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        settings = parse_settings(args.settings)
        written = analyse_run(args.run_dir, settings)
    except Refused as error:
        print(f"error: {error}", file=sys.stderr)
        return error.status
    print(f"{args.run_dir}: {', '.join(p.name for p in written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
