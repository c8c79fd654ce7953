"""What a hyperparameter study leaves in its sweep folder, built from the job folders alone.

After ``python main.py -m experiment=tune_time_person`` (Optuna sweeper) the sweep folder receives:

- ``trials.csv``: one row per trial (job folder): ``trial, status, value``, one column per searched
  parameter, the run's final metrics, ``steps, wall_time_s, error, run_dir``. Built from each job's
  ``summary.json`` and ``.hydra/overrides.yaml`` (read by :mod:`neuromod.results.runs`, as collection
  reads them), so failed and diverged trials are listed too (with the objective's worst value, as main.py
  returned it to the sweeper).
- ``best_params.yaml``: the best trial as an experiment file (``# @package _global_``): its group choices
  and its complete configuration. Copied to ``config/experiment/<name>.yaml`` it is taken back by
  ``python main.py experiment=<name>``; its header also gives the equivalent override line.
- ``optimization_history.png`` (value per trial and best so far) and ``parameter_slices.png`` (value
  against each searched parameter), drawn by :mod:`neuromod.plotting.study`.

:func:`write_study_results` writes them; :class:`neuromod.study.WriteStudyResults` is the Hydra callback
that calls it at the end of a study, and ``python -m neuromod.study [SWEEP_DIR]`` writes them again for any
sweep folder (e.g. an interrupted study).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from omegaconf import DictConfig, OmegaConf

from neuromod import io
from neuromod.results.runs import (
    COMPLETED,
    STALE,
    RunRecord,
    job_config,
    parse_overrides,
    read_hydra_file,
    read_jobs,
)
from neuromod.runfolder.objective import objective_value

log = logging.getLogger(__name__)

#: Final metrics copied into trials.csv beside the objective's value (when the run reports them): the test
#: set's, which the study never looked at, and the validation set's, which it optimised.
METRIC_COLUMNS = ("test_accuracy", "eval_accuracy", "test_loss", "eval_loss", "chance_accuracy")
#: What a trial's row says when its job wrote no readable ``summary.json``.
NO_SUMMARY = {"status": "failed", "error": "no summary.json (the run did not start)"}


# --------------------------------------------------------------------------- trials.csv
def searched_keys(config: DictConfig) -> list[str]:
    """Keys the sweeper searched: sweep entries of ``hydra.sweeper.params`` and of the command line.

    ``config`` is the multirun's config (with its ``hydra`` node). Order: sweeper params first.
    """
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    lines = [f"{key}={value}" for key, value in params.items()]
    lines += list(OmegaConf.select(config, "hydra.overrides.task", default=None) or [])
    keys: list[str] = []
    for override in parse_overrides(lines):
        key = override.get_key_element()
        if override.is_sweep_override() and key not in keys:
            keys.append(key)
    return keys


def _typed(override) -> Any:
    """The value of a parsed override as Python data (``0.01`` -> float, ``gain`` -> str)."""
    value = override.value()
    return value if isinstance(value, (bool, int, float, str, type(None))) else str(value)


def trial_row(job: RunRecord, keys: Sequence[str], objective: DictConfig | dict) -> dict[str, Any]:
    """One row of trials.csv: the job's parameters (from its overrides) and its result (from its summary).

    A job without a readable ``summary.json`` (it failed before writing one) is a ``failed`` trial.
    ``value`` is what main.py returned for it: ``objective.metric``, or the worst value if the run did not
    complete.
    """
    overrides = {o.get_key_element(): _typed(o) for o in parse_overrides(job.overrides)}
    summary = job.summary if job.summary is not None else dict(NO_SUMMARY)
    final = summary.get("final") or {}
    row: dict[str, Any] = {
        "trial": job.job_num,
        # a trial whose process died while it ran (its summary still says running) is stale
        "status": STALE if job.status == STALE else summary.get("status", "failed"),
        "value": objective_value(summary, OmegaConf.create(dict(objective))),
    }
    row.update({key: overrides.get(key) for key in keys})
    row.update({name: final.get(name) for name in METRIC_COLUMNS if name in final})
    row.update(
        steps=summary.get("steps"),
        wall_time_s=summary.get("wall_time_s"),
        error=summary.get("error", ""),
        run_dir=str(job.run_dir),
    )
    return row


def trials_table(
    jobs: Sequence[RunRecord], keys: Sequence[str], objective: DictConfig | dict
) -> pd.DataFrame:
    """trials.csv as a table: one row per job (:func:`~neuromod.results.runs.read_jobs`), in their order."""
    table = pd.DataFrame([trial_row(job, keys, objective) for job in jobs])
    if table.empty:
        return pd.DataFrame(columns=["trial", "status", "value", *keys])
    return table


def best_row(trials: pd.DataFrame, direction: str) -> pd.Series | None:
    """The completed trial with the best finite value (the earliest on ties); None if there is none."""
    finite = trials[(trials["status"] == COMPLETED) & trials["value"].map(_is_finite)]
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
def best_params_yaml(job: RunRecord, row: pd.Series, keys: Sequence[str], metric: str, direction: str) -> str:
    """The best trial (``job``, its row ``row`` of trials.csv) as an experiment file that main.py takes back.

    It pins the trial's group choices (``defaults``) and its complete configuration (``.hydra/config.yaml``,
    without Hydra's node), so it reproduces the trial whatever preset or overrides produced it.
    """
    folder = job.run_dir
    # Group choices of the trial; the experiment itself is frozen into the values below.
    groups = {
        group: option
        for group, option in job.choices.items()
        if not group.startswith("hydra") and group != "experiment"
    }
    header = [
        "# @package _global_",
        f"# Best trial of the study in {folder.parent}: trial {int(row['trial'])}, "
        f"{metric} = {float(row['value']):.6g} ({direction}), run folder {folder}.",
        "# Parameters: " + ", ".join(f"{key}={row[key]}" for key in keys),
        "#",
        "# Re-run it (same seed, same metric) with its override line:",
        "#   python main.py " + " ".join(_shell_word(line) for line in job.overrides),
        "# or take this file back as an experiment (longer training: add e.g. training.steps=300):",
        "#   cp best_params.yaml <repo>/config/experiment/tuned.yaml && python main.py experiment=tuned",
    ]
    # A group added with `+group=option` is not in the base defaults list: add it there, do not override it.
    added = {o.key_or_group for o in parse_overrides(job.overrides) if o.is_add()}
    entries = [
        {f"{'' if group in added else 'override '}/{group}": option} for group, option in groups.items()
    ]
    body = {"defaults": entries + ["_self_"]}
    text = yaml.safe_dump(body, sort_keys=False)
    text += OmegaConf.to_yaml(job_config(folder))
    return "\n".join(header) + "\n" + text


def _shell_word(word: str) -> str:
    """Quote an override for a POSIX shell where Hydra's syntax needs it (brackets, spaces, ...)."""
    safe = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=.,/:@%~")
    return word if set(word) <= safe else "'" + word.replace("'", "'\"'\"'") + "'"


# --------------------------------------------------------------------------- everything at once
def write_study_results(
    sweep_dir: Path,
    keys: list[str],
    objective: DictConfig | dict,
    draw: Callable[[pd.DataFrame, list[str], str, str, Path], list[Path]] | None = None,
) -> dict[str, Any]:
    """Write trials.csv and best_params.yaml into ``sweep_dir``, then the figures ``draw`` makes of the
    trials (``draw(trials, keys, metric, direction, sweep_dir)``, e.g.
    :func:`neuromod.plotting.study.draw_study`; None: no figures); return what was written.

    Returns ``{"trials": DataFrame, "best": row or None, "files": [paths]}``.
    """
    sweep_dir = Path(sweep_dir)
    metric, direction = str(objective["metric"]), str(objective["direction"])
    jobs = read_jobs(sweep_dir)
    trials = trials_table(jobs, keys, objective)
    files = [sweep_dir / "trials.csv"]
    io.write_text(files[0], trials.to_csv(index=False))
    best = best_row(trials, direction) if len(trials) else None
    if best is not None:
        files.append(sweep_dir / "best_params.yaml")
        # trials.csv lists the jobs in their order: the row's index is the job's.
        io.write_text(files[-1], best_params_yaml(jobs[best.name], best, keys, metric, direction))
    else:
        (sweep_dir / "best_params.yaml").unlink(missing_ok=True)  # no completed trial: no best to offer
    if draw is not None and len(trials):
        files += draw(trials, keys, metric, direction, sweep_dir)
    n_bad = int((trials["status"] != COMPLETED).sum()) if len(trials) else 0
    log.info("%d trials (%d failed or diverged) -> %s", len(trials), n_bad, files[0])
    if best is not None:
        params = ", ".join(f"{key}={best[key]}" for key in keys)
        log.info(
            "best: trial %d, %s = %.6g (%s) -> %s", best["trial"], metric, best["value"], params, files[1]
        )
    else:
        log.warning("no trial completed: no best_params.yaml")
    return {"trials": trials, "best": best, "files": files}


def keys_from_jobs(jobs: Sequence[RunRecord]) -> list[str]:
    """Searched keys recovered from the job folders: the sweeper's params and any override that varies."""
    keys: list[str] = []
    hydra_file = read_hydra_file(jobs[0].run_dir)
    params = OmegaConf.select(hydra_file, "hydra.sweeper.params", default=None) if hydra_file else None
    params = OmegaConf.to_container(params) if params else {}
    for override in parse_overrides([f"{k}={v}" for k, v in params.items()]):
        if override.is_sweep_override():
            keys.append(override.get_key_element())
    seen: dict[str, set[str]] = {}
    for job in jobs:
        for line in job.overrides:
            key, _, value = line.partition("=")
            seen.setdefault(key, set()).add(value)
    keys += [key for key, values in seen.items() if len(values) > 1 and key not in keys]
    return keys
