"""A run folder (Hydra's output directory) and everything in it that a run writes or reads back.

``summary.json`` says where the run stands: ``running`` while it trains, then ``completed``, ``diverged``,
``interrupted`` or ``failed`` (with the error). A running run's summary names its owner (host, pid) and
carries a heartbeat (:mod:`~neuromod.runfolder.liveness`): a re-launch into the folder of a run that is
still alive is refused, one whose owner is gone (stale) is run again. ``checkpoint.pt`` is the trainer's
state for a resume and, when :attr:`RunFolder.config` is set, the resolved config it was trained with (its
format: :mod:`~neuromod.runfolder.checkpoint`); ``metrics.csv``, ``trials.npz``, ``params.tex`` and
``figures/`` are the results. Every file is written atomically (:mod:`neuromod.io`); a write that fails
raises :class:`~neuromod.io.WriteError` naming the file and leaves the file's previous version. What a
launch does with a folder (start afresh, resume its checkpoint, reuse its completed run, run a stale
attempt again, or refuse) is decided once, by :meth:`RunFolder.decide_launch`. The file names are
:mod:`neuromod.runfolder.files`. Torch is imported only by the checkpoint methods.
"""

from __future__ import annotations

import pickle
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neuromod import io
from neuromod.runfolder import checkpoint, files, liveness
from neuromod.runfolder.settings import changed_settings
from neuromod.validation import ConfigError, first_line

if TYPE_CHECKING:
    import torch


class StillRunning(ConfigError):
    """The folder belongs to a run that is still alive: it is left as it is."""


#: What a launch does with its folder (:meth:`RunFolder.decide_launch`).
FRESH, RESUME, SKIP = "fresh", "resume", "skip"


@dataclass(frozen=True)
class Launch:
    """What a launch does with its run folder.

    ``action``: ``fresh`` (train from step 0; a checkpoint left there is discarded), ``resume`` (continue
    from the folder's checkpoint) or ``skip`` (the folder's completed run is the result: ``previous``).
    ``stale``: an earlier attempt that says ``running`` but whose process is gone, in words (it is run
    again, fresh or resumed as ``action`` says); None when there was none.
    """

    action: str
    previous: dict | None = None
    stale: str | None = None


class RunFolder:
    """The files of one run in ``path`` (created if missing, unless ``create=False``: a reader's view)."""

    def __init__(self, path: str | Path, create: bool = True, config: Any | None = None):
        self.path = Path(path)
        #: The run's config (DictConfig or dict), stored resolved in every checkpoint so that the file on
        #: its own rebuilds the network; None: checkpoints are written without it (format 1).
        self.config = config
        if create:
            self.path.mkdir(parents=True, exist_ok=True)
        self.summary_path = self.path / files.SUMMARY
        self.checkpoint_path = self.path / files.CHECKPOINT
        self.metrics_path = self.path / files.METRICS
        self.trials_path = self.path / files.TRIALS
        self.params_path = self.path / files.PARAMS_TABLE
        self.analysis_path = self.path / files.ANALYSIS
        self.figures_dir = self.path / files.FIGURES
        self.hydra_config_path = self.path / files.HYDRA_CONFIG
        self.hydra_settings_path = self.path / files.HYDRA_SETTINGS
        self.hydra_overrides_path = self.path / files.HYDRA_OVERRIDES

    def __str__(self) -> str:
        return str(self.path)

    # -- what a launch does ------------------------------------------------------------------------
    def decide_launch(self, settings: dict[str, Any], skip_completed: bool, resume: bool) -> Launch:
        """What a launch with ``settings`` (flattened) does with this folder, from one reading of
        ``summary.json``.

        A completed run is reused under ``skip_completed`` when its settings match (a ConfigError when
        they differ: reusing it would report old results as new ones); a run alive in another process is
        refused (:class:`StillRunning`, the folder untouched); a stale attempt is run again. Otherwise the
        run resumes from the folder's checkpoint when ``resume`` is set and there is one, else starts
        afresh.
        """
        summary = self._summary()
        status = summary.get("status") if summary is not None else None
        stale = None
        if status == files.COMPLETED and skip_completed:
            self._refuse_other_settings(summary, settings)
            return Launch(SKIP, previous=summary)
        if status == files.RUNNING and not self._is_mine(summary):
            silent = liveness.staleness(summary, last_modified=self._modified())
            if silent is None:
                self._refuse_live(summary)
            stale = self._stale_text(summary, silent)
        action = RESUME if resume and self.checkpoint_path.exists() else FRESH
        return Launch(action, stale=stale)

    def _refuse_other_settings(self, previous: dict, settings: dict[str, Any]) -> None:
        if not isinstance(previous.get("config"), dict):
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

    def read_summary(self) -> dict:
        """``summary.json`` as a dict; OSError or ValueError (with the reason) when it is missing, corrupt
        or not a JSON object."""
        summary = io.read_json(self.summary_path)
        if not isinstance(summary, dict):
            raise ValueError("not a JSON object")
        return summary

    def read_analysis_scalars(self) -> dict[str, Any] | None:
        """The scalars of ``analysis.json``; None when there is none; ValueError/OSError when unreadable."""
        if not self.analysis_path.exists():
            return None
        data = io.read_json(self.analysis_path)
        scalars = data.get("scalars") if isinstance(data, dict) else None
        if not isinstance(scalars, dict):
            raise ValueError("no scalars")
        return scalars

    def _modified(self) -> float | None:
        try:
            return self.summary_path.stat().st_mtime
        except OSError:
            return None

    def _summary(self) -> dict | None:
        try:
            return self.read_summary()
        except (OSError, ValueError):
            return None

    def _protected(self) -> bool:
        """Whether ``summary.json`` (read once) holds a completed run or one still alive in another
        process: never overwritten by a failure."""
        summary = self._summary()
        if summary is None:
            return False
        if summary.get("status") == files.COMPLETED:
            return True
        return (
            summary.get("status") == files.RUNNING
            and not self._is_mine(summary)
            and liveness.staleness(summary, last_modified=self._modified()) is None
        )

    @staticmethod
    def _is_mine(summary: dict) -> bool:
        """Written by this process (an earlier run of an in-process sweep or test): not another owner."""
        mine = liveness.owner()
        return summary.get("host") == mine["host"] and summary.get("pid") == mine["pid"]

    def _refuse_live(self, summary: dict) -> None:
        """:class:`StillRunning`: another process is running this folder (nothing in it is touched)."""
        started = summary.get("started_at")
        when = "at an unknown time"
        if started:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
        raise StillRunning(
            f"{self.path} is still running (host {summary.get('host')}, pid {summary.get('pid')}, started "
            f"{when}); its folder is left as it is: wait for it to end, or stop that process and run again"
        )

    def _stale_text(self, summary: dict, silent: float) -> str:
        """An earlier attempt that says ``running`` but whose owner is gone, in words."""
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
        if self._protected():
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
        with io.writing(self.trials_path):
            io.save_npz(self.trials_path, **arrays)

    def write_params_table(self, text: str) -> None:
        with io.writing(self.params_path):
            io.write_text(self.params_path, text)

    # -- checkpoint --------------------------------------------------------------------------------
    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Save a trainer's state (``Trainer.checkpoint_state()``: never non-finite weights) and
        :attr:`config` (:mod:`~neuromod.runfolder.checkpoint`) atomically."""
        with io.writing(self.checkpoint_path):
            io.save_torch(self.checkpoint_path, checkpoint.wrap(state, self.config))

    def checkpoint_step(self) -> int | None:
        """The step of the saved checkpoint, of either format (None: none, or unreadable — never fatal
        here)."""
        if not self.checkpoint_path.exists():
            return None
        try:
            return int(checkpoint.read_checkpoint(self.checkpoint_path)[1]["step"])
        except Exception:
            return None

    def restore(self, trainer: Any, device: torch.device) -> bool:
        """Load the checkpoint into ``trainer`` (anything with ``load_state_dict``: a Trainer); False if
        there is none. A checkpoint that does not fit this configuration, or is no checkpoint, is a
        ConfigError. Reads both formats
        (:mod:`~neuromod.runfolder.checkpoint`): the trainer gets its own state either way."""
        if not self.checkpoint_path.exists():
            return False
        try:
            _, state = checkpoint.read_checkpoint(self.checkpoint_path, map_location=device)
            trainer.load_state_dict(state)
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
