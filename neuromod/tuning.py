"""What a hyperparameter study leaves in its sweep folder, built from the job folders alone.

After ``python main.py -m experiment=tune_time_person`` (Optuna sweeper) the sweep folder receives:

- ``trials.csv``: one row per trial (job folder): ``trial, status, value``, one column per searched
  parameter, the run's final metrics, ``steps, wall_time_s, error, run_dir``. Built from each job's
  ``summary.json`` and ``.hydra/overrides.yaml``, so failed and diverged trials are listed too (with the
  objective's worst value, as main.py returned it to the sweeper).
- ``best_params.yaml``: the best trial as an experiment file (``# @package _global_``): its group choices
  and its complete configuration. Copied to ``config/experiment/<name>.yaml`` it is taken back by
  ``python main.py experiment=<name>``; its header also gives the equivalent override line.
- ``optimization_history.png`` (value per trial and best so far) and ``parameter_slices.png`` (value
  against each searched parameter).

:class:`WriteStudyResults` is the Hydra callback that writes them at the end of a study;
``python -m neuromod.tuning [SWEEP_DIR]`` writes them again for any sweep folder (e.g. an interrupted study).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from omegaconf import DictConfig, OmegaConf

from neuromod import io

log = logging.getLogger(__name__)

#: Final metrics copied into trials.csv beside the objective's value (when the run reports them).
METRIC_COLUMNS = ("eval_accuracy", "eval_loss", "chance_accuracy")


# --------------------------------------------------------------------------- reading the sweep folder
def _parse_overrides(lines: list[str]):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides(list(lines))


def searched_keys(config: DictConfig) -> list[str]:
    """Keys the sweeper searched: sweep entries of ``hydra.sweeper.params`` and of the command line.

    ``config`` is the multirun's config (with its ``hydra`` node). Order: sweeper params first.
    """
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    lines = [f"{key}={value}" for key, value in params.items()]
    lines += list(OmegaConf.select(config, "hydra.overrides.task", default=None) or [])
    keys: list[str] = []
    for override in _parse_overrides(lines):
        key = override.get_key_element()
        if override.is_sweep_override() and key not in keys:
            keys.append(key)
    return keys


def job_folders(sweep_dir: Path) -> list[Path]:
    """Job folders of a sweep (those with ``.hydra/overrides.yaml``), ordered by Hydra's job number."""
    folders = [p.parent.parent for p in Path(sweep_dir).glob("**/.hydra/overrides.yaml")]
    return sorted(folders, key=lambda folder: (job_number(folder), str(folder)))


def job_number(folder: Path) -> int:
    """Hydra's ``job.num`` of a job folder (its position in the sweep; Optuna's trial number)."""
    try:
        with open(folder / ".hydra" / "hydra.yaml") as handle:
            return int(yaml.safe_load(handle)["hydra"]["job"]["num"])
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return int(folder.name) if folder.name.isdigit() else sys.maxsize


def _job_overrides(folder: Path) -> list[str]:
    with open(folder / ".hydra" / "overrides.yaml") as handle:
        return [str(line) for line in yaml.safe_load(handle) or []]


def _typed(override) -> Any:
    """The value of a parsed override as Python data (``0.01`` -> float, ``gain`` -> str)."""
    value = override.value()
    return value if isinstance(value, (bool, int, float, str, type(None))) else str(value)


def _worst(objective: DictConfig | dict) -> float:
    from neuromod.experiment.objective import objective_value

    return objective_value({"status": "failed"}, OmegaConf.create(dict(objective)))


def read_trial(folder: Path, keys: list[str], objective: DictConfig | dict) -> dict[str, Any]:
    """One row of trials.csv: the job's parameters (from its overrides) and its result (from its summary).

    A job without a readable ``summary.json`` (it failed before writing one) is a ``failed`` trial.
    ``value`` is what main.py returned for it: ``objective.metric``, or the worst value if the run did not
    complete.
    """
    from neuromod.experiment.objective import objective_value

    overrides = {o.get_key_element(): _typed(o) for o in _parse_overrides(_job_overrides(folder))}
    try:
        summary = io.read_json(folder / "summary.json")
    except (OSError, ValueError):
        summary = {"status": "failed", "error": "no summary.json (the run did not start)"}
    final = summary.get("final") or {}
    row: dict[str, Any] = {
        "trial": job_number(folder),
        "status": summary.get("status", "failed"),
        "value": objective_value(summary, OmegaConf.create(dict(objective))),
    }
    row.update({key: overrides.get(key) for key in keys})
    row.update({name: final.get(name) for name in METRIC_COLUMNS if name in final})
    row.update(
        steps=summary.get("steps"),
        wall_time_s=summary.get("wall_time_s"),
        error=summary.get("error", ""),
        run_dir=str(folder),
    )
    return row


def collect_trials(sweep_dir: Path, keys: list[str], objective: DictConfig | dict) -> pd.DataFrame:
    """trials.csv as a table: one row per job folder of ``sweep_dir``, ordered by trial number."""
    rows = [read_trial(folder, keys, objective) for folder in job_folders(sweep_dir)]
    table = pd.DataFrame(rows)
    if table.empty:
        return pd.DataFrame(columns=["trial", "status", "value", *keys])
    return table


def best_row(trials: pd.DataFrame, direction: str) -> pd.Series | None:
    """The completed trial with the best finite value (the earliest on ties); None if there is none."""
    finite = trials[(trials["status"] == "completed") & trials["value"].map(_is_finite)]
    if finite.empty:
        return None
    values = finite["value"].astype(float)
    index = values.idxmax() if direction == "maximize" else values.idxmin()
    return trials.loc[index]


def _is_finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


# --------------------------------------------------------------------------- best_params.yaml
def best_params_yaml(folder: Path, row: pd.Series, keys: list[str], metric: str, direction: str) -> str:
    """The best trial (job folder ``folder``) as an experiment file that main.py takes back.

    It pins the trial's group choices (``defaults``) and its complete configuration (``.hydra/config.yaml``,
    without Hydra's node), so it reproduces the trial whatever preset or overrides produced it.
    """
    with open(folder / ".hydra" / "hydra.yaml") as handle:
        choices = yaml.safe_load(handle)["hydra"]["runtime"]["choices"]
    job_config = OmegaConf.load(folder / ".hydra" / "config.yaml")
    job_config.pop("hydra", None)
    overrides = _job_overrides(folder)
    # Group choices of the trial; the experiment itself is frozen into the values below.
    groups = {
        group: option
        for group, option in choices.items()
        if option is not None and not group.startswith("hydra") and group != "experiment"
    }
    header = [
        "# @package _global_",
        f"# Best trial of the study in {folder.parent}: trial {int(row['trial'])}, "
        f"{metric} = {float(row['value']):.6g} ({direction}), run folder {folder}.",
        "# Parameters: " + ", ".join(f"{key}={row[key]}" for key in keys),
        "#",
        "# Re-run it (same seed, same metric) with its override line:",
        "#   python main.py " + " ".join(_shell_word(line) for line in overrides),
        "# or take this file back as an experiment (longer training: add e.g. training.steps=300):",
        "#   cp best_params.yaml <repo>/config/experiment/tuned.yaml && python main.py experiment=tuned",
    ]
    # A group added with `+group=option` is not in the base defaults list: add it there, do not override it.
    added = {o.key_or_group for o in _parse_overrides(overrides) if o.is_add()}
    entries = [
        {f"{'' if group in added else 'override '}/{group}": option} for group, option in groups.items()
    ]
    body = {"defaults": entries + ["_self_"]}
    text = yaml.safe_dump(body, sort_keys=False)
    text += OmegaConf.to_yaml(job_config)
    return "\n".join(header) + "\n" + text


def _shell_word(word: str) -> str:
    """Quote an override for a POSIX shell where Hydra's syntax needs it (brackets, spaces, ...)."""
    safe = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=.,/:@%~")
    return word if set(word) <= safe else "'" + word.replace("'", "'\"'\"'") + "'"


# --------------------------------------------------------------------------- figures
def plot_history(trials: pd.DataFrame, metric: str, direction: str, path: Path) -> None:
    """Value of each trial (failed or diverged ones marked on the bottom edge) and the best so far."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    values = trials["value"].astype(float).to_numpy()
    number = trials["trial"].to_numpy()
    ok = np.isfinite(values) & (trials["status"] == "completed").to_numpy()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(number[ok], values[ok], "o", color="#3182bd", label="trial")
    if ok.any():
        best = np.where(ok, values, -np.inf if direction == "maximize" else np.inf)
        best = np.maximum.accumulate(best) if direction == "maximize" else np.minimum.accumulate(best)
        shown = np.isfinite(best)
        ax.step(number[shown], best[shown], where="post", color="#e6550d", label="best so far")
    if (~ok).any():
        low, high = ax.get_ylim()
        edge = low if direction == "maximize" else high
        ax.plot(
            number[~ok],
            np.full((~ok).sum(), edge),
            "x",
            color="#a50f15",
            clip_on=False,
            label="failed / diverged",
        )
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{metric} ({direction})")
    ax.set_title(f"Optimisation history ({len(trials)} trials)")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_slices(trials: pd.DataFrame, keys: list[str], metric: str, path: Path) -> None:
    """The value of every completed trial against each searched parameter (one panel per parameter)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    values = trials["value"].astype(float).to_numpy()
    ok = np.isfinite(values) & (trials["status"] == "completed").to_numpy()
    fig, axes = plt.subplots(1, max(len(keys), 1), figsize=(3.2 * max(len(keys), 1), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=False):  # no keys: one empty panel
        column = trials[key]
        numeric = pd.to_numeric(column, errors="coerce")
        if numeric.notna().all():
            x = numeric.to_numpy(dtype=float)
            ax.scatter(x[ok], values[ok], c=trials["trial"].to_numpy()[ok], cmap="viridis", s=25)
            positive = x[np.isfinite(x)]
            if positive.size and (positive > 0).all() and positive.max() / positive.min() > 20:
                ax.set_xscale("log")
        else:  # a categorical parameter: one column of points per option
            options = sorted(column.astype(str).unique())
            x = column.astype(str).map({name: i for i, name in enumerate(options)}).to_numpy(dtype=float)
            ax.scatter(x[ok], values[ok], c=trials["trial"].to_numpy()[ok], cmap="viridis", s=25)
            ax.set_xticks(range(len(options)), options, rotation=20, fontsize=8)
            ax.set_xlim(-0.5, len(options) - 0.5)
        ax.set_xlabel(key)
    axes[0][0].set_ylabel(metric)
    fig.suptitle("Value against each parameter (colour: trial number)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------- everything at once
def write_study_results(
    sweep_dir: Path, keys: list[str], objective: DictConfig | dict, figures: bool = True
) -> dict[str, Any]:
    """Write trials.csv, best_params.yaml and the figures into ``sweep_dir``; return what was written.

    Returns ``{"trials": DataFrame, "best": row or None, "files": [paths]}``.
    """
    sweep_dir = Path(sweep_dir)
    metric, direction = str(objective["metric"]), str(objective["direction"])
    trials = collect_trials(sweep_dir, keys, objective)
    files = [sweep_dir / "trials.csv"]
    io.write_text(files[0], trials.to_csv(index=False))
    best = best_row(trials, direction) if len(trials) else None
    if best is not None:
        files.append(sweep_dir / "best_params.yaml")
        io.write_text(files[-1], best_params_yaml(Path(best["run_dir"]), best, keys, metric, direction))
    else:
        (sweep_dir / "best_params.yaml").unlink(missing_ok=True)  # no completed trial: no best to offer
    if figures and len(trials):
        files.append(sweep_dir / "optimization_history.png")
        plot_history(trials, metric, direction, files[-1])
        if keys:
            files.append(sweep_dir / "parameter_slices.png")
            plot_slices(trials, keys, metric, files[-1])
    n_bad = int((trials["status"] != "completed").sum()) if len(trials) else 0
    log.info("%d trials (%d failed or diverged) -> %s", len(trials), n_bad, files[0])
    if best is not None:
        params = ", ".join(f"{key}={best[key]}" for key in keys)
        log.info(
            "best: trial %d, %s = %.6g (%s) -> %s", best["trial"], metric, best["value"], params, files[1]
        )
    else:
        log.warning("no trial completed: no best_params.yaml")
    return {"trials": trials, "best": best, "files": files}


try:
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover - hydra is a core dependency
    Callback = object  # type: ignore[misc,assignment]


class WriteStudyResults(Callback):
    """Hydra callback: at the end of a multirun, writes trials.csv, best_params.yaml and the figures.

    Runs in the launching process whatever the launcher. A problem here is logged, never raised: the
    trials themselves are safe in their job folders and ``python -m neuromod.tuning DIR`` redoes this.
    """

    def __init__(self, figures: bool = True):
        self.figures = figures

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if not sweep_dir.is_absolute():
            sweep_dir = Path(str(config.hydra.runtime.cwd)) / sweep_dir
        try:
            write_study_results(sweep_dir, searched_keys(config), config.objective, self.figures)
        except Exception:
            log.exception(
                "could not write the study's results (retry: python -m neuromod.tuning %s)", sweep_dir
            )


# --------------------------------------------------------------------------- command line
def _keys_from_jobs(folders: list[Path]) -> list[str]:
    """Searched keys recovered from the job folders: the sweeper's params and any override that varies."""
    keys: list[str] = []
    with open(folders[0] / ".hydra" / "hydra.yaml") as handle:
        params = (yaml.safe_load(handle)["hydra"].get("sweeper") or {}).get("params") or {}
    for override in _parse_overrides([f"{k}={v}" for k, v in params.items()]):
        if override.is_sweep_override():
            keys.append(override.get_key_element())
    seen: dict[str, set[str]] = {}
    for folder in folders:
        for line in _job_overrides(folder):
            key, _, value = line.partition("=")
            seen.setdefault(key, set()).add(value)
    keys += [key for key, values in seen.items() if len(values) > 1 and key not in keys]
    return keys


def newest_sweep(paths_file: Path = Path("multirun_paths.txt")) -> Path:
    """The newest sweep folder recorded in ``multirun_paths.txt``."""
    lines = [line.strip() for line in paths_file.read_text().splitlines() if line.strip()]
    if not lines:
        raise FileNotFoundError(f"{paths_file} lists no sweep folder")
    return Path(lines[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m neuromod.tuning",
        description="Write trials.csv, best_params.yaml and the optimisation plots of a sweep folder.",
    )
    parser.add_argument("sweep_dir", nargs="?", help="sweep folder (default: newest in multirun_paths.txt)")
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        sweep_dir = Path(args.sweep_dir) if args.sweep_dir else newest_sweep()
    except (OSError, FileNotFoundError) as error:
        print(f"Error: no sweep folder given and none found: {error}", file=sys.stderr)
        return 2
    folders = job_folders(sweep_dir)
    if not folders:
        print(f"Error: {sweep_dir} holds no job folder (no */.hydra/overrides.yaml)", file=sys.stderr)
        return 2
    objective = OmegaConf.load(folders[0] / ".hydra" / "config.yaml").get("objective")
    if objective is None:
        print(f"Error: {folders[0]}/.hydra/config.yaml has no objective section", file=sys.stderr)
        return 2
    write_study_results(sweep_dir, _keys_from_jobs(folders), objective, figures=not args.no_figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
