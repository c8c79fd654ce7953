"""Self-describing checkpoints: ``checkpoint.pt`` carries its format version and the run's resolved config,
so ``python -m neuromod.analyze`` rebuilds the network from a lone copied checkpoint; a checkpoint of the
older format (no config) still analyses next to ``.hydra/config.yaml`` and still resumes."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from neuromod.analyze import main as analyze_main
from neuromod.api import run_config as run
from neuromod.compose import compose_config
from neuromod.runfolder.checkpoint import (
    CONFIG_KEY,
    FORMAT_VERSION,
    VERSION_KEY,
    CheckpointError,
    read_checkpoint,
)
from neuromod.runfolder.folder import RunFolder
from neuromod.validation import ConfigError
from tests.conftest import FAST

pytestmark = pytest.mark.usefixtures("one_thread")

OVERRIDES = [*FAST, "training.steps=4", "training.eval_every=2", "analysis.figures=false"]
ANALYSE = ["what=decoding,state_space", "n_trials=40", "figures=false"]
TRAINER_KEYS = {"model", "optimizer", "step", "generator", "torch_rng", "history", "elapsed_s"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, object]:
    """A tiny completed run (in-process: its folder has no .hydra/) and its config."""
    folder = tmp_path_factory.mktemp("trained")
    cfg = compose_config(OVERRIDES)
    assert run(cfg, output_dir=folder)["status"] == "completed"
    return folder, cfg


def _old_format(source: Path, target: Path) -> None:
    """``source`` written as before checkpoints carried a format version and a config."""
    content = torch.load(source, map_location="cpu", weights_only=False)
    del content[VERSION_KEY], content[CONFIG_KEY]
    torch.save(content, target)


def _with_hydra_config(folder: Path, cfg) -> None:
    (folder / ".hydra").mkdir(exist_ok=True)
    OmegaConf.save(cfg, folder / ".hydra" / "config.yaml")


def _decoding_scalars(folder: Path) -> dict:
    results = json.loads((folder / "analysis.json").read_text())
    decoding = {k: v for k, v in results["scalars"].items() if k.startswith("decoding")}
    assert decoding and all(isinstance(v, (int, float)) and math.isfinite(v) for v in decoding.values())
    return decoding


def test_the_checkpoint_carries_its_format_and_the_runs_resolved_config(trained):
    folder, cfg = trained
    content = torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert content[VERSION_KEY] == FORMAT_VERSION == 2
    assert content[CONFIG_KEY] == OmegaConf.to_container(cfg, resolve=True)
    assert "hydra" not in content[CONFIG_KEY]
    config, state = read_checkpoint(folder / "checkpoint.pt")
    assert config == content[CONFIG_KEY]
    assert TRAINER_KEYS <= set(state) and not {VERSION_KEY, CONFIG_KEY} & set(state)
    assert RunFolder(folder).checkpoint_step() == 4


def test_analyze_rebuilds_the_network_from_a_lone_copied_checkpoint(trained, tmp_path, capsys):
    folder, _ = trained
    shutil.copy(folder / "checkpoint.pt", tmp_path / "checkpoint.pt")
    assert analyze_main([str(tmp_path), *ANALYSE]) == 0, capsys.readouterr().err
    assert {p.name for p in tmp_path.iterdir()} == {"checkpoint.pt", "analysis.json"}
    results = json.loads((tmp_path / "analysis.json").read_text())
    assert results["n_trials"] == 40 and "participation_ratio.rates" in results["scalars"]
    assert {"decoding_delay_end.rates", "decoding_delay_end.modulator_c"} <= set(_decoding_scalars(tmp_path))


def test_an_old_format_checkpoint_analyses_next_to_its_hydra_config(trained, tmp_path, capsys):
    folder, cfg = trained
    _old_format(folder / "checkpoint.pt", tmp_path / "checkpoint.pt")
    assert read_checkpoint(tmp_path / "checkpoint.pt")[0] is None
    assert analyze_main([str(tmp_path), *ANALYSE]) == 1  # no config anywhere: one line, exit 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoint.pt holds no config" in err[0] and "config.yaml is missing" in err[0]
    _with_hydra_config(tmp_path, cfg)
    assert analyze_main([str(tmp_path), *ANALYSE]) == 0, capsys.readouterr().err
    _decoding_scalars(tmp_path)


def test_an_old_format_checkpoint_still_resumes_and_is_then_written_in_the_new_format(trained, tmp_path):
    folder, cfg = trained
    old = tmp_path / "old"
    shutil.copytree(folder, old)
    _old_format(folder / "checkpoint.pt", old / "checkpoint.pt")
    _with_hydra_config(old, cfg)
    assert RunFolder(old).checkpoint_step() == 4
    more = [*OVERRIDES, "training.steps=6", "training.resume=true", "skip_completed=false"]
    resumed = run(compose_config(more), output_dir=old)
    assert resumed["status"] == "completed" and resumed["resumed_from_step"] == 4 and resumed["steps"] == 6
    config, state = read_checkpoint(old / "checkpoint.pt")
    assert config is not None and config["training"]["steps"] == 6 and state["step"] == 6


def test_resuming_either_format_gives_the_trainer_the_same_state(trained, tmp_path):
    folder, _ = trained
    _old_format(folder / "checkpoint.pt", tmp_path / "checkpoint.pt")
    _, new = read_checkpoint(folder / "checkpoint.pt")
    _, old = read_checkpoint(tmp_path / "checkpoint.pt")
    assert set(new) == set(old)
    assert new["step"] == old["step"] and new["history"] == old["history"]
    assert all(torch.equal(new["model"][k], old["model"][k]) for k in new["model"])


@pytest.mark.parametrize("kind", ["foreign", "truncated", "not_a_checkpoint", "newer"])
def test_a_file_that_is_no_checkpoint_is_one_clear_line(trained, tmp_path, capsys, kind):
    folder, _ = trained
    path = tmp_path / "checkpoint.pt"
    data = (folder / "checkpoint.pt").read_bytes()
    if kind == "foreign":
        path.write_text("not a checkpoint\n")
    elif kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "not_a_checkpoint":
        torch.save({"weights": torch.zeros(2)}, path)
    else:
        content = torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=False)
        torch.save({**content, VERSION_KEY: FORMAT_VERSION + 1}, path)
    with pytest.raises(CheckpointError, match=str(path)):
        read_checkpoint(path)
    assert RunFolder(tmp_path).checkpoint_step() is None
    assert analyze_main([str(tmp_path), *ANALYSE]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "Traceback" not in err[0]


def test_resume_from_a_foreign_file_is_a_config_error(tmp_path):
    (tmp_path / "checkpoint.pt").write_text("not a checkpoint\n")
    cfg = compose_config([*OVERRIDES, "training.resume=true"])
    with pytest.raises(ConfigError, match=r"training.resume=true: checkpoint .* cannot be used"):
        run(cfg, output_dir=tmp_path)
