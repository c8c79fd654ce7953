"""neuromod's entry point: `python main.py [group=option ...] [key=value ...]` (add --multirun to sweep).

The composed config is checked (:mod:`neuromod.runner.checks`, before torch is imported) and goes to
:func:`neuromod.runner.run.run`; see README.md for the groups and keys. The return value
(``objective.metric`` of the run) is what a sweeper such as Optuna optimises.

Exit status of a single run: 0 completed, 1 an unexpected error (with its traceback), 2 a bad configuration
or command line, or a run folder whose run is still alive in another process (one line on stderr), 3 the
training diverged, 4 a result file could not be written (full disk, quota, read-only or vanished file
system: one line naming the file and the reason; the last good checkpoint is kept), 130 interrupted
(Ctrl-C). In a multirun a failed or diverged job returns the objective's worst value and the sweep goes
on; Ctrl-C stops the sweep, and so does a parallel job's process that dies (SIGKILL, the OOM killer: one
line, exit status 1). ``HYDRA_FULL_ERROR=1`` shows tracebacks instead of the one-line errors.
"""

import logging
import os
import sys

import hydra
from omegaconf import DictConfig

import neuromod.compose  # noqa: F401  (registers the resolvers the configs use, e.g. ${cores:2})

log = logging.getLogger("neuromod")

EXIT_ERROR, EXIT_CONFIG, EXIT_DIVERGED, EXIT_WRITE, EXIT_INTERRUPTED = 1, 2, 3, 4, 130

#: Set when an exception leaves the task function (a run's own error, not a command-line one).
_run_raised = False
#: Set when the user asked for full tracebacks (HYDRA_FULL_ERROR=1).
_full_errors = False


@hydra.main(version_base="1.3", config_path="config", config_name="config")
def main(cfg: DictConfig) -> float:
    global _run_raised
    try:
        return _job(cfg)
    except BaseException:
        _run_raised = True
        raise


def _job(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from neuromod.io import WriteError
    from neuromod.runfolder.folder import RunFolder
    from neuromod.runner.checks import check_before_run
    from neuromod.validation import ConfigError

    in_sweep = HydraConfig.get().mode == RunMode.MULTIRUN
    folder = RunFolder(HydraConfig.get().runtime.output_dir)
    try:
        # values are checked (and a failure recorded) before torch is imported: bad input fails fast
        settings = check_before_run(cfg, folder)
        launch = folder.decide_launch(settings, bool(cfg.skip_completed), bool(cfg.training.resume))
        from neuromod.api import STANDARD_OBSERVERS
        from neuromod.runner.run import run

        summary = run(cfg, folder, settings=settings, launch=launch, observers=STANDARD_OBSERVERS)
    except ConfigError as error:
        summary = _one_line_failure(error, in_sweep, EXIT_CONFIG)
    except WriteError as error:
        if _full_errors and not in_sweep:
            raise
        summary = _one_line_failure(error, in_sweep, EXIT_WRITE)
    except Exception:
        if not in_sweep:
            raise
        log.exception("run failed (recorded in its summary.json); the sweep goes on")
        summary = {"status": "failed"}
    if summary.get("status") == "diverged" and not in_sweep:
        print(f"Error: {summary.get('error')}; recorded as diverged", file=sys.stderr)
        sys.exit(EXIT_DIVERGED)
    from neuromod.runfolder.objective import objective_value

    return objective_value(summary, cfg.objective)


def _one_line_failure(error: Exception, in_sweep: bool, status: int) -> dict:
    """Print ``Error: <error>``; a single run exits with ``status``, a sweep's job is recorded as failed
    and the sweep goes on."""
    _to_log_file(f"Error: {error}")
    print(f"Error: {error}", file=sys.stderr)
    if not in_sweep:
        sys.exit(status)
    return {"status": "failed"}


def _to_log_file(message: str) -> None:
    """Record a message in the run's main.log without repeating it on the console."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def job_process_died(error: BaseException) -> str:
    """One line for a parallel sweep whose launcher stopped because a job's worker process died (SIGKILL,
    the OOM killer): the jobs not yet finished did not run in this launch."""
    from neuromod.validation import first_line

    return (
        f"a job's process died and the launcher stopped the sweep ({first_line(error)}); the jobs that "
        "had not finished did not run: launch the same sweep again (same hydra.sweep.dir, "
        "training.resume=true): completed jobs are skipped, the others run"
    )


def cli() -> None:
    """Run :func:`main`; Hydra's own errors (unknown option or key, unparsable override) become one line.

    Hydra raises those before any run starts and would print them over several lines; with
    ``HYDRA_FULL_ERROR=1`` in the environment, errors are left to Hydra and Python (full tracebacks).
    """
    global _full_errors
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        _full_errors = True
        main()
        return
    # Hydra re-raises instead of printing when this is set; the errors are then formatted here.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        main()
    except KeyboardInterrupt:
        print(
            "Interrupted: the run folder records it; to continue, run the same command (same "
            "hydra.run.dir or hydra.sweep.dir) with training.resume=true",
            file=sys.stderr,
        )
        sys.exit(EXIT_INTERRUPTED)
    except Exception as error:
        if _run_raised:
            raise  # an error inside a run is a bug to be seen with its traceback
        from concurrent.futures import BrokenExecutor

        if isinstance(error, BrokenExecutor):  # joblib's TerminatedWorkerError: a parallel job's process died
            print(f"Error: {job_process_died(error)}", file=sys.stderr)
            sys.exit(EXIT_ERROR)
        from neuromod.runner.errors import command_line_error

        print(f"Error: {command_line_error(error)}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    finally:
        del os.environ["HYDRA_FULL_ERROR"]


if __name__ == "__main__":
    cli()
