"""Collection of sweep folders built from real (tiny) runs: numbers, failures, LaTeX, plots, path choice."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from neuromod.api import collect_sweep as collect
from neuromod.api import run_config as run
from neuromod.results import collect as collection
from neuromod.results.runs import find_run_dirs, read_run
from neuromod.results.sweep_paths import CollectionError, resolve_sweep_dir
from neuromod.training import Diverged
from tests.conftest import CONFIG_DIR, FAST, collect_results, needs_pdflatex, pdflatex

TINY = [*FAST, "analysis.figures=false", "task.min_delay=1", "architecture.n_neurons=4"]
DELAY, HIDDEN = "task.max_delay", "architecture.hidden_size"


def make_run(
    job_dir: Path, overrides: list[str], fail: BaseException | None = None, monkeypatch=None
) -> dict:
    """A real run in ``job_dir`` plus the ``.hydra/`` files Hydra writes for a multirun job.

    ``fail``: an exception the training loop raises instead of training (a run made to fail).
    """
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=CONFIG_DIR):
            full = compose(config_name="config", overrides=[*TINY, *overrides], return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()
    hydra_node = full.hydra
    cfg = OmegaConf.masked_copy(full, [k for k in full if k != "hydra"])
    (job_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, job_dir / ".hydra" / "config.yaml")
    OmegaConf.save(
        OmegaConf.create({"hydra": {"runtime": {"choices": hydra_node.runtime.choices}}}),
        job_dir / ".hydra" / "hydra.yaml",
    )
    OmegaConf.save(OmegaConf.create(list(overrides)), job_dir / ".hydra" / "overrides.yaml")
    if fail is None:
        return run(cfg, output_dir=job_dir)

    def broken_fit(self):
        raise fail

    with monkeypatch.context() as patch:
        patch.setattr("neuromod.training.Trainer.fit", broken_fit)
        try:
            return run(cfg, output_dir=job_dir)
        except (RuntimeError, KeyboardInterrupt):
            return json.loads((job_dir / "summary.json").read_text())


def make_sweep(sweep_dir: Path, grid: list[list[str]]) -> list[Path]:
    """Hydra-like sweep folder: job ``i`` of ``grid`` in ``sweep_dir/i``."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / "multirun.yaml").write_text("hydra: {}\n")
    jobs = []
    for i, overrides in enumerate(grid):
        make_run(sweep_dir / str(i), overrides)
        jobs.append(sweep_dir / str(i))
    return jobs


GRID = [
    [f"{DELAY}={d}", f"{HIDDEN}={h}", f"seed={s}", f"task.eval_delays=[1,{d},{d + 2}]"]
    for d in (2, 4)
    for h in (4, 8)
    for s in (0, 1)
]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A 2 (delays) x 2 (hidden sizes) x 2 (seeds) sweep of real runs."""
    sweep_dir = tmp_path_factory.mktemp("sweep") / "multirun" / "2026-01-01" / "00-00-00"
    make_sweep(sweep_dir, GRID)
    return sweep_dir


def own_numbers(sweep_dir: Path) -> pd.DataFrame:
    """The numbers straight from each run's summary.json (what collection must reproduce)."""
    rows = []
    for summary_file in sorted(sweep_dir.glob("*/summary.json")):
        summary = json.loads(summary_file.read_text())
        if summary.get("status") != "completed":
            continue
        rows.append(
            {
                "run": summary_file.parent.name,
                DELAY: summary["config"][DELAY],
                HIDDEN: summary["config"][HIDDEN],
                "seed": summary["seed"],
                "eval_accuracy": summary["final"]["eval_accuracy"],
                "eval_loss": summary["final"]["eval_loss"],
            }
        )
    return pd.DataFrame(rows)


def test_collect_reproduces_the_runs_own_numbers(sweep, tmp_path):
    out = tmp_path / "collection"
    result = collect(sweep, out, progress=False)
    assert result.params == [DELAY, HIDDEN, "seed"]  # found from the configs, delay first

    results = pd.read_csv(out / "results.csv", dtype={"run": str})
    assert len(results) == 8
    assert list(results.columns[:6]) == ["run", DELAY, HIDDEN, "seed", "status", "steps"]
    assert set(results["status"]) == {"completed"}
    expected = own_numbers(sweep)
    merged = results.merge(expected, on="run", suffixes=("", "_own"))
    assert len(merged) == 8
    for column in (DELAY, HIDDEN, "seed", "eval_accuracy", "eval_loss"):
        assert (merged[column] == merged[f"{column}_own"]).all(), column
    assert sorted(zip(results[DELAY], results[HIDDEN], results["seed"], strict=True)) == sorted(
        (d, h, s) for d in (2, 4) for h in (4, 8) for s in (0, 1)
    )
    # Per-delay accuracies become columns, in numeric order.
    assert {"eval_accuracy_by_delay.1", "eval_accuracy_by_delay.4", "eval_accuracy_by_delay.6"} <= set(
        results
    )

    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 4 and set(summary["n"]) == {2}
    for _, row in summary.iterrows():
        group = expected[(expected[DELAY] == row[DELAY]) & (expected[HIDDEN] == row[HIDDEN])]
        assert row["eval_accuracy_mean"] == pytest.approx(group["eval_accuracy"].mean())
        assert row["eval_accuracy_std"] == pytest.approx(group["eval_accuracy"].std(ddof=1), nan_ok=True)
        assert row["eval_loss_mean"] == pytest.approx(group["eval_loss"].mean())

    failed = pd.read_csv(out / "failed_runs.csv", dtype={"run": str})
    assert failed.empty and "reason" in failed.columns

    tex = (out / "summary.tex").read_text()
    assert "\\usepackage{booktabs}" in tex and "\\toprule" in tex and "\\bottomrule" in tex
    assert "task.max\\_delay" in tex and "architecture.hidden\\_size" in tex and "eval\\_accuracy" in tex
    first = summary.iloc[0]
    mean, std = first["eval_accuracy_mean"], first["eval_accuracy_std"]
    cell = f"${mean:.3f} \\pm {std:.3f}$" if math.isfinite(std) else f"${mean:.3f}$"
    assert cell in tex
    assert (out / "summary_table.tex").read_text() in tex

    for name in (
        "accuracy_vs_delay",
        "accuracy_vs_hidden_size",
        "heatmap_delay_x_hidden_size",
        "learning_curves",
        "accuracy_by_eval_delay",
    ):
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert (out / f"{name}.pdf").read_bytes()[:5] == b"%PDF-", name
    info = json.loads((out / "collection.json").read_text())
    assert info["n_runs"] == 8 and info["n_completed"] == 8 and info["skipped_plots"] == []
    assert info["varying_parameters"] == [DELAY, HIDDEN]


@needs_pdflatex
def test_summary_tex_compiles_with_pdflatex(sweep, tmp_path):
    collect(sweep, tmp_path, progress=False, plots=False)
    assert pdflatex(tmp_path, "summary.tex").read_bytes()[:5] == b"%PDF-"


def test_bad_runs_are_listed_never_fatal(sweep, tmp_path, monkeypatch):
    broken = tmp_path / "sweep"
    shutil.copytree(sweep, broken)
    same = [f"{DELAY}=4", f"{HIDDEN}=8", "task.eval_delays=[1,4,6]"]
    # Real runs through run(), made to fail in three ways.
    make_run(broken / "8", [*same, "seed=2"], fail=RuntimeError("made to fail"), monkeypatch=monkeypatch)
    make_run(broken / "9", [*same, "seed=3"], fail=Diverged(1, "the training loss"), monkeypatch=monkeypatch)
    make_run(broken / "10", [*same, "seed=4"], fail=KeyboardInterrupt(), monkeypatch=monkeypatch)
    # A job killed before it wrote anything, one killed while training, a truncated summary, a stray folder.
    shutil.copytree(broken / "0" / ".hydra", broken / "11" / ".hydra")
    shutil.copytree(broken / "1", broken / "12")
    killed = json.loads((broken / "12" / "summary.json").read_text())
    killed.update(status="running", steps=1)
    (broken / "12" / "summary.json").write_text(json.dumps(killed))
    shutil.copytree(broken / "2", broken / "13")
    text = (broken / "13" / "summary.json").read_text()
    (broken / "13" / "summary.json").write_text(text[: len(text) // 2])
    (broken / "notes").mkdir()
    (broken / "notes" / "todo.txt").write_text("not a run")

    out = tmp_path / "out"
    result = collect(broken, out, progress=False)
    assert [p for p in result.params if p != "seed"] == [DELAY, HIDDEN]
    failed = pd.read_csv(out / "failed_runs.csv", dtype={"run": str}).set_index("run")
    assert failed.loc["8", "status"] == "failed" and "made to fail" in failed.loc["8", "reason"]
    assert failed.loc["9", "status"] == "diverged" and "step 1" in failed.loc["9", "reason"]
    assert failed.loc["10", "status"] == "interrupted"
    assert failed.loc["11", "status"] == "incomplete" and "no summary.json" in failed.loc["11", "reason"]
    # Its summary was written a moment ago: alive as far as anyone can tell (test_collect_scale: stale).
    assert failed.loc["12", "status"] == "running" and "running" in failed.loc["12", "reason"]
    assert (
        failed.loc["13", "status"] == "unreadable" and "summary.json unreadable" in failed.loc["13", "reason"]
    )
    assert (
        failed.loc["notes", "status"] == "unreadable" and "not a run folder" in failed.loc["notes", "reason"]
    )
    assert failed.loc["8", DELAY] == 4 and failed.loc["8", "seed"] == 2
    assert len(failed) == 7

    results = pd.read_csv(out / "results.csv", dtype={"run": str})
    # Every run whose config is known has a row (13's comes from .hydra/); statistics use completed ones only.
    assert len(results) == 8 + 6 and "notes" not in set(results["run"])
    assert results.set_index("run").loc["13", "status"] == "unreadable"
    summary = pd.read_csv(out / "summary.csv").set_index([DELAY, HIDDEN])
    assert summary.loc[(4, 8), "n"] == 2 and summary.loc[(4, 8), "n_not_completed"] == 3
    expected = own_numbers(sweep)
    group = expected[(expected[DELAY] == 4) & (expected[HIDDEN] == 8)]
    assert summary.loc[(4, 8), "eval_accuracy_mean"] == pytest.approx(group["eval_accuracy"].mean())
    assert (out / "accuracy_vs_delay.png").stat().st_size > 5000


def test_plots_follow_whatever_varies(tmp_path):
    """A sweep over the activation family and the learning rate: axes are af and training.lr."""
    grid = [[f"af={af}", f"training.lr={lr}", "seed=0"] for af in ("gain", "fixed") for lr in (0.001, 0.1)]
    make_sweep(tmp_path / "sweep", grid)
    out = tmp_path / "out"
    result = collect(tmp_path / "sweep", out, progress=False, max_runs_to_process=3)
    # af.* keys differ only because af does; training.optimizer.lr is ${training.lr}: neither is listed.
    assert result.params == ["af", "training.lr"]
    results = pd.read_csv(out / "results.csv", dtype={"run": str})
    assert sorted(zip(results["af"], results["training.lr"], strict=True)) == sorted(
        (af, lr) for af in ("fixed", "gain") for lr in (0.001, 0.1)
    )
    for name in ("accuracy_vs_af", "accuracy_vs_lr", "heatmap_af_x_lr"):
        assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG", name
    # 4 runs > max_runs_to_process=3: no per-run overlay, tables all there.
    assert not (out / "learning_curves.png").exists()
    info = json.loads((out / "collection.json").read_text())
    assert any("learning_curves" in s for s in info["skipped_plots"])
    assert len(pd.read_csv(out / "summary.csv")) == 4


def test_read_run_takes_nothing_from_folder_names(sweep, tmp_path):
    misleading = tmp_path / "task.max_delay=99,seed=7"
    shutil.copytree(sweep / "0", misleading)
    record = read_run(misleading)
    assert record.status == "completed"
    assert record.config[DELAY] == 2 and record.seed == 0
    assert find_run_dirs(tmp_path) == [misleading]
    # Runs nested by a custom hydra.sweep.subdir are found; Hydra's hidden folders are not runs.
    nested = tmp_path / "group_a" / "job"
    shutil.copytree(sweep / "1", nested)
    (tmp_path / ".submitit" / "123").mkdir(parents=True)
    assert find_run_dirs(tmp_path) == [nested, misleading]


def test_resolve_sweep_dir(tmp_path):
    old, new = tmp_path / "sweeps" / "old", tmp_path / "sweeps" / "new"
    old.mkdir(parents=True)
    new.mkdir(parents=True)
    (tmp_path / "multirun_paths.txt").write_text(f"{old}\n{new}\n\n")
    assert resolve_sweep_dir(0, None, base_dir=tmp_path) == new
    assert resolve_sweep_dir(1, None, base_dir=tmp_path) == old
    assert resolve_sweep_dir(5, "sweeps/old", base_dir=tmp_path) == old  # dir wins over path
    with pytest.raises(CollectionError, match=r"path=2: .* lists 2 sweep\(s\), so path must be in 0\.\.1"):
        resolve_sweep_dir(2, None, base_dir=tmp_path)
    with pytest.raises(CollectionError, match="dir=nowhere: no such folder"):
        resolve_sweep_dir(0, "nowhere", base_dir=tmp_path)
    shutil.rmtree(new)
    with pytest.raises(CollectionError, match="path=0: the sweep folder .* does not exist"):
        resolve_sweep_dir(0, None, base_dir=tmp_path)
    with pytest.raises(CollectionError, match="no sweep recorded"):
        resolve_sweep_dir(0, None, paths_file="other.txt", base_dir=tmp_path)


def test_collect_results_command_line(sweep, tmp_path):
    """path=0/1 pick the sweep from multirun_paths.txt; output in collection_outputs/<date>/<time>."""
    other = tmp_path / "other_sweep"
    make_sweep(other, [["seed=0"], ["seed=1"]])
    (tmp_path / "multirun_paths.txt").write_text(f"{sweep}\n{other}\n")
    done = collect_results(tmp_path, "path=1", "plots=false", "progress=false")
    assert done.returncode == 0, done.stderr[-3000:]
    (out,) = (tmp_path / "collection_outputs").glob("*/*")
    info = json.loads((out / "collection.json").read_text())
    assert info["sweep_dir"] == str(sweep) and info["n_runs"] == 8
    assert len(pd.read_csv(out / "results.csv", dtype={"run": str})) == 8

    done = collect_results(tmp_path, "path=2")
    assert done.returncode == 2
    assert "path=2" in done.stderr and "lists 2 sweep(s)" in done.stderr
    assert len(list((tmp_path / "collection_outputs").glob("*/*"))) <= 2


def test_collection_of_the_newest_sweep_in_process(sweep, tmp_path):
    """``collect`` on the sweep resolved from path=0 (the module's functions, no Hydra involved)."""
    (tmp_path / "multirun_paths.txt").write_text(f"{tmp_path / 'gone'}\n{sweep}\n")
    folder = resolve_sweep_dir(0, None, base_dir=tmp_path)
    result = collection.collect(folder, tmp_path / "out", progress=False)
    assert result.sweep_dir == sweep and len(result.results) == 8


def test_searched_continuous_parameters_are_all_kept(tmp_path):
    """A tuning study draws two continuous values per trial: unique per run, so they map one to one
    onto each other, yet both are parameters of the study."""
    grid = [[f"training.lr={lr}", f"af.init.g={g}", "seed=0"] for lr, g in ((0.003, 0.7), (0.01, 1.3))]
    make_sweep(tmp_path / "study", grid)
    result = collect(tmp_path / "study", tmp_path / "out", progress=False)
    assert set(result.params) == {"training.lr", "af.init.g"}


def test_a_swept_condition_explains_the_settings_it_brings():
    """``+condition`` sets architecture, af and training settings together: only the condition (and the
    seed) are parameters of the sweep; a key the sweep set itself is never explained away."""
    from neuromod.results.runs import RunRecord
    from neuromod.results.tables import varying_parameters

    conditions = {
        "gain": ("additive", "gain", 0.01),
        "lstm": ("lstm", "gain", 0.03),
        "lap": ("additive", "lap", 0.003),
    }
    records = []
    for name, (architecture, af, lr) in conditions.items():
        for seed in (0, 1):
            config = {
                "condition": name,
                "architecture": architecture,
                "af": af,
                "training.lr": lr,
                "seed": seed,
            }
            records.append(
                RunRecord(Path(f"{name}{seed}"), "completed", config=config, overridden={"condition", "seed"})
            )
    assert varying_parameters(records) == ["condition", "seed"]
    for record in records:  # the lr set on the command line too: a parameter of its own
        record.overridden.add("training.lr")
    assert "training.lr" in varying_parameters(records)
