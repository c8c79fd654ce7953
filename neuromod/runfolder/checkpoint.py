"""The format of ``checkpoint.pt``: the trainer's state and, from format 2 on, the config it was trained with.

Format 1 (written before formats were numbered; no ``format_version`` key) is the trainer's
:meth:`~neuromod.training.Trainer.state_dict` alone: rebuilding its network needs the run folder's
``.hydra/config.yaml``. Format 2 adds ``format_version`` and ``config``, the run's resolved config as a plain
dict (``OmegaConf.to_container(cfg, resolve=True)`` without Hydra's node), so that the file on its own is
enough to rebuild the network (``python -m neuromod.analyze`` on a copied checkpoint). The trainer's state
keys are the same in both, side by side with the new ones: :func:`read_checkpoint` gives back the state as
the trainer wrote it. Torch is imported only when a file is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: The format :func:`wrap` writes.
FORMAT_VERSION = 2
#: The keys format 2 adds to the trainer's state.
VERSION_KEY, CONFIG_KEY = "format_version", "config"


class CheckpointError(ValueError):
    """A file that is not a readable neuromod checkpoint (foreign, truncated, or of a newer format)."""


def plain_config(cfg: Any) -> dict[str, Any]:
    """The resolved config as a plain dict, without Hydra's node: what a checkpoint stores."""
    from omegaconf import DictConfig, OmegaConf

    config = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    config.pop("hydra", None)
    return config


def wrap(state: dict[str, Any], config: Any | None) -> dict[str, Any]:
    """What ``checkpoint.pt`` holds: the trainer's ``state`` with the format version and ``config`` (a
    DictConfig or a dict, stored resolved and plain). Without a config the state is written as format 1,
    as before."""
    if config is None:
        return state
    return {**state, VERSION_KEY: FORMAT_VERSION, CONFIG_KEY: plain_config(config)}


def unwrap(content: Any, path: str | Path = "checkpoint") -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(the stored config or None for format 1, the trainer's state) from a loaded checkpoint's content;
    :class:`CheckpointError` naming ``path`` when it is not a neuromod checkpoint."""
    if not isinstance(content, dict) or "model" not in content or "step" not in content:
        raise CheckpointError(f"{path} is not a neuromod checkpoint (no model state and step)")
    version = content.get(VERSION_KEY, 1)
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {version!r}, this version reads formats 1 to {FORMAT_VERSION}: "
            "use a newer neuromod"
        )
    state = {k: v for k, v in content.items() if k not in (VERSION_KEY, CONFIG_KEY)}
    config = content.get(CONFIG_KEY) if version >= 2 else None
    if version >= 2 and not isinstance(config, dict):
        raise CheckpointError(f"{path} (format {version}) has no stored config")
    return config, state


def read_checkpoint(
    path: str | Path, map_location: Any = "cpu"
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(the stored config or None for format 1, the trainer's state) of the checkpoint at ``path``, loaded
    onto ``map_location``. :class:`CheckpointError` naming the file when it is truncated, foreign or of a
    newer format; OSError when it is missing or may not be read."""
    import torch

    try:
        content = torch.load(path, map_location=map_location, weights_only=False)
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except Exception as error:  # torch and pickle raise many kinds (an OSError too) for a file not theirs
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"{path} cannot be loaded as a checkpoint (truncated or foreign? {text})"
        ) from None
    return unwrap(content, path)
