"""The training loop. It knows tasks and models only through their common interfaces."""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from neuromod.models.output import ModelOutput
from neuromod.tasks.base import Batch, Task
from neuromod.training.losses import compute_loss


class Diverged(RuntimeError):
    """The loss or the parameters became NaN or infinite."""

    def __init__(self, step: int, what: str):
        super().__init__(f"training diverged at step {step}: {what} is not finite")
        self.step = step


@dataclass
class EvalResult:
    loss: float
    accuracy: float
    accuracy_by_delay: dict[int, float]
    #: The network's whole output on the batch (outputs, activity, and whatever ``record`` adds).
    output: Any = field(repr=False)
    extra: dict[str, float] = field(default_factory=dict)


def evaluate(
    model: nn.Module,
    task: Task,
    batch: Batch,
    loss_kind: str,
    record: bool = False,
    chunk: int | None = None,
) -> EvalResult:
    """Loss and accuracy on a fixed batch. ``accuracy`` counts trials whose delay lies in the training
    range; ``accuracy_by_delay`` has every delay in the batch (generalisation beyond the range too).
    ``record``: also keep what the network records on request (the LSTM control's gates). ``chunk``: the
    network runs over at most this many trials at a time (None: all at once), so the batch's size adds
    only the kept output to the memory a pass needs; the figures are the same."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        scored = score(forward_in_chunks(model, batch.inputs, record, chunk), task, batch, loss_kind)
    model.train(was_training)
    return scored


@torch.no_grad()
def score(result: ModelOutput, task: Task, batch: Batch, loss_kind: str) -> EvalResult:
    """:func:`evaluate`'s figures from a network's output ``result`` on ``batch`` (no further pass)."""
    outputs = result.outputs
    loss = compute_loss(outputs, batch, loss_kind, task, result.activity).item()
    correct = task.correct(outputs, batch).float()  # [B]
    delays = batch.delay
    in_range = (delays >= task.min_delay) & (delays <= task.max_delay)
    pool = correct[in_range] if bool(in_range.any()) else correct
    by_delay = {int(d): correct[delays == d].mean().item() for d in torch.unique(delays).tolist()}
    extra = task.extra_metrics(outputs, batch)
    masked = task.masked_correct(outputs, batch)
    if masked is not None:
        extra["masked_accuracy"] = (
            (masked[in_range] if bool(in_range.any()) else masked).float().mean().item()
        )
    return EvalResult(loss, pool.mean().item(), by_delay, result, extra)


def forward_in_chunks(model: nn.Module, inputs: Tensor, record: bool, chunk: int | None) -> ModelOutput:
    """``model(inputs [T, B, D])`` over chunks of at most ``chunk`` trials (None: one pass), each chunk's
    output copied into one output for the whole batch as it comes: the trials of a batch are
    independent, and only one chunk's pass is alive at a time."""
    n_trials = inputs.shape[1]
    size = n_trials if chunk is None else max(int(chunk), 1)
    joined = None
    for start in range(0, n_trials, size):
        trials = inputs[:, start : start + size]
        part = model(trials, record=True) if record else model(trials)
        if size >= n_trials:
            return part
        if joined is None:
            joined = part.for_trials(n_trials)
        joined.write(start, part)
    return joined


def eval_delays_tensor(
    task: Task, n_trials: int, device: torch.device, delays: list[int] | None = None
) -> Tensor:
    """Delays for a fixed evaluation set: every entry of ``delays`` (default ``task.eval_delays``) equally
    often, sorted."""
    delays = torch.tensor(task.eval_delays if delays is None else delays, dtype=torch.long, device=device)
    return delays.repeat(math.ceil(n_trials / len(delays)))[:n_trials].sort().values


def all_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


@dataclass
class Trainer:
    """Fresh batches from ``generator`` every step (or, with ``train_batch``, that one fixed batch every
    step: full-batch training on a fixed set); evaluation on ``eval_batch`` every ``eval_every``, and
    before the first update with ``eval_at_start`` (a row at step 0, its ``train_loss`` NaN).

    ``on_log(row)`` is called with every logged row (a dict); ``on_step(trainer)`` after every update and
    after that step's evaluation, if any (checkpointing and similar hooks live there, so a checkpoint holds
    the row of its own step). Ctrl-C during :meth:`fit` takes effect at the next step boundary and raises
    ``KeyboardInterrupt`` there with ``interrupted_cleanly`` set; :meth:`state_dict` then describes a
    consistent state (a second Ctrl-C stops at once, without that guarantee).
    """

    model: nn.Module
    task: Task
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    eval_batch: Batch
    steps: int
    batch_size: int
    loss_kind: str
    eval_every: int = 25
    grad_clip: float | None = 1.0
    stop_at_accuracy: float | None = None
    progress: bool = True
    train_batch: Batch | None = None
    eval_at_start: bool = False
    on_log: list[Callable[[dict], None]] = field(default_factory=list)
    on_step: list[Callable[[Trainer], None]] = field(default_factory=list)
    step: int = 0
    history: list[dict] = field(default_factory=list)
    elapsed_s: float = 0.0  # wall time of training and evaluation so far
    last_eval: EvalResult | None = None
    #: Sum and count of the training losses since the last logged row (part of a checkpoint, so a resumed
    #: run logs the same mean training loss as an uninterrupted one).
    running_loss: float = 0.0
    running_count: int = 0
    #: True once ``stop_at_accuracy`` was reached (a resumed run then trains no further).
    stopped: bool = False
    #: True when the last Ctrl-C was taken at a step boundary (the state is consistent: safe to save).
    interrupted_cleanly: bool = False
    #: Whether the training loss is checked (and read) on the host after every step. None: on the CPU
    #: only. On an accelerator reading the loss would wait for the device every step: the sum of the
    #: losses and the first non-finite step are kept on the device and read at evaluations and
    #: checkpoints (:meth:`sync`), which report a divergence with the step it happened at.
    check_every_step: bool | None = None
    _loss_sum: Tensor | None = field(default=None, repr=False)
    _first_bad: Tensor | None = field(default=None, repr=False)

    #: The ``training.*`` settings the trainer takes as they are (fields of the same names).
    SETTINGS = (
        "steps",
        "batch_size",
        "eval_every",
        "grad_clip",
        "stop_at_accuracy",
        "progress",
        "eval_at_start",
    )

    @classmethod
    def from_settings(cls, settings: Any, **objects: Any) -> Trainer:
        """A trainer of the ``training.*`` settings (:class:`neuromod.schema.TrainingSettings`, checked
        before the run) and the run's ``objects`` (model, task, optimizer, generator, eval_batch,
        loss_kind, train_batch)."""
        return cls(**{key: settings[key] for key in cls.SETTINGS}, **objects)

    def train_step(self) -> Tensor:
        batch = self.train_batch
        if batch is None:
            batch = self.task.training_batch(self.batch_size, self.generator, self.step)
        result = self.model(batch.inputs)
        loss = compute_loss(result.outputs, batch, self.loss_kind, self.task, result.activity)
        if self._checks_every_step(loss):
            if not torch.isfinite(loss):
                raise Diverged(self.step + 1, "the training loss")
        else:
            self._defer(loss.detach())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        self.step += 1
        return loss.detach()

    def _checks_every_step(self, loss: Tensor) -> bool:
        if self.check_every_step is None:
            self.check_every_step = loss.device.type == "cpu"
        return self.check_every_step

    def _defer(self, loss: Tensor) -> None:
        """Add the loss to the device-side sum; remember the first step whose loss is not finite."""
        if self._loss_sum is None:  # double precision: the same sum as the host's Python floats
            self._loss_sum = torch.zeros((), dtype=torch.float64, device=loss.device)
            self._first_bad = torch.zeros((), dtype=torch.long, device=loss.device)
        self._loss_sum += loss
        step = torch.full_like(self._first_bad, self.step + 1)
        self._first_bad = torch.where((self._first_bad > 0) | torch.isfinite(loss), self._first_bad, step)

    def sync(self) -> None:
        """Read what the device kept since the last call (see :attr:`check_every_step`): the losses join
        the running mean; a non-finite loss raises :class:`Diverged` with its step."""
        if self._loss_sum is None:
            return
        first_bad = int(self._first_bad)
        if first_bad:
            raise Diverged(first_bad, "the training loss")
        self.running_loss += float(self._loss_sum)
        self._loss_sum.zero_()

    def evaluate(self, batch: Batch, record: bool = False) -> EvalResult:
        """:func:`evaluate` of the model on ``batch``, ``batch_size`` trials at a time: an evaluation
        never runs the network over more trials at once than a training step."""
        return evaluate(self.model, self.task, batch, self.loss_kind, record, chunk=self.batch_size)

    def log(self, train_loss: float) -> dict:
        result = self.evaluate(self.eval_batch, record=True)
        if not math.isfinite(result.loss) or not all_finite(self.model):
            raise Diverged(self.step, "the evaluation loss or a parameter")
        self.last_eval = result
        row = {
            "step": self.step,
            "train_loss": train_loss,
            "eval_loss": result.loss,
            "eval_accuracy": result.accuracy,
            "chance_accuracy": self.task.chance_level,
            "wall_time_s": round(self.elapsed_s, 3),
            **result.extra,
        }
        self.history.append(row)
        for hook in self.on_log:
            hook(row)
        return row

    def fit(self) -> list[dict]:
        """Train until ``steps`` (or until ``stop_at_accuracy`` is reached); returns the logged rows."""
        bar = _progress_bar(self.steps, self.step, self.progress)
        already, started = self.elapsed_s, time.perf_counter()
        self.interrupted_cleanly = False
        try:
            if self.eval_at_start and self.step == 0 and not self.history:
                self.log(math.nan)
            with _DeferredInterrupt() as interrupt:
                while self.step < self.steps and not self.stopped:
                    self._advance(bar, already, started)
                    if interrupt.requested:
                        self.interrupted_cleanly = True
                        raise KeyboardInterrupt
        finally:
            if bar is not None:
                bar.close()
        return self.history

    def _advance(self, bar, already: float, started: float) -> None:
        """One update, the evaluation if one is due, then the ``on_step`` hooks."""
        loss = self.train_step()
        if self.check_every_step:
            self.running_loss += float(loss)
        self.running_count += 1
        self.elapsed_s = already + time.perf_counter() - started
        if bar is not None:
            bar.update(1)
        if self.step % self.eval_every == 0 or self.step == self.steps:
            self.sync()
            row = self.log(self.running_loss / self.running_count)
            self.running_loss, self.running_count = 0.0, 0
            if bar is not None:
                bar.set_postfix(loss=f"{row['train_loss']:.4f}", acc=f"{row['eval_accuracy']:.3f}")
            if self.stop_at_accuracy is not None and row["eval_accuracy"] >= self.stop_at_accuracy:
                self.stopped = True
        for hook in self.on_step:
            hook(self)

    def checkpoint_state(self) -> dict:
        """:meth:`state_dict` after :meth:`sync`, for a checkpoint; ``Diverged`` instead when a parameter
        is not finite, so the last checkpoint of a diverged run is its last good state."""
        self.sync()
        if not all_finite(self.model):
            raise Diverged(self.step, "a parameter")
        return self.state_dict()

    def state_dict(self) -> dict:
        """Everything a resumed run needs to continue exactly where this one is (model, optimiser, step,
        the training stream's generator, the global torch RNG, history, the running loss, wall time).
        Call :meth:`sync` first."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "history": list(self.history),
            "elapsed_s": self.elapsed_s,
            "running_loss": self.running_loss,
            "running_count": self.running_count,
            "stopped": self.stopped,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s output (``KeyError``/``RuntimeError`` if it does not fit)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"].to("cpu"))
        torch.set_rng_state(state["torch_rng"].to("cpu"))
        self.step = int(state["step"])
        self.history = list(state["history"])
        self.elapsed_s = float(state["elapsed_s"])
        self.running_loss = float(state.get("running_loss", 0.0))
        self.running_count = int(state.get("running_count", 0))
        self.stopped = bool(state.get("stopped", False))
        self.last_eval = None
        self._loss_sum = self._first_bad = None


class _DeferredInterrupt:
    """Within the block, the first Ctrl-C (SIGINT) only sets ``requested``; the loop stops at the next step
    boundary, so a checkpoint taken then is consistent. A second Ctrl-C interrupts at once. Outside the
    main thread (where signal handlers cannot be installed) Ctrl-C behaves as usual."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def _progress_bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is a dependency, but a bar is not worth failing a run over
        return None
    return tqdm(total=total, initial=initial, desc="training", unit="step", dynamic_ncols=True)
