"""The Python API of the README: train a composed config, then collect runs into a DataFrame."""

from __future__ import annotations

from neuromod.api import collect_sweep, run_config
from neuromod.runfolder import files
from tests.conftest import FAST, compose_config


def test_run_config_and_collect_sweep_as_the_readme_shows(tmp_path):
    sweep = tmp_path / "sweep"
    for seed in (0, 1):
        cfg = compose_config([*FAST, f"seed={seed}", "architecture.n_neurons=4", "training.steps=3"])
        summary = run_config(cfg, sweep / str(seed))
        assert summary["status"] == files.COMPLETED and 0.0 <= summary["final"]["test_accuracy"] <= 1.0
        # the standard observers drew the run's figures
        assert (sweep / str(seed) / files.FIGURES / "learning_curves.png").stat().st_size > 1000
    collection = collect_sweep(sweep, tmp_path / "collection", plots=False)
    assert sorted(collection.results["seed"]) == [0, 1]
    assert set(collection.results["status"]) == {"completed"}
    assert (tmp_path / "collection" / "collection.json").exists()
    assert [p.name for p in collection.files][-1] == "collection.json"
