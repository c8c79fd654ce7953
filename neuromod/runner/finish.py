"""What a run keeps once training has ended: the final metrics, the example trials of ``trials.npz`` and
the parameter table ``params.tex``. All of it comes from the last evaluation, which already holds the
network's whole output on the evaluation set: nothing here runs the network again."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from neuromod import latex
from neuromod.runner.lesions import lesion_metrics
from neuromod.tasks.base import Batch, Task
from neuromod.training import EvalResult, Trainer, evaluate


def final_metrics(trainer: Trainer, task: Task) -> dict[str, Any]:
    """The last validation evaluation's figures, and how fast the criterion was reached: with
    ``training.stop_at_accuracy`` set, ``reached_criterion`` (1 or 0), ``criterion_step``,
    ``criterion_trials`` (training trials presented by then: steps x ``training.batch_size``, the figure
    to compare between networks trained at different batch sizes) and ``criterion_wall_time_s`` (the first
    evaluation at or above it; null when it was never reached)."""
    result = trainer.last_eval
    if result is None:
        return {"chance_accuracy": task.chance_level}
    last = trainer.history[-1]
    metrics = {
        "eval_accuracy": result.accuracy,
        "eval_loss": result.loss,
        "eval_accuracy_by_delay": {str(k): v for k, v in result.accuracy_by_delay.items()},
        "chance_accuracy": task.chance_level,
        "train_loss": last["train_loss"],
        **result.extra,
    }
    if trainer.stop_at_accuracy is not None:
        reached = [row for row in trainer.history if row["eval_accuracy"] >= trainer.stop_at_accuracy]
        metrics["reached_criterion"] = int(bool(reached))
        metrics["criterion_step"] = reached[0]["step"] if reached else None
        metrics["criterion_trials"] = reached[0]["step"] * trainer.batch_size if reached else None
        metrics["criterion_wall_time_s"] = reached[0]["wall_time_s"] if reached else None
    return metrics


def held_out_metrics(
    model: torch.nn.Module,
    task: Task,
    test_batch: Batch,
    loss_kind: str,
    generator: torch.Generator,
    chunk: int | None = None,
) -> dict[str, Any]:
    """Scores on the test set, which nothing during the run looked at (the validation set decides early
    stopping, best trials and studies): ``test_accuracy``, ``test_loss``, ``test_accuracy_by_delay`` and
    ``test_<metric>`` for the task's extra metrics. Then the controls on the same trials:
    ``query_ablation_accuracy`` (the query / go / report cue removed: what a network makes of the trial
    without being asked), ``query_swap_accuracy`` (the query asks for another item: a network that reads
    the query falls to chance) and ``cue_shuffle_accuracy`` (cues swapped between trials: a network that
    holds the cued content falls to chance), where the task has them; and the network's causal lesions
    (``lesion_<name>_test_accuracy``, :mod:`neuromod.runner.lesions`). ``chunk``: trials per pass
    (:func:`~neuromod.training.evaluate`)."""
    result = evaluate(model, task, test_batch, loss_kind, chunk=chunk)
    metrics: dict[str, Any] = {
        "test_accuracy": result.accuracy,
        "test_loss": result.loss,
        "test_accuracy_by_delay": {str(k): v for k, v in result.accuracy_by_delay.items()},
        **{f"test_{name}": value for name, value in result.extra.items()},
    }
    ablated = task.without_query(test_batch)
    if ablated is not None:
        metrics["query_ablation_accuracy"] = evaluate(model, task, ablated, loss_kind, chunk=chunk).accuracy
    swapped = task.with_other_query(test_batch, generator)
    if swapped is not None:
        metrics["query_swap_accuracy"] = evaluate(model, task, swapped, loss_kind, chunk=chunk).accuracy
    shuffled = task.with_shuffled_cues(test_batch, generator)
    if shuffled is not None:
        metrics["cue_shuffle_accuracy"] = evaluate(model, task, shuffled, loss_kind, chunk=chunk).accuracy
    metrics.update(lesion_metrics(model, task, test_batch, chunk))
    return metrics


def pick_example_trials(batch: Batch, n: int) -> torch.Tensor:
    """Indices of ``n`` trials whose delays spread over the evaluated range (first trial of each)."""
    order = torch.argsort(batch.delay, stable=True)
    picks = torch.linspace(0, len(order) - 1, steps=min(n, len(order))).round().long()
    return order[picks]


def trial_arrays(
    result: EvalResult, eval_batch: Batch, task: Task, model: torch.nn.Module, cfg: DictConfig, loss_kind: str
) -> dict[str, np.ndarray]:
    """The arrays of ``trials.npz``: ``analysis.n_example_trials`` evaluation trials spread over the
    evaluated delays, with the network's outputs, activity, activation parameters, drive and gates."""
    index = pick_example_trials(eval_batch, int(cfg.analysis.n_example_trials))
    index = index.to(eval_batch.inputs.device)
    trials = eval_batch.select(index)
    output = result.output

    def numpy(t):
        return t[:, index].detach().float().cpu().numpy()

    outputs = output.outputs[:, index]
    arrays: dict[str, np.ndarray] = {
        "inputs": trials.inputs.float().cpu().numpy(),
        "targets": trials.targets.float().cpu().numpy(),
        "outputs": numpy(output.outputs),
        "activity": numpy(output.activity),
        "loss_mask": trials.loss_weight.float().cpu().numpy(),
        "query_step": trials.query_step.cpu().numpy(),
        "delay": trials.delay.cpu().numpy(),
        "answer": trials.answer.cpu().numpy(),
        "correct": task.correct(outputs, trials).cpu().numpy(),
        "input_names": np.array(task.input_names),
        "output_names": np.array(task.output_names),
        "task": np.array(task.name),
        "activation": np.array(f"{type(model).__name__}:{cfg.af._target_}"),
        "activation_target": np.array(cfg.af._target_),
        "uses_activation": np.array(bool(getattr(model, "uses_activation", True))),
        # How to read the outputs at the query (figures show a softmax for a cross-entropy readout).
        "answer_type": np.array(task.answer_type),
        "loss_kind": np.array(loss_kind),
    }
    if trials.answer_mask is not None:
        arrays["answer_mask"] = trials.answer_mask.cpu().numpy()
    if output.params is not None:
        arrays["params"] = numpy(output.params)
        arrays["param_names"] = np.array(output.param_names)
    if output.drive is not None:
        arrays["drive"] = numpy(output.drive)
    for name, value in output.gates.items():
        arrays[f"gate_{name}"] = numpy(value)
    for name, span in trials.periods.items():
        arrays[f"period_{name}"] = span.cpu().numpy()
    return arrays


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
