"""The launcher presets (config/hydra/launcher/) compose to the launchers and settings they document."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from neuromod.compose import CONFIG_DIR
from tests.conftest import FAST, ROOT, multirun_command

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_joblib_launcher") is None
    or importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
    reason="optional extra: pip install -e '.[sweeps]'",
)


def hydra_config(*overrides: str):
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
            return compose(config_name="config", overrides=list(overrides), return_hydra_config=True).hydra
    finally:
        GlobalHydra.instance().clear()


def test_the_gpu_preset_runs_several_jobs_at_once_on_joblib():
    hydra = hydra_config("hydra/launcher=gpu")
    assert hydra.launcher._target_.endswith("JoblibLauncher")
    assert hydra.launcher.n_jobs == 8
    # no thread cap of its own: joblib's workers get cores // n_jobs threads
    assert "OMP_NUM_THREADS" not in hydra.job.env_set
    assert hydra_config("hydra/launcher=gpu", "hydra.launcher.n_jobs=3").launcher.n_jobs == 3


def test_the_slurm_gpu_preset_gives_each_job_a_gpu_and_one_task():
    hydra = hydra_config("hydra/launcher=slurm_gpu", "hydra.launcher.cpus_per_task=4")
    launcher = hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.gpus_per_node, launcher.tasks_per_node, launcher.nodes) == (1, 1, 1)
    assert launcher.timeout_min == 30  # the rest comes from slurm.yaml
    assert hydra.job.env_set.OMP_NUM_THREADS == "4"  # torch's threads follow the job's cores
    shared = hydra_config(
        "hydra/launcher=slurm_gpu", "hydra.launcher.gpus_per_node=null", "hydra.launcher.gres=shard:1"
    )
    assert shared.launcher.gpus_per_node is None and shared.launcher.gres == "shard:1"


def test_the_packed_preset_runs_two_jobs_per_core_with_one_thread_each():
    hydra = hydra_config("hydra/launcher=packed")
    assert hydra.launcher._target_.endswith("JoblibLauncher")
    assert hydra.launcher.n_jobs == 2 * len(os.sched_getaffinity(0))
    assert hydra.job.env_set.OMP_NUM_THREADS == "1"  # from the parallel preset
    assert hydra_config("hydra/launcher=packed", "hydra.launcher.n_jobs=3").launcher.n_jobs == 3


@pytest.mark.slow
def test_a_packed_sweep_runs_through_main_py(tmp_path):
    sweep = tmp_path / "sweep"
    command = multirun_command(sweep, tmp_path, "hydra/launcher=packed", "seed=0,1,2", *FAST)
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    statuses = [json.loads((sweep / str(job) / "summary.json").read_text())["status"] for job in range(3)]
    assert statuses == ["completed"] * 3
