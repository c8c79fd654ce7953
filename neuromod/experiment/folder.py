"""A run folder (Hydra's output directory) and everything in it that a run writes or reads back.

``summary.json`` says where the run stands: ``running`` while it trains, then ``completed``, ``diverged``,
``interrupted`` or ``failed`` (with the error). A running run's summary names its owner (host, pid) and
carries a heartbeat (:mod:`~neuromod.experiment.liveness`): a re-launch into the folder of a run that is
still alive is refused, one whose owner is gone (stale) is run again. ``checkpoint.pt`` is the trainer's
state for a resume; ``metrics.csv``, ``trials.npz``, ``params.tex`` and ``figures/`` are the results. Every
file is written atomically (:mod:`neuromod.io`); a write that fails raises :class:`~neuromod.io.WriteError`
naming the file and leaves the file's previous version. Whether a folder's completed run is reused
(``skip_completed``) or a checkpoint is resumed is decided here. Torch is imported only by the checkpoint
methods.
"""

from __future__ import annotations

import pickle
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neuromod import io
from neuromod.experiment import liveness
from neuromod.experiment.settings import changed_settings
from neuromod.validation import ConfigError, first_line

if TYPE_CHECKING:
    import torch

    from neuromod.training import Trainer


class StillRunning(ConfigError):
    """The folder belongs to a run that is still alive: it is left as it is."""


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
        summary = self._summary()
        return summary if summary is not None and summary.get("status") == "completed" else None

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

    def _summary(self) -> dict | None:
        try:
            summary = io.read_json(self.summary_path)
        except (OSError, ValueError):
            return None
        return summary if isinstance(summary, dict) else None

    def _other_running(self) -> tuple[dict, float | None] | None:
        """A ``running`` summary written by another process, and how long it has been silent if it is
        stale (:func:`~neuromod.experiment.liveness.staleness`); None if there is none."""
        summary = self._summary()
        if summary is None or summary.get("status") != "running" or self._is_mine(summary):
            return None
        return summary, liveness.staleness(summary, last_modified=self.summary_path.stat().st_mtime)

    def live_owner(self) -> dict | None:
        """The summary of a run that is still running in this folder in another process (its owner is
        alive and its heartbeat fresh), else None."""
        other = self._other_running()
        return other[0] if other is not None and other[1] is None else None

    @staticmethod
    def _is_mine(summary: dict) -> bool:
        """Written by this process (an earlier run of an in-process sweep or test): not another owner."""
        mine = liveness.owner()
        return summary.get("host") == mine["host"] and summary.get("pid") == mine["pid"]

    def refuse_live_owner(self) -> None:
        """:class:`StillRunning` if another process is running this folder (nothing in it is touched)."""
        summary = self.live_owner()
        if summary is None:
            return
        started = summary.get("started_at")
        when = "at an unknown time"
        if started:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
        raise StillRunning(
            f"{self.path} is still running (host {summary.get('host')}, pid {summary.get('pid')}, started "
            f"{when}); its folder is left as it is: wait for it to end, or stop that process and run again"
        )

    def stale_attempt(self) -> str | None:
        """A description of an earlier attempt that says ``running`` but whose owner is gone, else None."""
        other = self._other_running()
        if other is None or other[1] is None:
            return None
        summary, silent = other
        why = (
            f"its process is gone; last heartbeat {silent:.0f} s ago"
            if silent <= liveness.STALE_AFTER_S
            else f"no heartbeat for {silent:.0f} s"
        )
        return (
            f"the earlier attempt in {self.path} (host {summary.get('host', '?')}, pid "
            f"{summary.get('pid', '?')}) is stale ({why})"
        )

    def write_summary(self, summary: dict[str, Any]) -> None:
        with io.writing(self.summary_path):
            io.write_json(self.summary_path, summary)

    def heartbeat(self, summary: dict[str, Any], step: int) -> None:
        """A running run's ``summary.json`` with its heartbeat and step brought up to date."""
        summary["steps"] = step
        self.write_summary(liveness.beat(summary))

    def record_failure(
        self, summary: dict[str, Any], started: float | None, error: BaseException, trace: bool = False
    ) -> None:
        """``summary.json`` says ``failed`` with the error, unless the folder holds a completed run or one
        still running in another process (never overwritten)."""
        if self.completed_summary() is not None or self.live_owner() is not None:
            return
        elapsed = 0.0 if started is None else time.time() - started
        summary.update(status="failed", error=str(error), wall_time_s=round(elapsed, 3))
        if trace:
            summary["traceback"] = traceback.format_exc()
        self.write_summary(summary)

    def record_write_failure(self, summary: dict[str, Any], started: float, error: io.WriteError) -> None:
        """Complete the error's one line with what is intact; ``summary.json`` says ``failed`` with it when
        it can still be written, else it keeps its previous state."""
        error.note = f"{self._kept_checkpoint()} and earlier result files are intact"
        try:
            self.record_failure(summary, started, error)
        except OSError:
            pass  # the summary cannot be written either

    def _kept_checkpoint(self) -> str:
        step = self.checkpoint_step()
        if step is not None:
            return f"the last good checkpoint (step {step})"
        try:
            exists = self.checkpoint_path.exists()
        except OSError:
            exists = True
        return "the last checkpoint (unreadable now)" if exists else "no checkpoint had been written"

    # -- results -----------------------------------------------------------------------------------
    def write_metrics(self, rows: list[dict]) -> None:
        with io.writing(self.metrics_path):
            io.write_csv(self.metrics_path, rows)

    def write_trials(self, arrays: dict[str, Any]) -> None:
        with io.writing(self.path / "trials.npz"):
            io.save_npz(self.path / "trials.npz", **arrays)

    def write_params_table(self, text: str) -> None:
        with io.writing(self.path / "params.tex"):
            io.write_text(self.path / "params.tex", text)

    # -- checkpoint --------------------------------------------------------------------------------
    def save_checkpoint(self, trainer: Trainer) -> None:
        """Save the trainer's state atomically; non-finite weights are never saved (``Diverged`` instead),
        so the last checkpoint of a diverged run is its last good state."""
        from neuromod.training.loop import Diverged, all_finite

        trainer.sync()
        if not all_finite(trainer.model):
            raise Diverged(trainer.step, "a parameter")
        with io.writing(self.checkpoint_path):
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
        with io.writing(self.checkpoint_path):
            self.checkpoint_path.unlink(missing_ok=True)
