"""The house's rules, checked on the code itself: imports run down, the run folder's one launch decision,
one default per key, observers handed to a run."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import socket
from pathlib import Path

import pytest
import yaml

from neuromod import schema
from neuromod.observer import RunObserver
from neuromod.runfolder import files
from neuromod.runfolder.folder import FRESH, RESUME, SKIP, RunFolder, StillRunning
from neuromod.validation import ConfigError
from tests.conftest import FAST, ROOT, compose_config

PACKAGE = ROOT / "neuromod"


def _imports(folder: Path) -> set[str]:
    """Every ``neuromod.*`` module imported anywhere below ``folder`` (lazy and TYPE_CHECKING ones too)."""
    found: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("neuromod"):
                if node.module != "neuromod":  # from neuromod import io: the module is neuromod.io
                    found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names if alias.name.startswith("neuromod"))
    return found


@pytest.mark.parametrize("folder", ["results", "trackers", "plotting", "runfolder", "analysis", "training"])
def test_lower_floors_import_nothing_from_the_runner(folder):
    assert not {m for m in _imports(PACKAGE / folder) if m.startswith("neuromod.runner")}


@pytest.mark.parametrize("folder", ["runner", "analysis", "results", "training", "runfolder"])
def test_no_figures_or_trackers_below_the_observers(folder):
    above = ("neuromod.plotting", "neuromod.trackers", "neuromod.api")
    assert not {m for m in _imports(PACKAGE / folder) if m.startswith(above)}


def test_the_run_folder_stands_on_the_ground_floor():
    allowed = ("neuromod.runfolder", "neuromod.validation", "neuromod.io")
    assert {m for m in _imports(PACKAGE / "runfolder") if not m.startswith(allowed)} == set()


def test_run_folder_file_names_are_spelled_in_one_module():
    spelled = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "files.py" and path.parent.name == "runfolder":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in ("checkpoint.pt", "summary.json"):
                spelled.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    # Docstrings mention them; a string constant equal to the name would be a second definition.
    assert spelled == [], spelled


# -- one launch decision -----------------------------------------------------------------------------
def _folder(tmp_path, summary=None, checkpoint=False) -> RunFolder:
    folder = RunFolder(tmp_path / "run")
    if summary is not None:
        folder.summary_path.write_text(json.dumps(summary))
    if checkpoint:
        folder.checkpoint_path.write_bytes(b"x")
    return folder


def test_decide_launch_fresh_resume_skip(tmp_path):
    settings = {"seed": 0, "training.lr": 0.01}
    assert _folder(tmp_path).decide_launch(settings, skip_completed=True, resume=True).action == FRESH
    folder = _folder(tmp_path, checkpoint=True)
    assert folder.decide_launch(settings, skip_completed=True, resume=True).action == RESUME
    assert folder.decide_launch(settings, skip_completed=True, resume=False).action == FRESH
    done = {"status": files.COMPLETED, "config": settings, "final": {"eval_accuracy": 1.0}}
    folder = _folder(tmp_path, done)
    launch = folder.decide_launch(settings, skip_completed=True, resume=False)
    assert launch.action == SKIP and launch.previous["final"] == {"eval_accuracy": 1.0}
    # skip_completed=false trains again
    assert folder.decide_launch(settings, skip_completed=False, resume=False).action == FRESH


def test_decide_launch_refuses_other_settings_and_a_live_owner(tmp_path):
    done = {"status": files.COMPLETED, "config": {"seed": 0, "training.lr": 0.01}}
    with pytest.raises(ConfigError, match=r"training.lr: 0.01 -> 0.1"):
        _folder(tmp_path, done).decide_launch({"seed": 0, "training.lr": 0.1}, True, False)
    # an execution key (threads) is not another setting
    _folder(tmp_path, done).decide_launch({"seed": 0, "training.lr": 0.01, "threads": 2}, True, False)
    live = {"status": files.RUNNING, "host": socket.gethostname(), "pid": os.getppid()}
    live.update(started_at=1.0, updated_at=__import__("time").time())
    with pytest.raises(StillRunning, match="is still running"):
        _folder(tmp_path, live).decide_launch({}, True, False)


def test_decide_launch_runs_a_stale_attempt_again(tmp_path):
    gone = {"status": files.RUNNING, "host": socket.gethostname(), "pid": 999_999_999, "updated_at": 1.0}
    launch = _folder(tmp_path, gone, checkpoint=True).decide_launch({}, True, True)
    assert launch.action == RESUME and "pid 999999999) is stale" in launch.stale


# -- one default per key -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "group, settings",
    [
        ("training", schema.TrainingSettings),
        ("analysis", schema.AnalysisSettings),
        ("objective", schema.ObjectiveSettings),
    ],
)
def test_every_key_has_its_default_in_the_schema_only(group, settings):
    cfg = compose_config([])
    defaults = {f.name: getattr(settings(), f.name) for f in dataclasses.fields(settings)}
    assert set(cfg[group]) == set(defaults)
    for key, value in defaults.items():
        if key != "optimizer":
            assert cfg[group][key] == value, key
    # no YAML file of the default composition writes them again
    written = yaml.safe_load((ROOT / "config" / "training" / "default.yaml").read_text())
    assert set(written) == {"defaults"}
    top = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    assert group not in top


def test_a_preset_or_the_command_line_changes_a_default_and_an_unknown_key_is_refused():
    cfg = compose_config(["task=de1", "architecture=rnn", "analysis.n_trials=64"])
    assert cfg.training.lr == 1e-3 and cfg.training.steps == 2000 and cfg.analysis.n_trials == 64
    with pytest.raises(Exception, match="stpes"):
        compose_config(["training.stpes=3"])


# -- observers handed to a run -----------------------------------------------------------------------
class _Listener(RunObserver):
    def __init__(self, heard):
        self.heard = heard

    def on_fit_start(self, trainer):
        self.heard.append("fit_start")

    def on_evaluation(self, trainer, row):
        self.heard.append(f"evaluation {row['step']}")

    def on_analysis(self, results, run_dir):
        self.heard.append("analysis" if "scalars" in results else "analysis?")

    def on_run_end(self, summary, run_dir):
        self.heard.append(f"run_end {summary['status']}")

    def close(self):
        self.heard.append("close")


def test_a_run_tells_the_observers_it_is_handed_and_draws_nothing_itself(tmp_path):
    from neuromod.runner.run import run

    heard: list[str] = []
    cfg = compose_config(
        [*FAST, "analysis.dynamics=true", "analysis.n_trials=24", "architecture.n_neurons=4"]
    )
    summary = run(cfg, tmp_path / "run", observers=[lambda cfg, path: _Listener(heard)])
    assert summary["status"] == "completed"
    assert heard == ["fit_start", "evaluation 1", "evaluation 2", "analysis", "run_end completed", "close"]
    assert (tmp_path / "run" / files.ANALYSIS).exists()
    assert not (tmp_path / "run" / files.FIGURES).exists()  # no observer drew
