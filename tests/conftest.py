"""Shared test helpers: compose the real config (as main.py would) and shrink it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from neuromod.compose import compose_config  # noqa: F401  (re-exported for the tests)

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


@pytest.fixture
def compose_cfg():
    return compose_config


@pytest.fixture
def python() -> str:
    return sys.executable
