"""The documentation site builds with ``mkdocs build --strict`` (a broken link or anchor, a page left out of
the nav, a docstring mkdocstrings cannot read: each is a warning, and strict mode fails on any), and its
home, tutorial and API pages hold what they are made from."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python", "jupytext"):
    pytest.importorskip(module, reason="the docs extra is not installed")


def test_the_docs_site_builds_strictly_with_the_readme_the_tutorial_and_the_api(tmp_path):
    site = tmp_path / "site"
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml")]
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [*command, "--site-dir", str(site)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "WARNING" not in output, output[-3000:]
    home = (site / "index.html").read_text()
    assert "Networks of neurons whose activation function is steered" in home
    assert 'href="analysis/"' in home  # the README's docs/ links, relative to the site
    tutorial = (site / "tutorial" / "index.html").read_text()
    assert "Tutorial: train a network" in tutorial and "load_sweep" in tutorial
    assert (site / "tutorial.py").read_text() == (ROOT / "docs" / "tutorial.py").read_text()
    api = (site / "reference" / "api" / "index.html").read_text()
    for name in ("neuromod.api.launch.train", "neuromod.api.runs.Run", "neuromod.api.sweeps.load_sweep"):
        assert f'id="{name}"' in api, name
    assert ":func:" not in api  # the docstrings' roles show as code
