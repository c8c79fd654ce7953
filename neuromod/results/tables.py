"""A sweep's tables: which parameters varied, ``results.csv``, ``failed_runs.csv``, ``summary.csv`` and the
LaTeX summary table.

The varying parameters are found by comparing the runs' configs (:func:`varying_parameters`); the keys of
:data:`neuromod.runfolder.settings.EXECUTION_KEYS` (how a run was executed) are never among them.
"""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from neuromod import latex
from neuromod.results.runs import COMPLETED, RunRecord, value_key
from neuromod.runfolder.settings import EXECUTION_KEYS, flatten

#: Parameters drawn on the x axis first, when they vary (the project's headline sweep).
DELAY_KEYS = ("task.max_delay", "task.min_delay", "task.delay")
HIDDEN_KEYS = ("architecture.hidden_size", "architecture.n_neurons")


def _display(value: Any) -> Any:
    """A config value as a table cell: scalars as they are, lists as text."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str)
    return value


def varying_parameters(records: Sequence[RunRecord], ignore: Iterable[str] = ()) -> list[str]:
    """Config keys whose values differ between runs (``seed`` included), most telling first.

    Left out: :data:`~neuromod.runfolder.settings.EXECUTION_KEYS` and ``ignore`` (and anything below an
    ignored prefix ending in ``.``); keys that are interpolations of other keys
    (``training.optimizer.lr: ${training.lr}``); keys that only differ because a config group's choice
    differs (``architecture.n_neurons`` when ``architecture`` varies); and a key whose values map one to
    one onto a more telling varying key's (the latter is kept).
    """
    ignore = (*EXECUTION_KEYS, *ignore)
    configs = [r.config for r in records if r.config]
    if len(configs) < 2:
        return []
    keys = sorted({k for c in configs for k in c})
    missing = object()
    varying = []
    for key in keys:
        if key in ignore or any(key.startswith(p.rstrip(".") + ".") for p in ignore):
            continue
        if len({value_key(c.get(key, missing)) for c in configs}) > 1:
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
                per_choice.setdefault(value_key(c.get(group)), set()).add(value_key(c.get(key, missing)))
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
    # A key the sweep did not set that is a function of a grouping key it did set is explained by it
    # (``af``, ``architecture`` and the training settings a ``+condition`` brings with it).
    setters = [
        k
        for k in varying
        if k in swept and k != "seed" and len({value_key(c.get(k)) for c in configs}) < len(configs)
    ]
    varying = [
        k
        for k in varying
        if k in swept
        or k == "seed"
        or not any(_determines(_column(configs, s), _column(configs, k)) for s in setters)
    ]
    kept: dict[str, list[str]] = {}
    for key in sorted(varying, key=lambda k: (k not in searched, _priority(k), len(k), k)):
        column = [value_key(c.get(key, missing)) for c in configs]
        others = [other for name, other in kept.items() if name != "seed"]
        if key != "seed" and key not in searched and any(_one_to_one(column, other) for other in others):
            continue
        kept[key] = column
    return sorted(kept, key=_priority)


def _column(configs: Sequence[dict], key: str) -> list[str]:
    return [value_key(c.get(key)) for c in configs]


def _determines(a: Sequence[str], b: Sequence[str]) -> bool:
    """Whether every value of ``a`` goes with a single value of ``b``."""
    return len(set(zip(a, b, strict=True))) == len(set(a))


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
        metrics = _scalar_metrics({**r.final, **r.analysis})
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


def expand_metrics(names: Sequence[str], columns: Iterable[str]) -> list[str]:
    """``table_metrics`` with each pattern (``test_accuracy_*``: shell-style) replaced by the results'
    columns it matches, in their order; per-delay columns (``name.<delay>``) are matched only by name."""
    columns = list(columns)
    out: list[str] = []
    for name in names:
        if any(c in name for c in "*?["):
            matched = [c for c in columns if "." not in c and fnmatch.fnmatchcase(c, name)]
        else:
            matched = [name]
        out += [m for m in matched if m not in out]
    return out


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


def latex_table(
    summary: pd.DataFrame,
    params: Sequence[str],
    metrics: Sequence[str],
    caption: str,
    max_rows: int | None = None,
) -> str:
    """The summary as a booktabs ``table`` (needs ``\\usepackage{booktabs}``): mean ± std (n).

    With more than ``max_rows`` combinations, the first ``max_rows`` are shown and a last row says how
    many more there are (all of them are in ``summary.csv``).
    """
    swept = [p for p in params if p != "seed"] or (["runs"] if "runs" in summary else [])
    metrics = [m for m in metrics if f"{m}_mean" in summary]
    header = [latex.escape(p) for p in swept] + ["$n$"] + [latex.escape(m) for m in metrics]
    align = "".join("r" if is_numeric(summary[p]) else "l" for p in swept)
    lines = [
        "\\begin{table}[ht]",
        "  \\centering",
        f"  \\caption{{{caption}}}",
        f"  \\begin{{tabular}}{{{align}r{'c' * len(metrics)}}}",
        "    \\toprule",
        "    " + " & ".join(header) + " \\\\",
        "    \\midrule",
    ]
    shown = summary if max_rows is None or len(summary) <= max_rows else summary.iloc[: max(0, max_rows)]
    for _, row in shown.iterrows():
        cells = [latex.escape(cell_text(row[p])) for p in swept] + [str(int(row["n"]))]
        for m in metrics:
            mean, std = row[f"{m}_mean"], row[f"{m}_std"]
            if not math.isfinite(mean):
                cells.append("--")
            elif math.isfinite(std):
                cells.append(f"${_fmt(mean)} \\pm {_fmt(std)}$")
            else:
                cells.append(f"${_fmt(mean)}$")
        lines.append("    " + " & ".join(cells) + " \\\\")
    if len(shown) < len(summary):
        note = f"\\emph{{{len(summary) - len(shown)} more combinations: see summary.csv}}"
        lines += ["    \\midrule", f"    \\multicolumn{{{len(header)}}}{{l}}{{{note}}} \\\\"]
    lines += ["    \\bottomrule", "  \\end{tabular}", "\\end{table}", ""]
    return "\n".join(lines)


def cell_text(value: Any) -> str:
    """A value as text for a table cell, a label or a file: whole floats without ``.0``."""
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


def is_numeric(series: pd.Series) -> bool:
    """True if every value of a non-empty ``series`` reads as a number."""
    return bool(len(series)) and pd.to_numeric(series, errors="coerce").notna().all()
