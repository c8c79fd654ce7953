"""Where the repository's ``config/`` folder is (beside the package in a checkout or an editable install)."""

from pathlib import Path

#: The config groups ``main.py`` composes.
CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"
