"""Compose the experiment config without running ``main.py`` (tests, benchmarks, notebooks); the resolvers
the configs use (registered on import, for ``main.py`` too)."""

from __future__ import annotations

import os
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from neuromod.paths import CONFIG_DIR  # noqa: F401  (the config folder, also for the callers of compose)


def compose_config(
    overrides: list[str] | None = None,
    config_dir: str | Path = CONFIG_DIR,
    return_hydra_config: bool = False,
) -> DictConfig:
    """The config ``main.py`` would compose for ``overrides``; Hydra's global state is cleared after.

    ``return_hydra_config``: keep Hydra's own node (``hydra.run.dir``, ``hydra.runtime.choices``, the
    overrides), as a launched job sees it; :func:`neuromod.api.train` writes it to ``.hydra/hydra.yaml``.
    """
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(config_dir)):
            return compose(
                config_name="config",
                overrides=list(overrides or []),
                return_hydra_config=return_hydra_config,
            )
    finally:
        GlobalHydra.instance().clear()


def cores(per_core: int = 1) -> int:
    """``${cores:k}`` in a config: ``k`` times the cores this process may run on (a launcher preset's jobs
    per core)."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return int(per_core) * (available or 1)


def register_resolvers() -> None:
    """Register the resolvers the configs use (``cores``), once per process."""
    if not OmegaConf.has_resolver("cores"):
        OmegaConf.register_new_resolver("cores", cores)


register_resolvers()

from neuromod import schema  # noqa: E402  (the settings' schemas, for every composition)

schema.register()
