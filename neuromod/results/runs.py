"""Reading the run folders of a sweep: one reader for collection and for hyperparameter studies.

A run folder holds ``summary.json`` (written by the run) and, when Hydra launched it, ``.hydra/``
(``config.yaml``: the composed config; ``hydra.yaml``: the job number and the config groups' choices;
``overrides.yaml``: the job's command line). Nothing is parsed out of folder names. :func:`read_run` never
raises: a folder that cannot be read becomes a record with ``status="unreadable"`` and its reason.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from neuromod import io
from neuromod.experiment.settings import flatten

log = logging.getLogger(__name__)

#: Statuses of runs whose numbers enter the tables' statistics.
COMPLETED = "completed"


@dataclass
class RunRecord:
    """What is known of one run folder.

    ``status``: the run's own (completed, failed, diverged, interrupted), ``incomplete`` (started, never
    finished: killed, or still running) or ``unreadable`` (files missing or corrupt; ``reason`` says why).
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


def _is_run_dir(folder: Path) -> bool:
    return (folder / "summary.json").exists() or (folder / ".hydra").is_dir()


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


def read_jobs(sweep_dir: str | Path) -> list[RunRecord]:
    """Hydra's job folders of a sweep (those with ``.hydra/overrides.yaml``), read and ordered by job
    number; [] when ``sweep_dir`` is not a folder."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        return []
    jobs = [d for d in find_run_dirs(sweep_dir) if (d / ".hydra" / "overrides.yaml").exists()]
    return sorted(map(read_run, jobs), key=lambda record: (record.job_num, str(record.run_dir)))


def job_config(run_dir: str | Path) -> DictConfig:
    """The job's composed config (``.hydra/config.yaml``) as written, without Hydra's node."""
    cfg = OmegaConf.load(Path(run_dir) / ".hydra" / "config.yaml")
    cfg.pop("hydra", None)
    return cfg


def read_hydra_file(run_dir: str | Path) -> DictConfig | None:
    """The job's Hydra settings (``.hydra/hydra.yaml``); None when missing or unreadable (with a warning)."""
    path = Path(run_dir) / ".hydra" / "hydra.yaml"
    if not path.exists():
        return None
    try:
        return OmegaConf.load(path)
    except Exception as error:  # the file only names the groups and the job number
        log.warning("%s: .hydra/hydra.yaml unreadable (%s)", run_dir, error)
        return None


@functools.cache
def _parser():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def parse_overrides(lines: Sequence[str]) -> list:
    """Hydra's own reading of override lines (``hydra.core.override_parser.types.Override`` objects)."""
    return _parser().parse_overrides(list(lines))


def value_key(value: Any) -> str:
    """A hashable, comparable form of a config value (lists and dicts as JSON)."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _job_num(run_dir: Path, hydra_file: DictConfig | None) -> int:
    try:
        return int(OmegaConf.select(hydra_file, "hydra.job.num"))
    except Exception:
        return int(run_dir.name) if run_dir.name.isdigit() else sys.maxsize


def _choices(run_dir: Path, hydra_file: DictConfig | None) -> dict[str, str]:
    if hydra_file is None:
        return {}
    try:
        runtime_choices = OmegaConf.select(hydra_file, "hydra.runtime.choices", default=None) or {}
        return {
            str(group): str(choice)
            for group, choice in OmegaConf.to_container(runtime_choices).items()
            if not str(group).startswith("hydra/") and choice is not None
        }
    except Exception as error:  # the choices only name the groups; the config still counts
        log.warning("%s: .hydra/hydra.yaml unreadable (%s)", run_dir, error)
        return {}


def _read_hydra_config(run_dir: Path) -> tuple[dict[str, Any], set[str]]:
    """Flattened ``.hydra/config.yaml`` (resolved where possible) and its interpolated keys."""
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
        lines = [
            str(line) for line in yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) or []
        ]
    except Exception:
        return [], set()
    try:
        return lines, {override.key_or_group for override in parse_overrides(lines)}
    except Exception:  # Hydra parsed them when it launched the job; another Hydra version may not
        return lines, set()


def read_run(run_dir: str | Path) -> RunRecord:
    """Read one run folder; never raises: problems become ``status="unreadable"`` with a ``reason``."""
    run_dir = Path(run_dir)
    record = RunRecord(run_dir=run_dir, status="unreadable")
    hydra_file = read_hydra_file(run_dir)
    record.job_num = _job_num(run_dir, hydra_file)
    record.overrides, record.overridden = _read_overrides(run_dir)
    has_summary = (run_dir / "summary.json").exists()
    has_hydra = (run_dir / ".hydra" / "config.yaml").exists()
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
            record.choices = _choices(run_dir, hydra_file)

    summary: dict[str, Any] | None = None
    if has_summary:
        try:
            summary = io.read_json(run_dir / "summary.json")
            if not isinstance(summary, dict):
                raise ValueError("not a JSON object")
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
    record.status = "incomplete" if status == "running" else status
    record.final = summary.get("final") if isinstance(summary.get("final"), dict) else {}
    record.seed = summary.get("seed", record.config.get("seed"))
    record.steps = summary.get("steps")
    record.wall_time_s = summary.get("wall_time_s")
    if status == "running":
        record.reason = f"still running or killed at step {summary.get('steps', '?')} (summary says running)"
    elif status != COMPLETED:
        record.reason = _one_line(summary.get("error") or f"status {status}")
    return record


def _flatten_summary_config(config: Any) -> dict[str, Any]:
    # summary.json stores the config already flattened; a nested one (older runs) is flattened here.
    if not isinstance(config, dict):
        return {}
    return flatten(config) if any(isinstance(v, dict) for v in config.values()) else dict(config)


def _one_line(error: Any) -> str:
    text = str(error).strip().splitlines()
    return text[0] if len(text) == 1 else " | ".join(line.strip() for line in text if line.strip())[:500]
