"""Reading the run folders of a sweep: one reader for collection and for hyperparameter studies.

A run folder holds ``summary.json`` (written by the run) and, when Hydra launched it, ``.hydra/``
(``config.yaml``: the composed config; ``hydra.yaml``: the job number and the config groups' choices;
``overrides.yaml``: the job's command line). Nothing is parsed out of folder names. :func:`read_run` never
raises: a folder that cannot be read becomes a record with ``status="unreadable"`` and its reason.

The ``.hydra/`` files are read with libyaml (:mod:`neuromod.results.hydra_files`), not OmegaConf: a sweep
of thousands of runs is read in seconds. A run whose summary says ``running`` but whose process is gone or
silent (:func:`neuromod.runfolder.liveness.staleness`) is reported as ``stale``.
"""

from __future__ import annotations

import csv
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from omegaconf import DictConfig, OmegaConf

from neuromod.results import hydra_files
from neuromod.results.hydra_files import parse_overrides
from neuromod.runfolder.files import (
    HYDRA_CONFIG,
    HYDRA_DIR,
    HYDRA_OVERRIDES,
    HYDRA_SETTINGS,
    SUMMARY,
)
from neuromod.runfolder.folder import RunFolder
from neuromod.runfolder.liveness import STALE_AFTER_S, staleness
from neuromod.runfolder.settings import flatten

__all__ = [
    "COMPLETED",
    "STALE",
    "RunRecord",
    "find_run_dirs",
    "job_config",
    "parse_overrides",
    "read_hydra_file",
    "read_jobs",
    "read_metrics",
    "read_run",
    "silence_text",
    "stale_reason",
    "status_text",
    "value_key",
]

log = logging.getLogger(__name__)

#: Statuses of runs whose numbers enter the tables' statistics.
COMPLETED = "completed"
#: Status of a run whose summary says ``running`` but whose process is gone or silent.
STALE = "stale"


@dataclass
class RunRecord:
    """What is known of one run folder.

    ``status``: the run's own (completed, failed, diverged, interrupted; running: alive), ``stale`` (says
    running, but its process is gone or silent: killed), ``incomplete`` (no summary.json: never started)
    or ``unreadable`` (files missing or corrupt; ``reason`` says why).
    ``config``: flattened dotted keys -> values, with the config groups' choices (``af``, ``architecture``,
    ...) as extra keys. ``derived``: keys whose value is an interpolation of other keys.
    """

    run_dir: Path
    status: str
    reason: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    derived: set[str] = field(default_factory=set)
    #: The config groups' choices (``.hydra/hydra.yaml``, Hydra's own groups left out).
    choices: dict[str, str] = field(default_factory=dict)
    #: The job's command line (``.hydra/overrides.yaml``), line by line as written.
    overrides: list[str] = field(default_factory=list)
    #: Keys set on the command line of this job (``+lr=1`` -> ``lr``): what the sweep varied.
    overridden: set[str] = field(default_factory=set)
    #: Hydra's ``job.num`` (its position in the sweep; Optuna's trial number); else the folder's number.
    job_num: int = sys.maxsize
    #: ``summary.json`` as the run wrote it; None when it is missing or unreadable.
    summary: dict[str, Any] | None = None
    final: dict[str, Any] = field(default_factory=dict)
    seed: Any = None
    steps: Any = None
    wall_time_s: Any = None
    notes: list[str] = field(default_factory=list)
    #: The scalar figures of the population analyses (``analysis.json``'s ``scalars``), when it exists.
    analysis: dict[str, Any] = field(default_factory=dict)


def _is_run_dir(folder: Path) -> bool:
    return (folder / SUMMARY).exists() or (folder / HYDRA_DIR).is_dir()


def find_run_dirs(sweep_dir: str | Path) -> list[Path]:
    """Candidate run folders below ``sweep_dir`` in a stable order (Hydra's job numbers numerically).

    A folder holding ``summary.json`` or ``.hydra/`` is a run; a folder holding neither is searched for
    runs below it (custom ``hydra.sweep.subdir`` patterns nest), and returned itself when it holds none,
    so that it is reported as "not a run folder". Hidden folders (``.submitit``, ``.hydra``) are skipped.
    """
    sweep_dir = Path(sweep_dir)

    def key(p: Path):
        return (0, int(p.name), "") if p.name.isdigit() else (1, 0, p.name)

    found: list[Path] = []
    for child in sorted((c for c in sweep_dir.iterdir() if c.is_dir()), key=key):
        if child.name.startswith("."):
            continue
        if _is_run_dir(child):
            found.append(child)
            continue
        below = find_run_dirs(child)
        found.extend(below if below else [child])
    return found


def read_jobs(sweep_dir: str | Path, stale_after_s: float = STALE_AFTER_S) -> list[RunRecord]:
    """Hydra's job folders of a sweep (those with ``.hydra/overrides.yaml``), read and ordered by job
    number; [] when ``sweep_dir`` is not a folder."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        return []
    jobs = [d for d in find_run_dirs(sweep_dir) if (d / HYDRA_OVERRIDES).exists()]
    records = [read_run(d, stale_after_s=stale_after_s) for d in jobs]
    return sorted(records, key=lambda record: (record.job_num, str(record.run_dir)))


def read_metrics(path: Path) -> dict[str, np.ndarray]:
    """``metrics.csv`` -> column name -> float array (empty cells are NaN)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return {}
    columns: dict[str, np.ndarray] = {}
    for key in rows[0]:
        try:
            columns[key] = np.array([float(r[key]) if r[key] not in ("", None) else np.nan for r in rows])
        except (TypeError, ValueError):
            continue  # a non-numeric column is not plotted
    if "step" not in columns:
        raise ValueError("no numeric 'step' column")
    return columns


def job_config(run_dir: str | Path) -> DictConfig:
    """The job's composed config (``.hydra/config.yaml``) as written, without Hydra's node."""
    cfg = OmegaConf.load(Path(run_dir) / HYDRA_CONFIG)
    cfg.pop("hydra", None)
    return cfg


def read_hydra_file(run_dir: str | Path) -> DictConfig | None:
    """The job's Hydra settings (``.hydra/hydra.yaml``); None when missing or unreadable (with a warning)."""
    path = Path(run_dir) / HYDRA_SETTINGS
    if not path.exists():
        return None
    try:
        return OmegaConf.load(path)
    except Exception as error:  # the file only names the groups and the job number
        log.warning("%s: .hydra/hydra.yaml unreadable (%s)", run_dir, error)
        return None


def value_key(value: Any) -> str:
    """A hashable, comparable form of a config value (lists and dicts as JSON)."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _hydra_settings(run_dir: Path) -> tuple[int, dict[str, str]]:
    """The job number (else the folder's number) and the groups' choices of ``.hydra/hydra.yaml``."""
    num: Any = None
    choices: dict[str, str] = {}
    path = run_dir / HYDRA_SETTINGS
    if path.exists():
        try:
            num, choices = hydra_files.hydra_settings(path)
        except Exception as error:  # the file only names the groups and the job number
            log.warning("%s: .hydra/hydra.yaml unreadable (%s)", run_dir, error)
    try:
        return int(num), choices
    except (TypeError, ValueError):
        return (int(run_dir.name) if run_dir.name.isdigit() else sys.maxsize), choices


def _read_hydra_config(run_dir: Path) -> tuple[dict[str, Any], set[str]]:
    """Flattened ``.hydra/config.yaml`` (resolved where possible) and its interpolated keys."""
    try:
        fast = hydra_files.job_values(run_dir / HYDRA_CONFIG)
    except Exception:  # OmegaConf reads it again below, and words the error as it always has
        fast = None
    if fast is not None:
        return fast
    cfg = job_config(run_dir)
    raw = flatten(OmegaConf.to_container(cfg, resolve=False))
    derived = {k for k, v in raw.items() if isinstance(v, str) and "${" in v}
    try:
        values = flatten(OmegaConf.to_container(cfg, resolve=True))
    except Exception:  # a resolver only Hydra knows (${hydra:...}, ${now:...}): keep the text
        values = raw
    return values, derived


def _read_overrides(run_dir: Path) -> tuple[list[str], set[str]]:
    """The job's override lines and the keys they set; empty if ``overrides.yaml`` is missing or bad."""
    try:
        # Plain YAML: the lines are Hydra's syntax, not OmegaConf's (no interpolation is resolved here).
        text = (run_dir / HYDRA_OVERRIDES).read_text()
        lines = [str(line) for line in yaml.load(text, Loader=hydra_files.PlainYamlLoader) or []]
    except Exception:
        return [], set()
    try:
        return lines, hydra_files.overridden_keys(lines)
    except Exception:  # Hydra parsed them when it launched the job; another Hydra version may not
        return lines, set()


def read_run(
    run_dir: str | Path, stale_after_s: float = STALE_AFTER_S, now: float | None = None
) -> RunRecord:
    """Read one run folder; never raises: problems become ``status="unreadable"`` with a ``reason``.

    A summary saying ``running`` is ``stale`` when its process is gone (on this host) or it has been
    silent for more than ``stale_after_s`` seconds before ``now`` (default: the time of the call).
    """
    run_dir = Path(run_dir)
    folder = RunFolder(run_dir, create=False)
    record = RunRecord(run_dir=run_dir, status="unreadable")
    record.job_num, choices = _hydra_settings(run_dir)
    record.overrides, record.overridden = _read_overrides(run_dir)
    has_summary = (run_dir / SUMMARY).exists()
    has_hydra = (run_dir / HYDRA_CONFIG).exists()
    if not has_summary and not has_hydra:
        record.reason = "not a run folder (no summary.json, no .hydra/config.yaml)"
        return record

    hydra_values: dict[str, Any] = {}
    if has_hydra:
        try:
            hydra_values, record.derived = _read_hydra_config(run_dir)
        except Exception as error:
            record.notes.append(f".hydra/config.yaml unreadable: {_one_line(error)}")
        else:
            record.choices = choices

    summary: dict[str, Any] | None = None
    if has_summary:
        try:
            summary = folder.read_summary()
        except (OSError, ValueError) as error:
            record.reason = f"summary.json unreadable: {_one_line(error)}"
            summary = None
    record.summary = summary

    # The run's own record of its config wins: a re-launched sweep rewrites .hydra/ of skipped runs.
    own = _flatten_summary_config(summary.get("config")) if summary else {}
    if own and hydra_values:
        differing = sorted(
            k for k in own if k in hydra_values and value_key(own[k]) != value_key(hydra_values[k])
        )
        if differing:
            record.notes.append(
                ".hydra/config.yaml differs from summary.json (re-launched with other settings?) in "
                + ", ".join(differing[:5])
            )
    values = {**hydra_values, **own}
    if not values:
        record.reason = record.reason or "no config (.hydra/config.yaml and summary.json lack one)"
        if record.notes:
            record.reason += "; " + "; ".join(record.notes)
        return record
    record.config = {**values, **{g: choice for g, choice in record.choices.items() if g not in values}}

    if summary is None:
        if record.reason is None:
            record.status = "incomplete"
            record.reason = "no summary.json: the job never started training (killed or crashed first)"
        record.seed = record.config.get("seed")
        return record
    status = summary.get("status")
    if not isinstance(status, str):
        record.reason = "summary.json has no status"
        return record
    record.status = status
    record.final = summary.get("final") if isinstance(summary.get("final"), dict) else {}
    record.seed = summary.get("seed", record.config.get("seed"))
    record.steps = summary.get("steps")
    record.wall_time_s = summary.get("wall_time_s")
    record.analysis = _read_analysis(folder, record.notes)
    if status == "running":
        silent = _staleness(summary, run_dir, stale_after_s, now)
        if silent is None:
            record.reason = f"still running at step {summary.get('steps', '?')}"
        else:
            record.status = STALE
            record.reason = stale_reason(summary, silent)
    elif status != COMPLETED:
        record.reason = _one_line(summary.get("error") or f"status {status}")
    return record


def _read_analysis(folder: RunFolder, notes: list[str]) -> dict[str, Any]:
    """The scalars of ``analysis.json`` ({} when there is none; a note when it cannot be read)."""
    try:
        return folder.read_analysis_scalars() or {}
    except (OSError, ValueError) as error:
        notes.append(f"analysis.json unreadable: {_one_line(error)}")
        return {}


def _flatten_summary_config(config: Any) -> dict[str, Any]:
    # summary.json stores the config already flattened; a nested one (older runs) is flattened here.
    if not isinstance(config, dict):
        return {}
    return flatten(config) if any(isinstance(v, dict) for v in config.values()) else dict(config)


def _one_line(error: Any) -> str:
    text = str(error).strip().splitlines()
    return text[0] if len(text) == 1 else " | ".join(line.strip() for line in text if line.strip())[:500]


def status_text(
    summary: dict[str, Any],
    run_dir: str | Path,
    stale_after_s: float = STALE_AFTER_S,
    now: float | None = None,
) -> str:
    """A run's status in words: its summary's ``status``, or for a stale running run
    ``stale: silent for 2 h 5 min (host h, pid 123)`` (``python -m neuromod.plot``)."""
    status = str(summary.get("status"))
    if status == "running":
        silent = _staleness(summary, Path(run_dir), stale_after_s, now)
        if silent is not None:
            return stale_reason(summary, silent)
    return status


def _staleness(
    summary: dict[str, Any], run_dir: Path, stale_after_s: float, now: float | None
) -> float | None:
    try:  # a summary without a heartbeat: the file's own time tells when it was last written
        modified = (run_dir / SUMMARY).stat().st_mtime
    except OSError:
        modified = None
    return staleness(
        summary, now=time.time() if now is None else now, stale_after_s=stale_after_s, last_modified=modified
    )


def silence_text(seconds: float) -> str:
    """A duration for people: ``40 s``, ``12 min``, ``2 h 5 min``, ``3 d 4 h``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours == 0:
        return f"{minutes} min"
    if days == 0:
        return f"{hours} h {minutes % 60} min" if minutes % 60 else f"{hours} h"
    return f"{days} d {hours % 24} h" if hours % 24 else f"{days} d"


def stale_reason(summary: dict[str, Any], silent: float) -> str:
    """``stale: silent for 2 h 5 min (host h, pid 123)``: a run that says running but is not."""
    owner = ", ".join(f"{key} {summary[key]}" for key in ("host", "pid") if summary.get(key) is not None)
    step = summary.get("steps")
    where = f" at step {step}" if step is not None else ""
    return f"stale: silent for {silence_text(silent)}{where}" + (f" ({owner})" if owner else "")
