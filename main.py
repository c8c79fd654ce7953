"""neuromod's entry point: `python main.py [group=option ...] [key=value ...]` (add --multirun to sweep).

The composed config goes to :func:`neuromod.run.run`; see README.md for the groups and keys. The return
value (``objective.metric`` of the run) is what a sweeper such as Optuna optimises.
"""

import logging
import sys

import hydra
from omegaconf import DictConfig

log = logging.getLogger("neuromod")


@hydra.main(version_base="1.3", config_path="config", config_name="config")
def main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from neuromod.config_checks import ConfigError
    from neuromod.run import objective_value, run

    in_sweep = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        summary = run(cfg)
    except ConfigError as error:
        _to_log_file(f"Error: {error}")
        print(f"Error: {error}", file=sys.stderr)
        if not in_sweep:
            sys.exit(2)
        summary = {"status": "failed"}  # the job is recorded as failed; the sweep goes on
    except Exception:
        if not in_sweep:
            raise
        log.exception("run failed (recorded in its summary.json); the sweep goes on")
        summary = {"status": "failed"}
    return objective_value(summary, cfg.objective)


def _to_log_file(message: str) -> None:
    """Record a message in the run's main.log without repeating it on the console."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


if __name__ == "__main__":
    main()
