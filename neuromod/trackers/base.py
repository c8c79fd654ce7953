"""The tracker interface and how ``cfg.logger`` becomes a tracker."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from neuromod.observer import RunObserver
from neuromod.runfolder.settings import is_execution_key
from neuromod.validation import ConfigError, instantiation_error

log = logging.getLogger(__name__)


class Tracker(RunObserver):
    """A run observer that writes the run's progress for another tool (the run's start, every evaluation,
    its end with ``run_dir/figures`` drawn, its close). This base class records nothing (``logger=none``)."""


def open_tracker(cfg: DictConfig, run_dir: str | Path) -> Tracker:
    """The tracker ``cfg.logger`` names (``_target_``), writing into ``run_dir``; a :class:`Tracker` that
    records nothing when the config has no logger or its ``_target_`` is null. ``ConfigError`` (one line)
    when the node cannot be built.

    ``logger.requires`` (the package the tracker needs) is checked before the run
    (:func:`neuromod.runner.checks.check_config`) and is not passed on.
    """
    node = OmegaConf.select(cfg, "logger", default=None)
    if node is None or OmegaConf.select(node, "_target_", default=None) is None:
        return Tracker()
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    settings = OmegaConf.to_container(node, resolve=True)
    settings.pop("requires", None)
    try:
        return instantiate(settings, run_dir=Path(run_dir), _convert_="all")
    except (InstantiationException, TypeError, ImportError) as error:
        cause = error.__cause__ if isinstance(error, InstantiationException) else None
        raise ConfigError(instantiation_error(cause or error, "logger", node)) from None


def hparam_values(
    settings: dict[str, Any], keys: list[str] | None, overrides: list[str] = ()
) -> dict[str, Any]:
    """The run's hyperparameters for a tracker's comparison table.

    ``keys`` of the flattened ``settings``; when ``keys`` is None, the keys the job's command line set
    (``overrides``, ``key=value`` lines: in a sweep, what varies; a group choice such as ``af=gain`` keeps
    its option's name), or every setting when there are none. Settings in
    :data:`~neuromod.runfolder.settings.EXECUTION_KEYS` (and
    below them) are left out unless named in ``keys``. Values are numbers, booleans or text.
    """
    chosen: dict[str, Any] = {}
    if keys is not None:
        chosen = {key: settings[key] for key in keys if key in settings}
    else:
        for line in overrides:
            key, _, value = line.lstrip("+~").partition("=")
            if not key.startswith("hydra.") and not is_execution_key(key):
                chosen[key] = settings.get(key, value)
        if not chosen:
            chosen = {key: value for key, value in settings.items() if not is_execution_key(key)}
    return {
        key: value if isinstance(value, (bool, int, float, str)) else str(value)
        for key, value in chosen.items()
    }
