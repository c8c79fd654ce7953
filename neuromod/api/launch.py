"""Launching from Python: one run (:func:`train`, :func:`run_config`) or a sweep (:func:`sweep`), into the
folders ``main.py`` writes.

:func:`train` composes the config with Hydra's compose API (:func:`neuromod.compose.compose_config`), writes
the job's ``.hydra/`` files and ``main.log`` as a launched job has them, checks the settings and trains with
the observers ``main.py`` hands a run (:data:`STANDARD_OBSERVERS`). :func:`sweep` runs
``main.py --multirun`` in a child process: the launchers, the sweepers and the callbacks are Hydra's own,
and a sweep's jobs never share the caller's process state.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from neuromod.observer import ObserverFactory, RunObserver

if TYPE_CHECKING:
    from neuromod.api.runs import Run

log = logging.getLogger("neuromod")

#: The log line of ``main.log`` (Hydra's default job logging), when the config names none.
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
#: Hydra's job name for ``main.py``: its log file is ``main.log``.
JOB_NAME = "main"


def _figures(cfg: DictConfig, run_dir: Path) -> RunObserver:
    from neuromod.plotting.observer import figures

    return figures(cfg, run_dir)


def _tracker(cfg: DictConfig, run_dir: Path) -> RunObserver:
    from neuromod.trackers import open_tracker

    return open_tracker(cfg, run_dir)


#: What watches a run launched by ``main.py``: its figures (``analysis.figures``), then its tracker
#: (``logger=``), which may send the figures on. (Their modules are imported when a run makes them.)
STANDARD_OBSERVERS = (_figures, _tracker)


def run_config(cfg: DictConfig, output_dir: str | Path | None = None, **options: Any) -> dict[str, Any]:
    """Train and evaluate an already composed config into ``output_dir`` with the standard observers
    (figures, tracker); returns the run's summary (``summary.json``'s content).

    Lower level than :func:`train`: no ``.hydra/`` files and no ``main.log`` are written, and the config
    is whatever the caller built. ``options``: those of :func:`neuromod.runner.run.run` (``observers``
    replaces :data:`STANDARD_OBSERVERS`).
    """
    from neuromod.runner.run import run

    options.setdefault("observers", STANDARD_OBSERVERS)
    return run(cfg, output_dir, **options)


def train(
    overrides: Sequence[str] = (),
    output_dir: str | Path | None = None,
    observers: Sequence[ObserverFactory] = STANDARD_OBSERVERS,
    verbose: bool = False,
) -> Run:
    """Train one configuration as ``python main.py <overrides>`` would, and return the loaded run.

    Args:
        overrides: Hydra overrides, as on the command line (``["architecture.n_neurons=8",
            "training.steps=100"]``); sweeps (``a=1,2``) are :func:`sweep`'s.
        output_dir: The run folder; None: the config's ``hydra.run.dir`` (``outputs/<date>/<time>``
            below the current directory, as ``main.py`` chooses it).
        observers: What watches the run (default: the figures and the ``logger=`` tracker, as
            ``main.py``); ``()`` writes the run folder without figures.
        verbose: Also print the run's log (it always goes to ``main.log`` in the run folder).

    Returns:
        The run (:class:`~neuromod.api.runs.Run`) read back from its folder, which holds the files of a
        ``main.py`` run: ``.hydra/`` (``config.yaml``, ``hydra.yaml``, ``overrides.yaml``), ``main.log``,
        ``summary.json``, ``metrics.csv``, ``checkpoint.pt``, ``trials.npz``, ``params.tex``,
        ``analysis.json`` and ``figures/``. A folder already holding a completed run with the same settings
        is reused (``skip_completed``); ``training.resume=true`` continues its checkpoint. A run that
        diverged is returned too: its ``status`` says so. ``threads=N`` sets torch's threads for the
        calling process, as it does for ``main.py``'s.

    Raises:
        neuromod.validation.ConfigError: A setting that cannot be used (one line naming the key; the run
            folder's ``summary.json`` records the failure), an unknown key or option, or a folder still
            running in another process.
        neuromod.io.WriteError: A result file that cannot be written (one line naming the file).
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import HydraException
    from hydra.types import RunMode

    from neuromod.api.runs import load_run
    from neuromod.compose import compose_config
    from neuromod.runfolder.folder import RunFolder
    from neuromod.runner.checks import check_before_run
    from neuromod.runner.errors import command_line_error
    from neuromod.runner.run import run
    from neuromod.validation import ConfigError

    overrides = [str(item) for item in overrides]
    try:
        composed = compose_config(overrides, return_hydra_config=True)
    except (HydraException, ValueError) as error:  # an unknown key or option, a sweep, bad syntax
        raise ConfigError(command_line_error(error)) from None
    hydra = composed.hydra
    run_dir = Path(output_dir) if output_dir is not None else Path(str(hydra.run.dir))
    with read_write(hydra), open_dict(hydra):
        hydra.run.dir = str(run_dir)
        hydra.runtime.output_dir = str(run_dir.absolute())
        hydra.job.name = JOB_NAME
        hydra.mode = RunMode.RUN
    cfg = OmegaConf.masked_copy(composed, [key for key in composed if key != "hydra"])
    folder = RunFolder(run_dir)
    _write_hydra_files(folder, composed, cfg)
    log_format = OmegaConf.select(hydra, "job_logging.formatters.simple.format", default=LOG_FORMAT)
    hydra_config = HydraConfig.instance()
    previous = hydra_config.cfg
    hydra_config.set_config(composed)  # what a launched job sees: the groups' choices, its overrides
    try:
        with _run_log(folder.path / f"{JOB_NAME}.log", str(log_format), verbose):
            try:
                settings = check_before_run(cfg, folder)
                launch = folder.decide_launch(settings, bool(cfg.skip_completed), bool(cfg.training.resume))
                run(cfg, folder, settings=settings, launch=launch, observers=tuple(observers))
            except ConfigError as error:
                log.error("Error: %s", error)
                raise
    finally:
        hydra_config.cfg = previous
    return load_run(folder.path)


def _write_hydra_files(folder: Any, composed: DictConfig, cfg: DictConfig) -> None:
    """``.hydra/config.yaml`` (the job's config), ``hydra.yaml`` (Hydra's node) and ``overrides.yaml``,
    written as Hydra writes them for a launched job (unresolved), each atomically."""
    from neuromod import io

    hydra_node = OmegaConf.masked_copy(composed, ["hydra"])
    texts = {
        folder.hydra_config_path: OmegaConf.to_yaml(cfg),
        folder.hydra_settings_path: OmegaConf.to_yaml(hydra_node),
        folder.hydra_overrides_path: OmegaConf.to_yaml(composed.hydra.overrides.task),
    }
    folder.hydra_config_path.parent.mkdir(parents=True, exist_ok=True)
    for path, text in texts.items():
        with io.writing(path):
            io.write_text(path, text)


@contextmanager
def _run_log(path: Path, log_format: str, verbose: bool) -> Iterator[None]:
    """The ``neuromod`` loggers' INFO records into ``path`` (and stdout when ``verbose``) while a run
    trains; the logger is left as it was."""
    logger = logging.getLogger("neuromod")
    handlers: list[logging.Handler] = [logging.FileHandler(path, encoding="utf-8")]
    if verbose:
        handlers.append(logging.StreamHandler(sys.stdout))
    level = logger.level
    for handler in handlers:
        handler.setFormatter(logging.Formatter(log_format))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.setLevel(level)
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()


class SweepError(RuntimeError):
    """``main.py --multirun`` ended with an error before or while it launched the sweep's jobs."""


def main_script() -> Path:
    """``main.py``, beside the config folder (a checkout or an editable install)."""
    from neuromod.paths import CONFIG_DIR

    script = CONFIG_DIR.parent / "main.py"
    if not script.is_file():
        raise FileNotFoundError(f"{script} is missing: sweep() runs main.py from a checkout of neuromod")
    return script


def sweep(
    overrides: Sequence[str],
    sweep_dir: str | Path | None = None,
    timeout: float | None = None,
    verbose: bool = False,
) -> Path:
    """Run a sweep as ``python main.py --multirun <overrides>`` does, in a child process; returns the
    sweep folder (read it with :func:`~neuromod.api.sweeps.load_sweep`).

    Args:
        overrides: The command line's overrides, sweeps included (``["architecture.hidden_size=4,8",
            "seed=0,1"]``; ``hydra/launcher=parallel`` runs the jobs on all cores).
        sweep_dir: The sweep folder (``hydra.sweep.dir``); None: ``multirun/<date>/<time>`` below the
            current directory, as ``main.py`` chooses it. A folder of an earlier sweep with the same
            settings is completed, not repeated (its completed jobs are skipped).
        timeout: Seconds before the sweep is stopped (``subprocess.TimeoutExpired``); None: no limit.
        verbose: Print the sweep's output when it ends (it is kept in each job's ``main.log``).

    The sweep folder is recorded in ``multirun_paths.txt`` of the current directory, as ``main.py``
    records it. A job that fails is recorded in its folder and the sweep goes on (its row of
    :func:`~neuromod.api.sweeps.load_sweep` says ``failed``); a command line that cannot be launched (an
    unknown key, a bad value for a whole sweep) raises :class:`SweepError` with ``main.py``'s one line.
    """
    if sweep_dir is None:
        sweep_dir = Path("multirun") / time.strftime("%Y-%m-%d") / time.strftime("%H-%M-%S")
    sweep_dir = Path(sweep_dir)
    quoted = str(sweep_dir.absolute()).replace("\\", "\\\\").replace("'", "\\'")
    command = [sys.executable, str(main_script()), "--multirun", *map(str, overrides)]
    command.append(f"hydra.sweep.dir='{quoted}'")
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if verbose:
        print(done.stdout + done.stderr, end="")
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        said = next((line for line in reversed(lines) if line.startswith("Error:")), None)
        said = said or (lines[-1] if lines else "no output")
        raise SweepError(f"main.py --multirun exited with status {done.returncode}: {said}")
    return sweep_dir
