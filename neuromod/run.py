"""One experiment, from a composed config to a run folder. ``main.py`` only hands its config to :func:`run`.

The run folder (Hydra's output directory) receives ``summary.json``, ``metrics.csv``,
``checkpoint.pt``, ``trials.npz``, ``params.tex`` and ``figures/``.
"""

from __future__ import annotations

import importlib
import logging
import pickle
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from neuromod import io, latex
from neuromod.config_checks import (
    ConfigError,
    check_before_run,
    check_compatible,
    check_task,
    completed_summary,
    first_line,
    instantiation_error,
    resolve_device,
)
from neuromod.tasks.base import Batch, Task
from neuromod.training import Diverged, Trainer, eval_delays_tensor, resolve_loss
from neuromod.training.loop import all_finite, evaluate

log = logging.getLogger(__name__)

#: Seed offsets, so the model, the training stream and the evaluation set use independent streams.
EVAL_SEED_OFFSET = 1_000_003
MODEL_SEED_OFFSET = 7


def choice_name(cfg: DictConfig, group: str) -> str:
    """The option chosen for a config group (``additive`` for ``architecture``), when Hydra knows it."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return str(HydraConfig.get().runtime.choices.get(group))
    except Exception:  # not running under Hydra (a test composing the config itself)
        name = OmegaConf.select(cfg, f"{group}.name", default=None)
        return str(name) if name is not None else group


def build(cfg: DictConfig, device: torch.device):
    """Task, activation family and model from the config (``ConfigError`` on impossible settings)."""
    task: Task = _instantiate_checked(cfg.task, "task")
    try:
        module, _, name = str(cfg.architecture._target_).rpartition(".")
        architecture = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as error:
        raise ConfigError(instantiation_error(error, "architecture", cfg.architecture)) from None
    check_compatible(architecture, task, choice_name(cfg, "architecture"))
    family = _instantiate_checked(cfg.af, "af")
    # Parameter initialisation draws from its own seed without touching the global generator.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed + MODEL_SEED_OFFSET)
        model = _instantiate_checked(
            cfg.architecture,
            "architecture",
            input_size=task.input_size,
            output_size=task.output_size,
            activation=family,
        )
    return task, family, model.to(device)


def run(cfg: DictConfig, output_dir: str | Path | None = None) -> dict[str, Any]:
    """Train and evaluate one configuration; write the run folder; return the summary dict.

    Raises :class:`ConfigError` for a bad configuration (after recording the run as ``failed``).
    A diverging run is not an error: its summary says ``diverged``.
    """
    if output_dir is None:
        from hydra.core.hydra_config import HydraConfig

        output_dir = HydraConfig.get().runtime.output_dir
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    summary: dict[str, Any] = {"status": "running", "seed": OmegaConf.select(cfg, "seed"), "steps": 0}
    previous = completed_summary(out)
    summary["config"] = check_before_run(cfg, out, started)
    if previous is not None and cfg.skip_completed:
        log.info("%s already holds a completed run: skipped (skip_completed=false to train again)", out)
        return previous
    resuming = bool(cfg.training.resume)
    checkpoint_path = out / "checkpoint.pt"
    io.write_json(out / "summary.json", summary)
    try:
        device = resolve_device(cfg.device)
        if cfg.threads:
            torch.set_num_threads(int(cfg.threads))
        task, family, model = build(cfg, device)
        check_task(cfg, task)
        loss_kind = resolve_loss(cfg.training.loss, task)
        optimizer = _instantiate_checked(cfg.training.optimizer, "training.optimizer")(
            params=model.parameters()
        )
    except ValueError as error:
        _fail(out, summary, started, error if isinstance(error, ConfigError) else ConfigError(str(error)))

    generator = torch.Generator(device=device).manual_seed(int(cfg.seed))
    eval_generator = torch.Generator(device=device).manual_seed(int(cfg.seed) + EVAL_SEED_OFFSET)
    n_eval = int(cfg.training.eval_batch_size)
    eval_batch = task.sample(n_eval, eval_generator, eval_delays_tensor(task, n_eval, device))
    trainer = Trainer(
        model=model,
        task=task,
        optimizer=optimizer,
        generator=generator,
        eval_batch=eval_batch,
        steps=int(cfg.training.steps),
        batch_size=int(cfg.training.batch_size),
        loss_kind=loss_kind,
        eval_every=int(cfg.training.eval_every),
        grad_clip=cfg.training.grad_clip,
        stop_at_accuracy=cfg.training.stop_at_accuracy,
        progress=bool(cfg.training.progress),
    )
    if resuming:
        if checkpoint_path.exists():
            _restore(trainer, checkpoint_path, device)
            summary["resumed_from_step"] = trainer.step
            log.info("resumed from %s at step %d", checkpoint_path, trainer.step)
        else:
            log.info("training.resume=true but %s has no checkpoint: training from step 0", out)
    else:
        # a fresh start: a checkpoint left by an earlier attempt in this folder must not pass for this run's
        checkpoint_path.unlink(missing_ok=True)
    every = int(cfg.training.checkpoint_every or 0)
    if every > 0:
        trainer.on_step.append(lambda t: _checkpoint(t, checkpoint_path) if t.step % every == 0 else None)
    trainer.on_log.append(
        lambda row: log.info(
            "step %d  train_loss %.4f  eval_loss %.4f  eval_accuracy %.3f (chance %.3f)",
            row["step"],
            row["train_loss"],
            row["eval_loss"],
            row["eval_accuracy"],
            row["chance_accuracy"],
        )
    )
    trainer.on_log.append(lambda row: io.write_csv(out / "metrics.csv", trainer.history))
    log.info(
        "task=%s architecture=%s af=%s device=%s parameters=%d loss=%s",
        task.name,
        choice_name(cfg, "architecture"),
        choice_name(cfg, "af"),
        device,
        sum(p.numel() for p in model.parameters()),
        loss_kind,
    )
    status = "completed"
    try:
        trainer.fit()
        if trainer.last_eval is None and trainer.step > 0:
            # resumed from a checkpoint taken at the very end: evaluate the restored model once more
            trainer.last_eval = evaluate(model, task, eval_batch, loss_kind)
    except Diverged as error:
        status = "diverged"
        summary["error"] = str(error)
        summary["diverged_step"] = error.step
        if checkpoint_path.exists():
            # the checkpoint was written before the divergence (non-finite weights are never saved)
            summary["last_good_checkpoint_step"] = _checkpoint_step(checkpoint_path)
        log.error("%s", error)
    except KeyboardInterrupt:
        if trainer.interrupted_cleanly:
            _checkpoint(trainer, checkpoint_path)
            saved = f"checkpoint saved at step {trainer.step}"
        else:  # stopped in the middle of a step: the state is not consistent; keep the last checkpoint
            saved = "the last checkpoint was kept" if checkpoint_path.exists() else "no checkpoint"
        io.write_csv(out / "metrics.csv", trainer.history)
        summary.update(
            status="interrupted",
            steps=trainer.step,
            wall_time_s=round(time.time() - started, 3),
            error=f"interrupted at step {trainer.step}; {saved}",
        )
        io.write_json(out / "summary.json", summary)
        log.error("interrupted at step %d; %s (resume with training.resume=true)", trainer.step, saved)
        raise
    except Exception as error:
        _fail(out, summary, started, error, trace=True)

    io.write_csv(out / "metrics.csv", trainer.history)
    final = _final_metrics(trainer, task)
    if status == "completed":
        _checkpoint(trainer, checkpoint_path)
        _write_trials(out, model, task, eval_batch, cfg)
        from neuromod.analysis import run_analysis

        final.update(run_analysis(model, task, eval_batch, trainer.last_eval, cfg.analysis))
    summary.update(
        status=status,
        steps=trainer.step,
        wall_time_s=round(time.time() - started, 3),
        train_wall_time_s=round(trainer.elapsed_s, 3),
        final=final,
        device=str(device),
        n_parameters=sum(p.numel() for p in model.parameters()),
    )
    io.write_text(out / "params.tex", params_table(summary["config"]))
    io.write_json(out / "summary.json", summary)
    if status == "completed" and cfg.analysis.figures:
        try:
            from neuromod.plotting import plot_run

            plot_run(out)
        except Exception:  # a figure must never cost the result; say what went wrong
            log.exception("could not draw the figures")
    log.info(
        "%s: eval_accuracy %s in %.1f s -> %s",
        status,
        summary["final"].get("eval_accuracy"),
        summary["wall_time_s"],
        out,
    )
    return summary


def _fail(out: Path, summary: dict, started: float, error: BaseException, trace: bool = False):
    summary.update(status="failed", error=str(error), wall_time_s=round(time.time() - started, 3))
    if trace:
        summary["traceback"] = traceback.format_exc()
    io.write_json(out / "summary.json", summary)
    raise error


def _final_metrics(trainer: Trainer, task: Task) -> dict[str, Any]:
    result = trainer.last_eval
    if result is None:
        return {"chance_accuracy": task.chance_level}
    last = trainer.history[-1]
    return {
        "eval_accuracy": result.accuracy,
        "eval_loss": result.loss,
        "eval_accuracy_by_delay": {str(k): v for k, v in result.accuracy_by_delay.items()},
        "chance_accuracy": task.chance_level,
        "train_loss": last["train_loss"],
        **result.extra,
    }


def _checkpoint(trainer: Trainer, path: Path) -> None:
    """Save the trainer's state atomically; non-finite weights are never saved (``Diverged`` instead), so the
    last checkpoint of a diverged run is its last good state."""
    trainer.sync()
    if not all_finite(trainer.model):
        raise Diverged(trainer.step, "a parameter")
    io.save_torch(path, trainer.state_dict())


def _checkpoint_step(path: Path) -> int | None:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=False)["step"])
    except Exception:  # an unreadable checkpoint is reported as absent, never fatal here
        return None


def _restore(trainer: Trainer, path: Path, device: torch.device) -> None:
    try:
        state = torch.load(path, map_location=device, weights_only=False)
        trainer.load_state_dict(state)
    except (KeyError, RuntimeError, EOFError, ValueError, TypeError, pickle.UnpicklingError) as error:
        raise ConfigError(
            f"training.resume=true: checkpoint {path} cannot be used ({first_line(error)}); "
            "remove it to start again, or resume with the configuration that wrote it"
        ) from None


def _instantiate_checked(node: DictConfig, key: str, **kwargs):
    """``instantiate(node, **kwargs)``. A constructor's ``ValueError`` (its own message names the key) and a
    target that cannot be found or called with these arguments are ConfigErrors; an error raised while
    the target runs otherwise propagates."""
    try:
        return instantiate(node, **kwargs)
    except ValueError as error:
        raise ConfigError(first_line(error)) from None
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, ConfigError):
            raise cause from None
        if isinstance(cause, ValueError):
            raise ConfigError(first_line(cause)) from None
        if cause is None or isinstance(cause, (TypeError, ImportError, AttributeError)):
            raise ConfigError(instantiation_error(cause or error, key, node)) from None
        raise


def pick_example_trials(batch: Batch, n: int) -> torch.Tensor:
    """Indices of ``n`` trials whose delays spread over the evaluated range (first trial of each)."""
    order = torch.argsort(batch.delay, stable=True)
    picks = torch.linspace(0, len(order) - 1, steps=min(n, len(order))).round().long()
    return order[picks]


def _write_trials(out: Path, model: torch.nn.Module, task: Task, eval_batch: Batch, cfg: DictConfig) -> None:
    index = pick_example_trials(eval_batch, int(cfg.analysis.n_example_trials))
    trials = eval_batch.select(index.to(eval_batch.inputs.device))
    model.eval()
    with torch.no_grad():
        result = model(trials.inputs, record=True)
    correct = task.correct(result.outputs, trials)

    def numpy(t):
        return t.detach().float().cpu().numpy()

    arrays: dict[str, np.ndarray] = {
        "inputs": numpy(trials.inputs),
        "targets": numpy(trials.targets),
        "outputs": numpy(result.outputs),
        "activity": numpy(result.activity),
        "loss_mask": numpy(trials.loss_mask),
        "query_step": trials.query_step.cpu().numpy(),
        "delay": trials.delay.cpu().numpy(),
        "answer": trials.answer.cpu().numpy(),
        "correct": correct.cpu().numpy(),
        "input_names": np.array(task.input_names),
        "output_names": np.array(task.output_names),
        "task": np.array(task.name),
        "activation": np.array(f"{type(model).__name__}:{cfg.af._target_}"),
        "activation_target": np.array(cfg.af._target_),
        "uses_activation": np.array(bool(getattr(model, "uses_activation", True))),
        # How to read the outputs at the query (figures show a softmax for a cross-entropy readout).
        "answer_type": np.array(task.answer_type),
        "loss_kind": np.array(resolve_loss(cfg.training.loss, task)),
    }
    if trials.answer_mask is not None:
        arrays["answer_mask"] = trials.answer_mask.cpu().numpy()
    if result.params is not None:
        arrays["params"] = numpy(result.params)
        arrays["param_names"] = np.array(result.param_names)
    if result.drive is not None:
        arrays["drive"] = numpy(result.drive)
    for name, value in result.gates.items():
        arrays[f"gate_{name}"] = numpy(value)
    for name, span in trials.periods.items():
        arrays[f"period_{name}"] = span.cpu().numpy()
    io.save_npz(out / "trials.npz", **arrays)


def params_table(config: dict[str, Any]) -> str:
    """A LaTeX table (plain ``tabular``, no extra packages) of a run's parameters."""
    rows = [
        f"    {latex.escape(key)} & {latex.escape(value)} \\\\"
        for key, value in sorted(config.items())
        if not key.endswith(("_target_", "_partial_"))
    ]
    return "\n".join(
        [
            "\\begin{table}[ht]",
            "  \\centering",
            "  \\begin{tabular}{ll}",
            "    \\hline",
            "    Parameter & Value \\\\",
            "    \\hline",
            *rows,
            "    \\hline",
            "  \\end{tabular}",
            "  \\caption{Run parameters.}",
            "\\end{table}",
            "",
        ]
    )
