"""Time per update of any configuration, and what a whole run of it would take.

Builds the run's objects from the real config (as ``main.py`` does, nothing written) and times
``Trainer.train_step`` (a fresh batch, forward, loss, backward, clipping, the optimiser) and one
evaluation of the validation set (``Trainer.evaluate``, in chunks of the training batch, as a run does).
Reports the median wall time and the median CPU time of this process (on a machine shared with other jobs
the CPU time moves less than the wall time), and projects a run of ``training.steps`` updates with its
evaluations (every ``training.eval_every``) and the final scoring of the test set and its controls
(counted as four evaluations).

    python benchmarks/time_per_update.py --updates 20 -- experiment=orhan_ma_paper task=de1 threads=1
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from neuromod.compose import compose_config
from neuromod.runner.run import build_run


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``fn()`` over ``repeats`` calls."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=20, help="timed updates (after --warmup)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed updates first")
    parser.add_argument("--evaluations", type=int, default=2, help="timed evaluations")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. experiment=orhan_ma_paper")
    args = parser.parse_args(argv)
    cfg = compose_config(list(args.overrides) + ["training.progress=false"])
    experiment = build_run(cfg)
    trainer = experiment.trainer
    load_before = os.getloadavg()[0]
    for _ in range(args.warmup):
        trainer.train_step()
    update_wall, update_cpu = timed(trainer.train_step, args.updates)
    eval_wall, eval_cpu = timed(lambda: trainer.evaluate(trainer.eval_batch, record=True), args.evaluations)
    steps, every = int(cfg.training.steps), int(cfg.training.eval_every)
    evaluations = steps // every + 4  # the validation set during training; the test set and its controls
    row = {
        "threads": torch.get_num_threads(),
        "device": str(experiment.device),
        "trial_steps": trainer.eval_batch.n_steps,
        "batch": trainer.batch_size,
        "eval_trials": trainer.eval_batch.batch_size,
        "update_ms": round(update_wall * 1e3, 1),
        "update_cpu_ms": round(update_cpu * 1e3, 1),
        "evaluation_ms": round(eval_wall * 1e3, 1),
        "evaluation_cpu_ms": round(eval_cpu * 1e3, 1),
        "steps": steps,
        "projected_run_h": round((steps * update_wall + evaluations * eval_wall) / 3600, 2),
        "projected_run_cpu_h": round((steps * update_cpu + evaluations * eval_cpu) / 3600, 2),
        "load_1min": round((load_before + os.getloadavg()[0]) / 2, 2),
    }
    print(" ".join(args.overrides))
    for key, value in row.items():
        print(f"  {key:20s} {value}")
    return row


if __name__ == "__main__":
    main()
