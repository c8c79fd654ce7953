"""Shared test helpers: compose the real config (as main.py would) and shrink it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = str(ROOT / "config")

#: Overrides that make any run take a second or two.
FAST = [
    "training.steps=2",
    "training.eval_every=1",
    "training.batch_size=4",
    "training.eval_batch_size=8",
    "training.progress=false",
    "architecture.hidden_size=8",
    "threads=1",
]


def compose_config(overrides: list[str] | None = None):
    """The composed config for ``overrides`` (Hydra's global state is cleared afterwards)."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=CONFIG_DIR):
            return compose(config_name="config", overrides=list(overrides or []))
    finally:
        GlobalHydra.instance().clear()


@pytest.fixture
def compose_cfg():
    return compose_config


@pytest.fixture
def python() -> str:
    return sys.executable
