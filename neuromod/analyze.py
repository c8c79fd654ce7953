"""Command line only: the population analyses of a saved run, from its checkpoint.

    python -m neuromod.analyze <run_dir> [what=decoding,state_space,...] [n_trials=256] [figures=true]

Rebuilds the network from ``<run_dir>/checkpoint.pt`` alone: a checkpoint carries the resolved config it was
trained with (format 2, :mod:`neuromod.runfolder.checkpoint`), so a directory holding only a copied
``checkpoint.pt`` will do. A checkpoint written before that (format 1, no config) takes the config from the
folder's ``.hydra/config.yaml``. Runs the analyses (default: all but ``fixed_points``; ``what=all`` for
every one) and writes ``analysis.json`` and the figures into the run folder. A folder without the files the
analyses need (no checkpoint; a format-1 checkpoint without ``.hydra/config.yaml``; a truncated or foreign
file) ends with one line naming the file and what is missing, exit status 1; a bad argument with exit 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from neuromod.analysis.population import CHEAP, WHAT
from neuromod.runfolder.files import FIGURES, SUMMARY

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
    """The run's config, task and trained network (on the CPU), rebuilt from its checkpoint: with the config
    stored in it, else (an older checkpoint) the folder's ``.hydra/config.yaml``."""
    import torch
    from omegaconf import OmegaConf

    from neuromod.results.runs import job_config
    from neuromod.runfolder import files
    from neuromod.runfolder.checkpoint import CheckpointError, read_checkpoint
    from neuromod.runner.build import build
    from neuromod.validation import ConfigError

    config_path, checkpoint_path = run_dir / files.HYDRA_CONFIG, run_dir / files.CHECKPOINT
    if not run_dir.is_dir():
        raise Refused(f"{run_dir} is not a directory", 1)
    if not checkpoint_path.is_file():
        raise Refused(f"{checkpoint_path} is missing: the analyses need the trained network", 1)
    try:
        stored, state = read_checkpoint(checkpoint_path, map_location="cpu")
    except CheckpointError as error:
        raise Refused(str(error), 1) from None
    except OSError as error:
        raise Refused(f"{checkpoint_path} cannot be read ({error.strerror or error})", 1) from None
    if stored is None and not config_path.is_file():
        raise Refused(
            f"{checkpoint_path} holds no config (written before checkpoints carried one) and {config_path} "
            "is missing: the analyses need the run's config; copy the run's .hydra/ folder next to it",
            1,
        )
    source = checkpoint_path if stored is not None else config_path
    try:
        cfg = OmegaConf.create(stored) if stored is not None else job_config(run_dir)
        task, model = build(cfg, torch.device("cpu"))
        model.load_state_dict(state["model"])
    except ConfigError as error:
        raise Refused(f"the config of {source} cannot be built: {error}", 1) from None
    except Exception as error:  # a network that does not fit its config, a config this version cannot read
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise Refused(f"{run_dir}: the network cannot be restored ({message})", 1) from None
    return cfg, task, model


def analyse_run(run_dir: str | Path, settings: dict[str, object]) -> list[Path]:
    """Run the analyses on a saved run and write their files; returns the files written."""
    from neuromod import io
    from neuromod.analysis.population import population_analyses, write_analysis
    from neuromod.plotting.analysis_figures import draw_analysis

    run_dir = Path(run_dir)
    cfg, task, model = load_network(run_dir)
    try:
        summary = io.read_json(run_dir / SUMMARY)
    except (OSError, ValueError):
        summary = {}
    final = summary.get("final") if isinstance(summary, dict) else None
    seed = settings["seed"] if settings["seed"] is not None else int(cfg.get("seed", 0))
    results = population_analyses(model, task, settings["what"], settings["n_trials"], seed, final)
    written = [write_analysis(run_dir, results)]
    if settings["figures"]:
        written += draw_analysis(results, run_dir / FIGURES)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m neuromod.analyze",
        description="Population analyses of a saved neuromod run (decoding over time, selectivity, state "
        "space, fixed points, psychometric curves): rebuilds the network from checkpoint.pt alone and writes "
        "analysis.json and figures into its folder.",
        epilog=f"analyses: {', '.join(WHAT)} (default: {','.join(CHEAP)}). See docs/analysis.md.",
    )
    parser.add_argument(
        "run_dir",
        help="a run folder, or any directory holding a checkpoint.pt (one written before checkpoints carried "
        "their config also needs the run's .hydra/config.yaml)",
    )
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
