"""Compose the experiment config without running ``main.py`` (tests, benchmarks, notebooks)."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

#: The repository's ``config/`` folder (beside the package in a checkout or an editable install).
CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"


def compose_config(overrides: list[str] | None = None, config_dir: str | Path = CONFIG_DIR) -> DictConfig:
    """The config ``main.py`` would compose for ``overrides``; Hydra's global state is cleared after."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(config_dir)):
            return compose(config_name="config", overrides=list(overrides or []))
    finally:
        GlobalHydra.instance().clear()
