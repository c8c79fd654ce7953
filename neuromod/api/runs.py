"""A saved run, from Python: :func:`load_run` reads a run folder into a :class:`Run`.

A :class:`Run` reads its files when asked (``summary.json`` at once, the rest on first use) and rebuilds the
trained network from ``checkpoint.pt`` (:func:`neuromod.analyze.load_network`). Its plots are the run
figures' own functions (:mod:`neuromod.plotting.transfer_function`, :mod:`neuromod.plotting.analysis_figures`)
drawn for a trial and neurons of the caller's choice; its analyses are
:func:`neuromod.analysis.population.population_analyses`. A file that is missing or cannot be read is a
:class:`~neuromod.plotting.run_files.NotARunError` naming it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neuromod.plotting.run_files import CorruptRunError, NotARunError
from neuromod.runfolder import files
from neuromod.runfolder.folder import RunFolder

if TYPE_CHECKING:
    import pandas as pd
    import torch
    from omegaconf import DictConfig

    from neuromod.plotting.run_files import RunFiles
    from neuromod.tasks.base import Task

__all__ = ["CorruptRunError", "Figure", "NotARunError", "Run", "load_run"]


class Figure:
    """A figure file drawn by a :class:`Run`: path-like (``os.fspath``), and shown inline by a notebook."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"Figure({str(self.path)!r})"

    def _repr_png_(self) -> bytes | None:
        return self.path.read_bytes() if self.path.suffix == ".png" else None


def load_run(run_dir: str | Path) -> Run:
    """The run in ``run_dir`` (a folder ``main.py`` or :func:`~neuromod.api.launch.train` wrote).

    Raises :class:`~neuromod.plotting.run_files.NotARunError` (one line naming the folder or file) when
    it is not a directory or holds no readable ``summary.json``.
    """
    return Run(run_dir)


class Run:
    """One run folder: its record, its results and its trained network.

    Attributes:
        path: The run folder.
        summary: ``summary.json``: ``status``, ``config`` (the settings, flattened), ``final`` (the final
            validation and test metrics), timings.
    """

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir)
        self._folder = RunFolder(self.path, create=False)
        if not self.path.is_dir():
            raise NotARunError(f"{self.path} is not a directory")
        if not self._folder.summary_path.is_file():
            raise NotARunError(f"{self.path} is not a neuromod run folder (no {files.SUMMARY})")
        try:
            self.summary: dict[str, Any] = self._folder.read_summary()
        except (OSError, ValueError) as error:
            raise CorruptRunError(f"{self._folder.summary_path} is unreadable: {error}") from None

    def __repr__(self) -> str:
        accuracy = self.final.get("test_accuracy")
        shown = f", test_accuracy={accuracy:.3f}" if isinstance(accuracy, float) else ""
        return f"Run({str(self.path)!r}, status={self.status!r}{shown})"

    # -- the record ----------------------------------------------------------------------------------
    @property
    def status(self) -> str:
        """``completed``, ``diverged``, ``interrupted``, ``failed`` or ``running``, as the run wrote it."""
        return str(self.summary.get("status"))

    @property
    def final(self) -> dict[str, Any]:
        """The final metrics (``summary.json``'s ``final``; empty for a run that did not finish)."""
        return self.summary.get("final") or {}

    @functools.cached_property
    def config(self) -> DictConfig:
        """The resolved config the run was trained with: ``.hydra/config.yaml``, else (a folder holding only
        a copied checkpoint) the config stored in ``checkpoint.pt``."""
        from omegaconf import OmegaConf

        if self._folder.hydra_config_path.is_file():
            from neuromod.results.runs import job_config

            try:
                cfg = job_config(self.path)
                OmegaConf.resolve(cfg)
                return cfg
            except Exception as error:
                raise CorruptRunError(f"{self._folder.hydra_config_path} cannot be read: {error}") from None
        return self._rebuilt()[0]

    @functools.cached_property
    def metrics(self) -> pd.DataFrame:
        """``metrics.csv``: one row per validation evaluation (``step``, ``train_loss``, ``eval_loss``,
        ``eval_accuracy``, ...)."""
        import pandas as pd

        path = self._folder.metrics_path
        if not path.is_file():
            raise NotARunError(f"{path} is missing: the run logged no evaluation (status {self.status})")
        try:
            frame = pd.read_csv(path)
        except (OSError, ValueError) as error:  # pandas' parser and empty-file errors are ValueErrors
            raise CorruptRunError(f"{path} is unreadable: {error}") from None
        if "step" not in frame.columns:
            raise CorruptRunError(f"{path} is unreadable: no 'step' column (columns {list(frame.columns)})")
        return frame

    @property
    def analysis(self) -> dict[str, Any] | None:
        """``analysis.json`` (the population analyses the run wrote), or None when it has none."""
        from neuromod import io

        path = self._folder.analysis_path
        if not path.is_file():
            return None
        try:
            return io.read_json(path)
        except (OSError, ValueError) as error:
            raise CorruptRunError(f"{path} is unreadable: {error}") from None

    # -- the trained network -------------------------------------------------------------------------
    def _rebuilt(self) -> tuple[DictConfig, Task, torch.nn.Module]:
        if not hasattr(self, "_network"):
            from neuromod.analyze import Refused, load_network

            try:
                self._network = load_network(self.path)
            except Refused as error:
                raise NotARunError(str(error)) from None
        return self._network

    def network(self) -> torch.nn.Module:
        """The trained network, rebuilt on the CPU from ``checkpoint.pt`` (the same object every call)."""
        return self._rebuilt()[2]

    def task(self) -> Task:
        """The run's task, built from the checkpoint's config (draws fresh trials: ``task().sample``)."""
        return self._rebuilt()[1]

    def evaluate(self) -> dict[str, Any]:
        """Score the rebuilt network on the run's test set, drawn again from the run's seed: the
        ``test_*`` and control metrics of ``summary.json``'s ``final`` (``test_accuracy``, ``test_loss``,
        ``test_accuracy_by_delay``, ``query_swap_accuracy``, ...), computed afresh."""
        import torch

        from neuromod.runner.finish import held_out_metrics
        from neuromod.runner.run import draw_test_set
        from neuromod.training import resolve_loss

        cfg, task, model = self._rebuilt()
        batch, generator = draw_test_set(cfg, task, torch.device("cpu"))
        loss_kind = resolve_loss(cfg.training.loss, task)
        return held_out_metrics(model, task, batch, loss_kind, generator, chunk=int(cfg.training.batch_size))

    def analyse(
        self,
        what: tuple[str, ...] | None = None,
        n_trials: int = 256,
        seed: int | None = None,
        write: bool = False,
    ) -> dict[str, Any]:
        """Run the population analyses on the rebuilt network, on fresh trials
        (:func:`~neuromod.analysis.population.population_analyses`).

        Args:
            what: Analyses to run, of :data:`~neuromod.analysis.population.WHAT` (default: all but
                ``fixed_points``).
            n_trials: Fresh trials to record (at least 10: decoding is cross-validated).
            seed: Their seed; None: the run's.
            write: Also write the results to the run's ``analysis.json`` (as ``python -m neuromod.analyze``).

        Returns:
            What ``analysis.json`` holds: per analysis its curves and maps, ``scalars`` for tables.
        """
        from neuromod.analysis.population import CHEAP, population_analyses, write_analysis

        cfg, task, model = self._rebuilt()
        if n_trials < 10:
            raise ValueError(f"n_trials must be >= 10 (cross-validation needs trials), got {n_trials}")
        seed = int(cfg.get("seed", 0)) if seed is None else int(seed)
        results = population_analyses(model, task, tuple(what or CHEAP), int(n_trials), seed, self.final)
        if write:
            write_analysis(self.path, results)
        return results

    # -- the recorded trials -------------------------------------------------------------------------
    @functools.cached_property
    def _files(self) -> RunFiles:
        from neuromod.plotting.run_files import load_run as load_files

        return load_files(self.path)

    def trials(self) -> dict[str, Any]:
        """``trials.npz``: the example validation trials the run kept, as arrays (``inputs``, ``targets``,
        ``outputs`` ``[T, B, ...]``; ``activity``, ``params`` ``[T, B, N, P]``, ``drive`` where the network
        has them; ``query_step``, ``delay`` ``[B]``; channel and parameter names)."""
        return self._files.trials

    def _trial_and_neurons(self, trial: int | None, neurons: list[int] | None, count: int):
        from neuromod.plotting.run_figures import most_modulated, showcase_trial
        from neuromod.plotting.style import last_step

        trials = self._files.trials
        uses_activation = str(trials.get("uses_activation", True)).strip().lower() in ("1", "true")
        if "params" not in trials or not uses_activation:
            path = self._folder.trials_path
            raise ValueError(f"{path} holds no activation parameters: this network has none")
        n_trials, n_neurons = trials["params"].shape[1], trials["params"].shape[2]
        trial = showcase_trial(self._files) if trial is None else int(trial)
        if not 0 <= trial < n_trials:
            raise ValueError(f"trial {trial}: {self._folder.trials_path} holds trials 0 to {n_trials - 1}")
        if neurons is None:
            neurons = most_modulated(trials["params"][: last_step(trials, trial) + 1, trial], count)
        neurons = [int(i) for i in neurons]
        if not neurons or not all(0 <= i < n_neurons for i in neurons):
            raise ValueError(f"neurons {neurons}: the network has neurons 0 to {n_neurons - 1}")
        return trials, trial, neurons

    def _figure_path(self, folder: str | Path | None, name: str) -> Path:
        out = Path(folder) if folder is not None else self._folder.figures_dir
        out.mkdir(parents=True, exist_ok=True)
        return out / name

    # -- plots ---------------------------------------------------------------------------------------
    def plot_activation_function(
        self, trial: int | None = None, neurons: list[int] | None = None, folder: str | Path | None = None
    ) -> Figure:
        """Each neuron's transfer function at moments of one recorded trial (before the cue, early and late
        in the delay, at the query), with its actual drive there.

        ``trial``: an index into :meth:`trials` (default: the figures' showcase, the longest delay answered
        correctly); ``neurons``: default the 4 whose parameters move most. Written to
        ``<folder>/activation_function_trial<trial>.png`` (default folder: the run's ``figures/``).
        """
        from neuromod.plotting.transfer_function import activation_function

        trials, trial, neurons = self._trial_and_neurons(trial, neurons, 4)
        path = self._figure_path(folder, f"activation_function_trial{trial}.png")
        return Figure(activation_function(trials, path, trial, neurons))

    def plot_activation_params(
        self, trial: int | None = None, neurons: list[int] | None = None, folder: str | Path | None = None
    ) -> Figure:
        """The activation parameters (gain, threshold, softness as the family has them) over one recorded
        trial, per neuron (default: the 6 whose parameters move most); as
        :meth:`plot_activation_function`, into ``activation_params_trial<trial>.png``."""
        from neuromod.plotting.transfer_function import activation_params

        trials, trial, neurons = self._trial_and_neurons(trial, neurons, 6)
        path = self._figure_path(folder, f"activation_params_trial{trial}.png")
        return Figure(activation_params(trials, path, trial, neurons))

    def plot_analysis(
        self,
        analysis: dict[str, Any] | None = None,
        only: tuple[str, ...] | None = None,
        folder: str | Path | None = None,
    ) -> list[Figure]:
        """The figures of the population analyses (``decoding.png``, ``state_space.png``, ...) from
        ``analysis`` (what :meth:`analyse` returns; default: the run's ``analysis.json``, else a fresh
        :meth:`analyse`), ``only`` those named, into ``folder`` (default: the run's ``figures/``)."""
        from neuromod.plotting.analysis_figures import draw_analysis

        if analysis is None:
            analysis = self.analysis
            if analysis is None or any(name not in analysis for name in only or ()):
                analysis = self.analyse(what=only)
        out = Path(folder) if folder is not None else self._folder.figures_dir
        return [Figure(path) for path in draw_analysis(analysis, out, only)]

    def plot_decoding(
        self, analysis: dict[str, Any] | None = None, folder: str | Path | None = None
    ) -> Figure:
        """Cross-validated decoding of the trial's content over time from each signal (rates, activation
        parameters, modulator states), with chance and shuffled labels: ``decoding.png``, as
        :meth:`plot_analysis`."""
        drawn = self.plot_analysis(analysis, only=("decoding",), folder=folder)
        if not drawn:
            task = self._rebuilt()[1].name
            raise ValueError(f"no decoding to plot: task {task} names no content per trial")
        return drawn[0]

    def plot_all(self) -> list[Figure]:
        """Redraw every figure of the run into its ``figures/`` (as ``python -m neuromod.plot``)."""
        from neuromod.plotting import plot_run

        return [Figure(path) for path in plot_run(self.path)]

    def figures(self) -> dict[str, Figure]:
        """The figures in the run's ``figures/`` folder, by file name."""
        folder = self._folder.figures_dir
        found = sorted(folder.iterdir()) if folder.is_dir() else []
        return {path.name: Figure(path) for path in found if path.is_file()}
