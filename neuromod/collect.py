"""Collect a sweep: every run folder's ``summary.json`` and ``.hydra/`` -> tables, LaTeX and plots.

Nothing is parsed out of folder names: a run's parameters come from the config it recorded, and the
parameters that vary across the sweep are found by comparing those configs. A folder that cannot be read
(truncated JSON, missing files, a folder that is not a run) becomes a row of ``failed_runs.csv`` with its
reason, never an exception. Entry point: :func:`collect`; ``collect_results.py`` is its command line.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import OmegaConf

from neuromod import io, latex
from neuromod.callbacks import read_sweep_paths
from neuromod.experiment.settings import EXECUTION_KEYS, flatten

log = logging.getLogger(__name__)

#: Parameters drawn on the x axis first, when they vary (the project's headline sweep).
DELAY_KEYS = ("task.max_delay", "task.min_delay", "task.delay")
HIDDEN_KEYS = ("architecture.hidden_size", "architecture.n_neurons")
#: Short names for file names and titles.
SHORT_NAMES = {
    "task.max_delay": "delay",
    "task.min_delay": "min_delay",
    "architecture.hidden_size": "hidden_size",
    "architecture.n_neurons": "n_neurons",
    "training.lr": "lr",
}
#: Keys that change how a run is executed, not what it computes; never treated as swept parameters.
DEFAULT_IGNORED = EXECUTION_KEYS
#: Statuses of runs whose numbers enter the tables' statistics.
COMPLETED = "completed"


class CollectionError(ValueError):
    """The sweep to collect cannot be found (bad ``path``/``dir``, no ``multirun_paths.txt``)."""


# --------------------------------------------------------------------------------------------- finding


def resolve_sweep_dir(
    path: int | None = 0,
    dir: str | Path | None = None,
    paths_file: str | Path = "multirun_paths.txt",
    base_dir: str | Path | None = None,
) -> Path:
    """The sweep folder to collect: ``dir`` if given, else line ``path`` from the end of ``paths_file``.

    ``path=0`` is the newest sweep (last line), ``path=1`` the one before, ... Relative ``dir`` and
    ``paths_file`` are taken from ``base_dir`` (default: the current directory). Raises
    :class:`CollectionError` with a one-line message when the index is out of range or a folder is missing.
    """
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    if dir is not None and str(dir) != "":
        folder = Path(dir).expanduser()
        folder = folder if folder.is_absolute() else base / folder
        if not folder.is_dir():
            raise CollectionError(f"dir={dir}: no such folder ({folder})")
        return folder
    paths_file = Path(paths_file)
    paths_file = paths_file if paths_file.is_absolute() else base / paths_file
    try:
        index = int(path)
    except (TypeError, ValueError):
        raise CollectionError(f"path={path!r}: expected an integer >= 0 (0 = newest sweep)") from None
    lines = read_sweep_paths(paths_file)
    if not lines:
        raise CollectionError(
            f"no sweep recorded in {paths_file}: run `python main.py --multirun ...` first, "
            "or pass dir=FOLDER"
        )
    if not 0 <= index < len(lines):
        raise CollectionError(
            f"path={index}: {paths_file} lists {len(lines)} sweep(s), so path must be in 0..{len(lines) - 1}"
        )
    folder = Path(lines[-1 - index])
    if not folder.is_dir():
        raise CollectionError(
            f"path={index}: the sweep folder {folder} listed in {paths_file} does not exist"
        )
    return folder


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


# --------------------------------------------------------------------------------------------- reading


@dataclass
class RunRecord:
    """What collection knows of one run folder.

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
    #: Keys set on the command line of this job (``.hydra/overrides.yaml``): what the sweep varied.
    overridden: set[str] = field(default_factory=set)
    final: dict[str, Any] = field(default_factory=dict)
    seed: Any = None
    steps: Any = None
    wall_time_s: Any = None
    notes: list[str] = field(default_factory=list)


def _read_hydra_config(run_dir: Path) -> tuple[dict[str, Any], set[str], dict[str, str]]:
    """Flattened ``.hydra/config.yaml`` (resolved where possible), its interpolated keys, group choices."""
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    raw = flatten(OmegaConf.to_container(cfg, resolve=False))
    derived = {k for k, v in raw.items() if isinstance(v, str) and "${" in v}
    try:
        values = flatten(OmegaConf.to_container(cfg, resolve=True))
    except Exception:  # a resolver only Hydra knows (${hydra:...}, ${now:...}): keep the text
        values = raw
    choices: dict[str, str] = {}
    hydra_file = run_dir / ".hydra" / "hydra.yaml"
    if hydra_file.exists():
        try:
            hydra_cfg = OmegaConf.load(hydra_file)
            runtime_choices = OmegaConf.select(hydra_cfg, "hydra.runtime.choices", default=None) or {}
            choices = {
                str(group): str(choice)
                for group, choice in OmegaConf.to_container(runtime_choices).items()
                if not str(group).startswith("hydra/") and choice is not None
            }
        except Exception as error:  # the choices only name the groups; the config still counts
            log.warning("%s: .hydra/hydra.yaml unreadable (%s)", run_dir, error)
    return values, derived, choices


def _overridden_keys(run_dir: Path) -> set[str]:
    """Keys named in the job's ``.hydra/overrides.yaml`` (``+lr=1`` -> ``lr``); empty if unreadable."""
    try:
        overrides = OmegaConf.to_container(OmegaConf.load(run_dir / ".hydra" / "overrides.yaml"))
    except Exception:
        return set()
    keys = set()
    for item in overrides or []:
        key = str(item).split("=", 1)[0].lstrip("+~")
        keys.add(key.split("@", 1)[0])
    return keys


def read_run(run_dir: str | Path) -> RunRecord:
    """Read one run folder; never raises: problems become ``status="unreadable"`` with a ``reason``."""
    run_dir = Path(run_dir)
    record = RunRecord(run_dir=run_dir, status="unreadable")
    has_summary = (run_dir / "summary.json").exists()
    has_hydra = (run_dir / ".hydra" / "config.yaml").exists()
    if not has_summary and not has_hydra:
        record.reason = "not a run folder (no summary.json, no .hydra/config.yaml)"
        return record

    hydra_values: dict[str, Any] = {}
    choices: dict[str, str] = {}
    if has_hydra:
        try:
            hydra_values, record.derived, choices = _read_hydra_config(run_dir)
        except Exception as error:
            record.notes.append(f".hydra/config.yaml unreadable: {_one_line(error)}")
        record.overridden = _overridden_keys(run_dir)

    summary: dict[str, Any] | None = None
    if has_summary:
        try:
            summary = io.read_json(run_dir / "summary.json")
            if not isinstance(summary, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as error:
            record.reason = f"summary.json unreadable: {_one_line(error)}"
            summary = None

    # The run's own record of its config wins: a re-launched sweep rewrites .hydra/ of skipped runs.
    own = _flatten_summary_config(summary.get("config")) if summary else {}
    if own and hydra_values:
        differing = sorted(k for k in own if k in hydra_values and _key(own[k]) != _key(hydra_values[k]))
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
    record.config = {**values, **{group: choice for group, choice in choices.items() if group not in values}}

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


def _key(value: Any) -> str:
    """A hashable, comparable form of a config value (lists and dicts as JSON)."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _display(value: Any) -> Any:
    """A config value as a table cell: scalars as they are, lists as text."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str)
    return value


# --------------------------------------------------------------------------------------------- analysing


def varying_parameters(records: Sequence[RunRecord], ignore: Iterable[str] = DEFAULT_IGNORED) -> list[str]:
    """Config keys whose values differ between runs (``seed`` included), most telling first.

    Left out: ``ignore`` (and anything below an ignored prefix ending in ``.``); keys that are
    interpolations of other keys (``training.optimizer.lr: ${training.lr}``); keys that only differ
    because a config group's choice differs (``architecture.n_neurons`` when ``architecture`` varies);
    and a key whose values map one to one onto a more telling varying key's (the latter is kept).
    """
    ignore = tuple(ignore)
    configs = [r.config for r in records if r.config]
    if len(configs) < 2:
        return []
    keys = sorted({k for c in configs for k in c})
    missing = object()
    varying = []
    for key in keys:
        if key in ignore or any(key.startswith(p.rstrip(".") + ".") for p in ignore):
            continue
        if len({_key(c.get(key, missing)) for c in configs}) > 1:
            varying.append(key)
    derived = set().union(*(r.derived for r in records)) if records else set()
    varying = [k for k in varying if k not in derived or k == "seed"]

    groups = [k for k in varying if "." not in k and not isinstance(configs[0].get(k), (int, float))]
    explained = set()
    for key in varying:
        group = key.split(".", 1)[0]
        if "." in key and group in groups:
            # Constant within each choice of the group: its variation is the group's.
            per_choice: dict[str, set[str]] = {}
            for c in configs:
                per_choice.setdefault(_key(c.get(group)), set()).add(_key(c.get(key, missing)))
            if all(len(v) == 1 for v in per_choice.values()):
                explained.add(key)
    varying = [k for k in varying if k not in explained]

    # A key in one-to-one correspondence with a key already kept adds no grouping (``task.eval_delays``
    # set along with ``task.max_delay``, an interpolation that summary.json stores resolved) -- unless
    # the sweep set it itself: two continuous parameters searched by a tuner are unique per trial, so
    # they always map one to one, and both are parameters of the study.
    # Only numbers count as searched this way: a list set along with a scalar (the eval delays of a
    # delay sweep) still describes the scalar.
    swept = set().union(*(r.overridden for r in records)) if records else set()
    searched = {
        k
        for k in varying
        if k in swept
        and all(isinstance(c.get(k), (int, float)) and not isinstance(c.get(k), bool) for c in configs)
    }
    kept: dict[str, list[str]] = {}
    for key in sorted(varying, key=lambda k: (k not in searched, _priority(k), len(k), k)):
        column = [_key(c.get(key, missing)) for c in configs]
        others = [other for name, other in kept.items() if name != "seed"]
        if key != "seed" and key not in searched and any(_one_to_one(column, other) for other in others):
            continue
        kept[key] = column
    return sorted(kept, key=_priority)


def _one_to_one(a: Sequence[str], b: Sequence[str]) -> bool:
    pairs = set(zip(a, b, strict=True))
    return len(pairs) == len(set(a)) == len(set(b))


def _priority(key: str) -> tuple[int, str]:
    if key in DELAY_KEYS:
        return (0, f"{DELAY_KEYS.index(key)}")
    if key in HIDDEN_KEYS:
        return (1, f"{HIDDEN_KEYS.index(key)}")
    if key == "seed":
        return (9, key)
    if "." not in key:  # a config group's choice: af, architecture, task
        return (2, key)
    return (3, key)


def _scalar_metrics(final: dict[str, Any]) -> dict[str, Any]:
    """Final metrics as flat columns: numbers as they are, per-delay dicts as ``name.<delay>``."""
    out: dict[str, Any] = {}
    for name, value in flatten(final).items():
        if isinstance(value, bool):
            out[name] = float(value)
        elif isinstance(value, (int, float)) or value is None:
            out[name] = value
    return out


def _sort_delay_columns(columns: list[str]) -> list[str]:
    def key(name: str):
        head, _, tail = name.rpartition(".")
        try:
            return (head, float(tail), "")
        except ValueError:
            return (name, -math.inf, name)

    plain = [c for c in columns if "." not in c]
    nested = sorted((c for c in columns if "." in c), key=key)
    return plain + nested


def results_table(records: Sequence[RunRecord], params: Sequence[str], sweep_dir: Path) -> pd.DataFrame:
    """One row per run whose config is known: run, varying parameters, seed, status, final metrics."""
    rows, metric_names = [], []
    swept = [p for p in params if p != "seed"]
    for r in records:
        if not r.config:
            continue
        metrics = _scalar_metrics(r.final)
        metric_names += [m for m in metrics if m not in metric_names]
        rows.append(
            {
                "run": _relative(r.run_dir, sweep_dir),
                **{p: _display(r.config.get(p)) for p in swept},
                "seed": r.seed,
                "status": r.status,
                "steps": r.steps,
                "wall_time_s": r.wall_time_s,
                **metrics,
                "reason": r.reason or "",
                "notes": "; ".join(r.notes),
            }
        )
    base = ["run", *swept, "seed", "status", "steps", "wall_time_s"]
    columns = base + _sort_delay_columns(metric_names) + ["reason", "notes"]
    return pd.DataFrame(rows, columns=columns)


def failed_table(records: Sequence[RunRecord], params: Sequence[str], sweep_dir: Path) -> pd.DataFrame:
    """Every run that is not ``completed`` (or whose files are unreadable), with its reason."""
    swept = [p for p in params if p != "seed"]
    rows = [
        {
            "run": _relative(r.run_dir, sweep_dir),
            "status": r.status,
            "reason": r.reason or "",
            **{p: _display(r.config.get(p)) for p in swept},
            "seed": r.seed,
            "steps": r.steps,
            "path": str(r.run_dir),
        }
        for r in records
        if r.status != COMPLETED
    ]
    return pd.DataFrame(rows, columns=["run", "status", "reason", *swept, "seed", "steps", "path"])


def summary_table(results: pd.DataFrame, params: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Per combination of the varying parameters (seeds pooled): n completed runs, mean and std of metrics.

    Columns: the parameters, ``n``, ``n_not_completed``, then ``<metric>_mean`` and ``<metric>_std``
    (sample standard deviation; NaN for n = 1).
    """
    swept = [p for p in params if p != "seed"]
    metrics = [m for m in metrics if m in results.columns]
    frame = results.copy()
    frame["_all"] = "all runs"
    by = swept or ["_all"]
    rows = []
    for combo, group in frame.groupby(by, sort=True, dropna=False):
        combo = combo if isinstance(combo, tuple) else (combo,)
        done = group[group["status"] == COMPLETED]
        row: dict[str, Any] = dict(zip(by, combo, strict=True))
        row["n"] = len(done)
        row["n_not_completed"] = len(group) - len(done)
        for m in metrics:
            values = pd.to_numeric(done[m], errors="coerce").dropna()
            row[f"{m}_mean"] = values.mean() if len(values) else math.nan
            row[f"{m}_std"] = values.std(ddof=1) if len(values) > 1 else math.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    if not swept and "_all" in table:
        table = table.rename(columns={"_all": "runs"})
    return table


def _fmt(value: float) -> str:
    if value is None or not math.isfinite(value):
        return ""
    if value != 0 and (abs(value) >= 1e4 or abs(value) < 1e-2):
        mantissa, exponent = f"{value:.2e}".split("e")
        return f"{mantissa} \\times 10^{{{int(exponent)}}}"
    return f"{value:.3f}"


def latex_table(summary: pd.DataFrame, params: Sequence[str], metrics: Sequence[str], caption: str) -> str:
    """The summary as a booktabs ``table`` (needs ``\\usepackage{booktabs}``): mean ± std (n)."""
    swept = [p for p in params if p != "seed"] or (["runs"] if "runs" in summary else [])
    metrics = [m for m in metrics if f"{m}_mean" in summary]
    header = [latex.escape(p) for p in swept] + ["$n$"] + [latex.escape(m) for m in metrics]
    align = "".join("r" if _is_numeric(summary[p]) else "l" for p in swept)
    lines = [
        "\\begin{table}[ht]",
        "  \\centering",
        f"  \\caption{{{caption}}}",
        f"  \\begin{{tabular}}{{{align}r{'c' * len(metrics)}}}",
        "    \\toprule",
        "    " + " & ".join(header) + " \\\\",
        "    \\midrule",
    ]
    for _, row in summary.iterrows():
        cells = [latex.escape(_cell(row[p])) for p in swept] + [str(int(row["n"]))]
        for m in metrics:
            mean, std = row[f"{m}_mean"], row[f"{m}_std"]
            if not math.isfinite(mean):
                cells.append("--")
            elif math.isfinite(std):
                cells.append(f"${_fmt(mean)} \\pm {_fmt(std)}$")
            else:
                cells.append(f"${_fmt(mean)}$")
        lines.append("    " + " & ".join(cells) + " \\\\")
    lines += ["    \\bottomrule", "  \\end{tabular}", "\\end{table}", ""]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def latex_document(table: str) -> str:
    """A complete document around ``table`` (compiles with ``pdflatex summary.tex``)."""
    return "\n".join(
        [
            "\\documentclass{article}",
            "\\usepackage[T1]{fontenc}",
            "\\usepackage{booktabs}",
            "\\begin{document}",
            table,
            "\\end{document}",
            "",
        ]
    )


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------------------------- plots


def _short(key: str) -> str:
    return SHORT_NAMES.get(key, key.replace(".", "_").replace("/", "_"))


def _is_numeric(series: pd.Series) -> bool:
    return bool(len(series)) and pd.to_numeric(series, errors="coerce").notna().all()


def _save_figure(fig, out_dir: Path, name: str) -> list[Path]:
    """``name``.png and ``name``.pdf in ``out_dir``, each written atomically."""
    import matplotlib.pyplot as plt

    written = []
    for ext in ("png", "pdf"):
        path = out_dir / f"{name}.{ext}"
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".{ext}", dir=out_dir)
        os.close(fd)
        try:
            fig.savefig(tmp, dpi=130, bbox_inches="tight", format=ext)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written.append(path)
    plt.close(fig)
    return written


def _hue_label(frame: pd.DataFrame, keys: Sequence[str]) -> pd.Series:
    """One label per run from ``keys`` (``hidden_size=8, af=gain``), ordered numerically where possible."""
    parts = [frame[k].map(lambda v, k=k: f"{_short(k)}={_cell(v)}") for k in keys]
    label = parts[0]
    for part in parts[1:]:
        label = label + ", " + part
    return label


def _ordered_labels(frame: pd.DataFrame, keys: Sequence[str], labels: pd.Series) -> list[str]:
    def sort_key(i):
        row = frame.loc[i]
        return tuple(
            (0, float(row[k]), "") if _is_numeric(pd.Series([row[k]])) else (1, 0.0, str(row[k]))
            for k in keys
        )

    order = sorted(frame.index, key=sort_key)
    seen: list[str] = []
    for i in order:
        if labels[i] not in seen:
            seen.append(labels[i])
    return seen


def _chance(results: pd.DataFrame) -> float | None:
    if "chance_accuracy" in results:
        values = pd.to_numeric(results["chance_accuracy"], errors="coerce").dropna().unique()
        if len(values) == 1:
            return float(values[0])
    return None


def plot_metric_vs(
    done: pd.DataFrame, x: str, others: Sequence[str], metric: str, out_dir: Path, max_lines: int = 12
) -> list[Path]:
    """``metric`` against parameter ``x``: one line per combination of ``others``, error bars = std over
    seeds (numeric ``x``: line plot; categorical ``x``: point plot)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    frame = done.copy()
    frame[metric] = pd.to_numeric(frame[metric], errors="coerce")
    # Runs without a value for x (a key added to the config later) cannot be placed on the axis.
    frame = frame[frame[x].notna() & frame[metric].notna()]
    if frame[x].nunique() < 2:
        return []
    hue_keys = list(others)
    for key in hue_keys:
        frame[key] = frame[key].where(frame[key].notna(), "none")
    # Too many combinations make an unreadable legend: keep the leading parameters, pool the rest.
    while hue_keys and frame.groupby(hue_keys).ngroups > max_lines:
        hue_keys.pop()
    pooled = [k for k in others if k not in hue_keys]
    hue = None
    hue_order = None
    if hue_keys:
        frame["_hue"] = _hue_label(frame, hue_keys)
        hue, hue_order = "_hue", _ordered_labels(frame, hue_keys, frame["_hue"])
    numeric_x = _is_numeric(frame[x])
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    # mean and standard deviation over seeds, a line (or points) per combination of the other parameters
    common = {"x": x, "y": metric, "hue": hue, "hue_order": hue_order, "errorbar": "sd", "ax": ax}
    if numeric_x:
        frame[x] = pd.to_numeric(frame[x])
        sns.lineplot(
            data=frame,
            **common,
            err_style="bars",
            marker="o",
            err_kws={"capsize": 3},
        )
        values = frame[x][frame[x] > 0]
        if len(values) == len(frame) and values.max() / values.min() >= 10:
            ax.set_xscale("log")
        ax.set_xticks(sorted(frame[x].unique()))
        ax.set_xticklabels([_cell(v) for v in sorted(frame[x].unique())])
        ax.minorticks_off()
    else:
        frame[x] = frame[x].astype(str)
        sns.pointplot(
            data=frame,
            **common,
            capsize=0.1,
            # Categories are not a continuum: points with error bars, no joining lines.
            linestyle="none",
            dodge=0.3 if hue else False,
        )
    chance = _chance(done)
    if chance is not None and metric.endswith("accuracy"):
        ax.axhline(chance, color="grey", ls="--", lw=1, label="chance")
    if metric.endswith("accuracy"):
        ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(x)
    ax.set_ylabel(f"final {metric}")
    title = f"{metric} vs {x} (mean ± std over seeds)"
    if pooled:
        title += f"\npooled over {', '.join(pooled)}"
    ax.set_title(title, fontsize=10)
    if hue or chance is not None:
        ax.legend(fontsize=8, title=", ".join(_short(k) for k in hue_keys) or None, title_fontsize=8)
    return _save_figure(fig, out_dir, f"{_short(metric).replace('eval_', '')}_vs_{_short(x)}")


def plot_heatmap(done: pd.DataFrame, rows: str, cols: str, metric: str, out_dir: Path) -> list[Path]:
    """Mean ``metric`` over seeds (and over any other parameters) for each ``rows`` x ``cols`` pair."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    frame = done.copy()
    frame[metric] = pd.to_numeric(frame[metric], errors="coerce")
    table = frame.pivot_table(index=rows, columns=cols, values=metric, aggfunc="mean")
    fig, ax = plt.subplots(figsize=(1.2 * len(table.columns) + 2.5, 0.6 * len(table.index) + 2))
    accuracy = metric.endswith("accuracy")
    sns.heatmap(
        table,
        annot=True,
        fmt=".2f",
        cmap="viridis",
        vmin=0 if accuracy else None,
        vmax=1 if accuracy else None,
        cbar_kws={"label": f"mean final {metric}"},
        ax=ax,
    )
    ax.set_xlabel(cols)
    ax.set_ylabel(rows)
    others = [c for c in done.attrs.get("params", []) if c not in (rows, cols, "seed")]
    title = f"{metric}: {_short(rows)} x {_short(cols)}"
    if others:
        title += f"\n(averaged over {', '.join(others)})"
    ax.set_title(title, fontsize=10)
    return _save_figure(fig, out_dir, f"heatmap_{_short(rows)}_x_{_short(cols)}")


def plot_learning_curves(
    records: Sequence[RunRecord], results: pd.DataFrame, hue_keys: Sequence[str], out_dir: Path
) -> list[Path]:
    """Every run's ``metrics.csv``: evaluation accuracy and training loss against step, coloured by the
    leading swept parameter."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    curves = []
    for r, (_, row) in zip([r for r in records if r.config], results.iterrows(), strict=True):
        path = r.run_dir / "metrics.csv"
        try:
            metrics = pd.read_csv(path)
        except (OSError, ValueError, pd.errors.EmptyDataError):
            continue
        if "step" not in metrics:
            continue
        metrics["_run"] = row["run"]
        for k in hue_keys:
            metrics[k] = row[k]
        curves.append(metrics)
    if not curves:
        return []
    frame = pd.concat(curves, ignore_index=True)
    hue, hue_order = None, None
    if hue_keys:
        frame["_hue"] = _hue_label(frame, hue_keys)
        hue, hue_order = "_hue", _ordered_labels(frame, hue_keys, frame["_hue"])
    panels = [c for c in ("eval_accuracy", "train_loss") if c in frame]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, column in zip(axes[0], panels, strict=True):
        sns.lineplot(
            data=frame,
            x="step",
            y=column,
            hue=hue,
            hue_order=hue_order,
            units="_run",
            estimator=None,
            lw=1,
            alpha=0.8,
            ax=ax,
            legend=column == panels[0],
        )
        ax.set_xlabel("training step")
        ax.set_ylabel(column)
        if column.endswith("loss") and (frame[column] > 0).all():
            ax.set_yscale("log")
    if hue and axes[0][0].get_legend() is not None:
        axes[0][0].legend(fontsize=7, title=", ".join(_short(k) for k in hue_keys), title_fontsize=7)
    fig.suptitle(f"Learning curves of {frame['_run'].nunique()} runs", fontsize=10)
    fig.tight_layout()
    return _save_figure(fig, out_dir, "learning_curves")


def plot_generalisation(results: pd.DataFrame, params: Sequence[str], out_dir: Path) -> list[Path]:
    """Accuracy by evaluation delay (``eval_accuracy_by_delay``), mean ± std over seeds, one line per
    value of the leading parameter and one panel per value of the second (if any)."""
    import seaborn as sns

    prefix = "eval_accuracy_by_delay."
    columns = [c for c in results.columns if c.startswith(prefix)]
    done = results[results["status"] == COMPLETED]
    if not columns or done.empty:
        return []
    swept = [p for p in params if p != "seed"]
    long = done.melt(
        id_vars=["run", *swept], value_vars=columns, var_name="eval_delay", value_name="accuracy"
    )
    long["eval_delay"] = pd.to_numeric(long["eval_delay"].str[len(prefix) :], errors="coerce")
    long["accuracy"] = pd.to_numeric(long["accuracy"], errors="coerce")
    long = long.dropna()
    if long["eval_delay"].nunique() < 2:
        return []
    hue = swept[0] if swept else None
    col = swept[1] if len(swept) > 1 and long[swept[1]].nunique() <= 6 else None
    kwargs: dict[str, Any] = {}
    if hue:
        long["_hue"] = _hue_label(long, [hue])
        kwargs.update(hue="_hue", hue_order=_ordered_labels(long, [hue], long["_hue"]))
    if col:
        long["_col"] = _hue_label(long, [col])
        col_order = _ordered_labels(long, [col], long["_col"])
        kwargs.update(col="_col", col_order=col_order, col_wrap=min(3, len(col_order)))
    grid = sns.relplot(
        data=long,
        x="eval_delay",
        y="accuracy",
        kind="line",
        errorbar="sd",
        marker="o",
        height=3.6,
        aspect=1.2,
        facet_kws={"sharey": True},
        **kwargs,
    )
    chance = _chance(done)
    for ax in grid.axes.flat:
        if chance is not None:
            ax.axhline(chance, color="grey", ls="--", lw=1)
        if hue in DELAY_KEYS and hue == "task.max_delay":
            # The training range ends at each run's max_delay: beyond it is generalisation.
            colours = sns.color_palette(n_colors=len(kwargs["hue_order"]))
            palette = dict(zip(kwargs["hue_order"], colours, strict=True))
            for label, colour in palette.items():
                ax.axvline(float(label.split("=", 1)[1]), color=colour, ls=":", lw=1)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("evaluation delay (steps)")
    grid.set_titles("{col_name}" if col else "")
    if grid.legend is not None:
        grid.legend.set_title(_short(hue) if hue else "")
    grid.figure.suptitle("Accuracy by evaluation delay (mean ± std over seeds)", fontsize=10, y=1.02)
    return _save_figure(grid.figure, out_dir, "accuracy_by_eval_delay")


# --------------------------------------------------------------------------------------------- collect


@dataclass
class Collection:
    """What :func:`collect` found and wrote."""

    sweep_dir: Path
    out_dir: Path
    params: list[str]
    n_runs: int
    results: pd.DataFrame
    failed: pd.DataFrame
    summary: pd.DataFrame
    files: list[Path]


def collect(
    sweep_dir: str | Path,
    out_dir: str | Path,
    max_runs_to_process: int = 40,
    metric: str = "eval_accuracy",
    table_metrics: Sequence[str] = ("eval_accuracy", "eval_loss", "train_loss"),
    ignore: Iterable[str] = DEFAULT_IGNORED,
    progress: bool = True,
    plots: bool = True,
) -> Collection:
    """Read every run below ``sweep_dir`` and write the collection to ``out_dir``.

    Files: ``results.csv`` (one row per run), ``failed_runs.csv``, ``summary.csv`` and ``summary.tex``
    (mean ± std (n) per combination of the varying parameters), ``summary_table.tex`` (the table alone,
    for ``\\input``), ``collection.json`` and, when ``plots``, PNG + PDF figures. With more runs than
    ``max_runs_to_process``, the per-run overlay (learning curves) is skipped; the tables never are.
    """
    from tqdm.auto import tqdm

    sweep_dir, out_dir = Path(sweep_dir), Path(out_dir)
    if not sweep_dir.is_dir():
        raise CollectionError(f"sweep folder {sweep_dir} does not exist")
    out_dir.mkdir(parents=True, exist_ok=True)
    run_dirs = find_run_dirs(sweep_dir)
    bar = tqdm(run_dirs, desc="reading runs", unit="run", disable=not progress, leave=False)
    records = [read_run(d) for d in bar]
    params = varying_parameters(records, ignore)
    swept = [p for p in params if p != "seed"]
    results = results_table(records, params, sweep_dir)
    failed = failed_table(records, params, sweep_dir)
    summary = summary_table(results, params, table_metrics)
    n_done = int((results["status"] == COMPLETED).sum()) if len(results) else 0
    log.info(
        "%d run folders in %s: %d completed, %d not completed; varying: %s",
        len(records),
        sweep_dir,
        n_done,
        len(failed),
        ", ".join(swept) or "nothing but the seed",
    )

    files: list[Path] = []

    def write_frame(name: str, frame: pd.DataFrame) -> None:
        io.write_text(out_dir / name, frame.to_csv(index=False))
        files.append(out_dir / name)

    write_frame("results.csv", results)
    write_frame("failed_runs.csv", failed)
    write_frame("summary.csv", summary)
    caption = (
        "Final metrics of completed runs: mean $\\pm$ standard deviation over seeds; $n$: completed runs. "
        f"Sweep: \\texttt{{{latex.escape(sweep_dir.name)}}}."
    )
    table = latex_table(summary, params, table_metrics, caption)
    io.write_text(out_dir / "summary_table.tex", table)
    io.write_text(out_dir / "summary.tex", latex_document(table))
    files += [out_dir / "summary_table.tex", out_dir / "summary.tex"]

    skipped: list[str] = []
    if plots:
        files += _plots(records, results, params, metric, out_dir, max_runs_to_process, skipped)
    info = {
        "sweep_dir": str(sweep_dir),
        "n_runs": len(records),
        "n_completed": n_done,
        "n_not_completed": len(failed),
        "varying_parameters": swept,
        "seeds": sorted({_cell(s) for s in results.get("seed", []) if s is not None and s == s}),
        "max_runs_to_process": max_runs_to_process,
        "skipped_plots": skipped,
        "files": [p.name for p in files],
    }
    io.write_json(out_dir / "collection.json", info)
    files.append(out_dir / "collection.json")
    return Collection(sweep_dir, out_dir, params, len(records), results, failed, summary, files)


def _plots(
    records: Sequence[RunRecord],
    results: pd.DataFrame,
    params: Sequence[str],
    metric: str,
    out_dir: Path,
    max_runs_to_process: int,
    skipped: list[str],
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    swept = [p for p in params if p != "seed"]
    done = results[results["status"] == COMPLETED].copy()
    done.attrs["params"] = list(params)
    files: list[Path] = []

    def attempt(name: str, draw) -> None:
        # A figure must never cost the tables: log what went wrong and go on.
        try:
            files.extend(draw())
        except Exception:
            log.exception("could not draw %s", name)
            skipped.append(f"{name} (error, see the log)")

    if done.empty or metric not in done or pd.to_numeric(done[metric], errors="coerce").isna().all():
        skipped.append(f"summary plots (no completed run reports {metric})")
    else:
        for x in swept[:4]:
            others = [p for p in swept if p != x]
            attempt(
                f"{metric} vs {x}",
                lambda x=x, others=others: plot_metric_vs(done, x, others, metric, out_dir),
            )
        if len(swept) >= 2:
            rows, cols = swept[0], swept[1]
            attempt("heatmap", lambda: plot_heatmap(done, rows, cols, metric, out_dir))
        attempt("generalisation", lambda: plot_generalisation(results, params, out_dir))
    if len(records) > max_runs_to_process:
        skipped.append(f"learning_curves ({len(records)} runs > max_runs_to_process={max_runs_to_process})")
        log.info(
            "%d runs > max_runs_to_process=%d: per-run learning curves skipped",
            len(records),
            max_runs_to_process,
        )
    elif len(results):
        attempt("learning curves", lambda: plot_learning_curves(records, results, swept[:2], out_dir))
    return files
