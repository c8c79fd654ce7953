"""``logger=tensorboard``: event files in the run folder, read by ``tensorboard --logdir <sweep folder>``.

Per evaluation: the logged row's numbers as scalars (``train_loss``, ``eval_loss``, ``eval_accuracy``, ...)
and the distributions of the activation parameters the modulator set (``activation/<name>``, over the
evaluation's time steps, trials and neurons). At the end: the run's figures as images, the final and test
metrics as scalars (``final/<name>``) and the run's hyperparameters with those metrics (TensorBoard's
HPARAMS tab), so the jobs of a sweep can be compared. Needs the ``tensorboard`` package (the extra of the
same name).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from neuromod.runfolder.files import FIGURES
from neuromod.trackers.base import Tracker, hparam_values

log = logging.getLogger(__name__)


class TensorBoardTracker(Tracker):
    """Writes TensorBoard event files into ``run_dir`` (one TensorBoard run per job folder).

    ``histograms``: the activation parameters' distributions at every evaluation; ``figures``: the run's
    PNG figures at the end; ``hparams``: the settings shown in the HPARAMS tab (null: the job's
    command-line overrides, else every setting).
    """

    def __init__(
        self,
        run_dir: str | Path,
        histograms: bool = True,
        figures: bool = True,
        hparams: list[str] | None = None,
        flush_secs: int = 30,
    ):
        self.run_dir = Path(run_dir)
        self.histograms = histograms
        self.figures = figures
        self.hparams = list(hparams) if hparams is not None else None
        self.flush_secs = int(flush_secs)
        self._writer = None

    def _open(self, purge_step: int | None):
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(str(self.run_dir), purge_step=purge_step, flush_secs=self.flush_secs)
        return self._writer

    @property
    def writer(self):
        return self._writer if self._writer is not None else self._open(None)

    def on_fit_start(self, trainer) -> None:
        if self._writer is None:
            # A resumed run: TensorBoard drops what an earlier attempt wrote from this step on.
            self._open(trainer.step + 1 if trainer.step > 0 else None)

    def on_evaluation(self, trainer, row: dict) -> None:
        step = int(row["step"])
        for name, value in row.items():
            if name != "step" and _is_number(value):
                self.writer.add_scalar(name, float(value), step)
        output = trainer.last_eval.output if trainer.last_eval is not None else None
        if self.histograms and output is not None and output.params is not None:
            params = output.params.detach().float().cpu()  # [T, B, N, P]
            for index, name in enumerate(output.param_names):
                self.writer.add_histogram(f"activation/{name}", params[..., index].flatten(), step)

    def on_run_end(self, summary: dict[str, Any], run_dir: Path) -> None:
        try:
            self._write_end(summary, Path(run_dir))
        except Exception:  # the run's own record is safe; a tracker must never cost it
            log.exception("TensorBoard: could not write the end of the run into %s", run_dir)

    def _write_end(self, summary: dict[str, Any], run_dir: Path) -> None:
        writer, step = self.writer, int(summary.get("steps") or 0)
        if self.figures:
            import matplotlib.image as mpimg

            for path in sorted((run_dir / FIGURES).glob("*.png")):
                image = mpimg.imread(path)  # [H, W, C] floats in [0, 1]
                writer.add_image(f"figures/{path.stem}", image[..., :3], step, dataformats="HWC")
        metrics = {
            f"final/{name}": float(value)
            for name, value in (summary.get("final") or {}).items()
            if _is_number(value) and math.isfinite(float(value))
        }
        metrics["final/completed"] = float(summary.get("status") == "completed")
        from torch.utils.tensorboard.summary import hparams

        values = hparam_values(summary.get("config") or {}, self.hparams, _job_overrides())
        values["status"] = str(summary.get("status"))
        for summary_proto in hparams(values, metrics):
            writer.file_writer.add_summary(summary_proto)
        for name, value in metrics.items():
            writer.add_scalar(name, value, step)
        writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _job_overrides() -> list[str]:
    """The job's command-line overrides when Hydra launched it, else none."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return list(HydraConfig.get().overrides.task)
    except Exception:  # not launched by Hydra (a test calling run() directly)
        return []
