"""The ensemble launcher's settings (``hydra/launcher=ensemble``), stored in Hydra's ConfigStore when Hydra
discovers its plugins."""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore

#: The launcher class Hydra instantiates for ``hydra/launcher=ensemble``.
LAUNCHER_TARGET = "hydra_plugins.neuromod_ensemble.ensemble_launcher.EnsembleLauncher"


@dataclass
class EnsembleLauncherConf:
    """``hydra.launcher.*`` of ``hydra/launcher=ensemble`` (docs/sweeps.md)."""

    _target_: str = LAUNCHER_TARGET
    #: Groups (ensembles or solo jobs) at once: 1 runs them one after another in the sweep's process; N > 1
    #: runs each in a worker process of its own (joblib's loky), torch's threads split between them
    #: (cores // N each); -1: one worker per core.
    n_jobs: int = 1
    #: The most members one ensemble trains (a larger group is split into consecutive ensembles); null:
    #: no cap.
    max_members: int | None = None
    #: A group of fewer jobs runs them as solo runs (an ensemble of one is slower than its solo run).
    min_members: int = 2
    #: false: jobs share an ensemble only with jobs of the same ``task.max_delay``; true: jobs of other
    #: delays join it too, every member's trials padded at each step to the longest (the same results,
    #: more arithmetic: a member of delay 5 in an ensemble with delay 100 computes 106 steps a trial).
    pad_delays: bool = False


def register() -> None:
    ConfigStore.instance().store(
        group="hydra/launcher", name="ensemble", node=EnsembleLauncherConf, provider="neuromod"
    )


register()
