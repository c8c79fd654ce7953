"""A run folder (Hydra's output directory) and everything in it that a run writes or reads back.

``summary.json`` says where the run stands: ``running`` while it trains, then ``completed``, ``diverged``,
``interrupted`` or ``failed`` (with the error). ``checkpoint.pt`` is the trainer's state for a resume;
``metrics.csv``, ``trials.npz``, ``params.tex`` and ``figures/`` are the results. Every file is written
atomically (:mod:`neuromod.io`). Whether a folder's completed run is reused (``skip_completed``) or a
checkpoint is resumed is decided here. Torch is imported only by the checkpoint methods.
"""

from __future__ import annotations

import pickle
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neuromod import io
from neuromod.experiment.settings import changed_settings
from neuromod.validation import ConfigError, first_line

if TYPE_CHECKING:
    import torch

    from neuromod.training import Trainer


class RunFolder:
    """The files of one run in ``path`` (created if missing)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.summary_path = self.path / "summary.json"
        self.checkpoint_path = self.path / "checkpoint.pt"
        self.metrics_path = self.path / "metrics.csv"

    def __str__(self) -> str:
        return str(self.path)

    # -- status ------------------------------------------------------------------------------------
    def completed_summary(self) -> dict | None:
        """The summary of a completed run already in this folder (a re-launched sweep), else None."""
        try:
            summary = io.read_json(self.summary_path)
        except (OSError, ValueError):
            return None
        return summary if isinstance(summary, dict) and summary.get("status") == "completed" else None

    def refuse_other_settings(self, settings: dict[str, Any]) -> None:
        """A ConfigError if this folder holds a completed run with other result-changing settings (reusing
        it under ``skip_completed`` would report old results as new ones)."""
        previous = self.completed_summary()
        if previous is None or not isinstance(previous.get("config"), dict):
            return
        changed = changed_settings(previous["config"], settings)
        if changed:
            more = f"; and {len(changed) - 4} more" if len(changed) > 4 else ""
            shown = "; ".join(changed[:4]) + more
            raise ConfigError(
                f"{self.path} already holds a completed run with other settings ({shown}); its results are "
                "kept. Use a new hydra.sweep.dir or hydra.run.dir for new settings, or "
                "skip_completed=false to train again and replace them"
            )

    def write_summary(self, summary: dict[str, Any]) -> None:
        io.write_json(self.summary_path, summary)

    def record_failure(
        self, summary: dict[str, Any], started: float | None, error: BaseException, trace: bool = False
    ) -> None:
        """``summary.json`` says ``failed`` with the error, unless the folder holds a completed run (never
        overwritten)."""
        if self.completed_summary() is not None:
            return
        elapsed = 0.0 if started is None else time.time() - started
        summary.update(status="failed", error=str(error), wall_time_s=round(elapsed, 3))
        if trace:
            summary["traceback"] = traceback.format_exc()
        self.write_summary(summary)

    # -- results -----------------------------------------------------------------------------------
    def write_metrics(self, rows: list[dict]) -> None:
        io.write_csv(self.metrics_path, rows)

    def write_trials(self, arrays: dict[str, Any]) -> None:
        io.save_npz(self.path / "trials.npz", **arrays)

    def write_params_table(self, text: str) -> None:
        io.write_text(self.path / "params.tex", text)

    # -- checkpoint --------------------------------------------------------------------------------
    def save_checkpoint(self, trainer: Trainer) -> None:
        """Save the trainer's state atomically; non-finite weights are never saved (``Diverged`` instead),
        so the last checkpoint of a diverged run is its last good state."""
        from neuromod.training.loop import Diverged, all_finite

        trainer.sync()
        if not all_finite(trainer.model):
            raise Diverged(trainer.step, "a parameter")
        io.save_torch(self.checkpoint_path, trainer.state_dict())

    def checkpoint_step(self) -> int | None:
        """The step of the saved checkpoint (None: none, or unreadable — never fatal here)."""
        import torch

        if not self.checkpoint_path.exists():
            return None
        try:
            return int(torch.load(self.checkpoint_path, map_location="cpu", weights_only=False)["step"])
        except Exception:
            return None

    def restore(self, trainer: Trainer, device: torch.device) -> bool:
        """Load the checkpoint into ``trainer``; False if there is none. A checkpoint that does not fit
        this configuration is a ConfigError."""
        import torch

        if not self.checkpoint_path.exists():
            return False
        try:
            trainer.load_state_dict(torch.load(self.checkpoint_path, map_location=device, weights_only=False))
        except (KeyError, RuntimeError, EOFError, ValueError, TypeError, pickle.UnpicklingError) as error:
            raise ConfigError(
                f"training.resume=true: checkpoint {self.checkpoint_path} cannot be used "
                f"({first_line(error)}); remove it to start again, or resume with the configuration "
                "that wrote it"
            ) from None
        return True

    def discard_checkpoint(self) -> None:
        """A fresh start: a checkpoint left by an earlier attempt must not pass for this run's."""
        self.checkpoint_path.unlink(missing_ok=True)
