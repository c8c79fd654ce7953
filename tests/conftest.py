"""Shared test helpers: compose the real config (as main.py would) and shrink it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

if "PYTEST_XDIST_WORKER" in os.environ:
    # `make test` runs a worker on every core (pytest-xdist): torch keeps to one thread in each worker and in
    # the processes its tests start (workers each spinning a thread per core slow one another several-fold).
    # Set before torch is imported; a test that starts a process with an explicit setting keeps it.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

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
    "analysis.dynamics=false",  # the population analyses have their own tests
]


@pytest.fixture
def compose_cfg():
    return compose_config


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module of tiny tensors: thread start-up would dominate (and the machine
    may be shared). Used with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def python() -> str:
    return sys.executable


#: Tests that compile LaTeX skip cleanly on a machine without pdflatex (CI installs it).
needs_pdflatex = pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")


def pdflatex(folder: Path, tex_file: str) -> Path:
    """Compile ``folder/tex_file`` (the test fails with pdflatex's log if it cannot); returns the PDF."""
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", tex_file],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    return folder / (Path(tex_file).stem + ".pdf")


def multirun_command(sweep: Path, folder: Path, *overrides: str) -> list[str]:
    """``python main.py --multirun <overrides>`` into ``sweep``, recording it in ``folder``'s
    multirun_paths.txt (not the repository's); run it with ``cwd=ROOT``."""
    return [
        sys.executable,
        "main.py",
        "--multirun",
        *overrides,
        f"hydra.sweep.dir={sweep}",
        f"hydra.callbacks.record_sweep_path.paths_file={folder / 'multirun_paths.txt'}",
    ]


def collect_results(folder: Path, *arguments: str) -> subprocess.CompletedProcess:
    """``python collect_results.py <arguments>`` run in ``folder`` (its output: folder/collection_outputs)."""
    command = [sys.executable, str(ROOT / "collect_results.py"), *arguments]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=300)
